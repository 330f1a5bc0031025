"""Each op is judged against the roof of the unit that ran it (issue 21, scope 2): matrix units for
contractions at their dtype (TF32 for float32 on NVIDIA Ampere and later), vector units for the rest."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import traceflops
from traceflops.roofline import apply_roofline
from traceflops.roofline.gpu_specs import FLOAT_DTYPES, gpu_ceilings
from traceflops.roofline.roofs import matrix_roof, tf32_allowed

ROOT = Path(__file__).resolve().parents[1]
MI300_GEMM = ROOT / "traces" / "gpu" / "jax-mi300-gemm.xplane.pb"
H200 = ROOT / "traces" / "gpu-jax-h200"
CPU_EXAMPLE = ROOT / "traces" / "cpu-example-cnn"
CPU_CEILINGS = {"device": "CPU:0", "source": "measured", "peak_gflops_per_s": {"float32": 100.0, "bfloat16": 400.0},
                "bandwidth_gbytes_per_s": 10.0}


@pytest.fixture(scope="module")
def mi300():
    return traceflops.analyze(MI300_GEMM)


@pytest.fixture(scope="module")
def h200():
    return traceflops.analyze(H200)


def test_mi300_bf16_gemm_is_judged_against_the_matrix_cores(mi300):
    ceilings = mi300.summary["ceilings"]["GPU:0"]
    matrix_bf16 = ceilings["tensor_core_gflops_per_s"]["bfloat16"]
    gemm = mi300.ops[(mi300.ops["op_type"] == "custom-call") & (mi300.ops["dtype"] == "bfloat16")]
    largest = gemm.sort_values("flops", ascending=False).iloc[0]
    assert largest["flops"] == 2 * 8192 * 8192 * 4096
    assert largest["roof"] == "matrix bf16"
    assert largest["peak_gflops_per_s"] == pytest.approx(matrix_bf16) == pytest.approx(1307443.2)
    assert (gemm["peak_gflops_per_s"] == matrix_bf16).all()
    assert not (mi300.ops["above_ceiling_kind"] == "compute").any()
    assert not any("COUNTING ERROR" in w for w in mi300.summary["warnings"])
    assert 0 < mi300.summary["model_flops_utilization"] <= 1.0
    assert mi300.summary["model_flops_utilization_roof"] == "matrix bf16"


def test_a_vector_op_is_judged_against_the_vector_units(mi300):
    ops = mi300.ops
    vector = ops[(ops["op_type"].str.startswith("fusion:kLoop")) & (ops["dtype"] == "bfloat16")]
    assert len(vector)
    vector_bf16 = mi300.summary["ceilings"]["GPU:0"]["peak_gflops_per_s"]["bfloat16"]
    assert (vector["peak_gflops_per_s"] == vector_bf16).all()
    assert set(vector["roof"]) <= {"vector bf16", "memory"}
    table = pd.DataFrame({"op_name": ["add"], "op_type": ["add"], "dtype": ["bfloat16"], "macs": [np.nan],
                          "flops": [1e12], "bytes": [1e6], "gflops_per_s": [1e5], "gbytes_per_s": [1.0],
                          "total_time_us": [1e4], "time_share": [1.0]})
    rated = apply_roofline(table, mi300.summary["ceilings"]["GPU:0"] | {"source": "theoretical",
                                                                          "vendor": "AMD"})
    assert rated["roof"].iloc[0] == "vector bf16"


def test_h200_f32_dot_is_judged_against_tf32_tensor_cores(h200):
    ceilings = h200.summary["ceilings"]["GPU:0"]
    tf32 = ceilings["tensor_core_gflops_per_s"]["tf32"]
    dots = h200.ops[h200.ops["op_name"].str.startswith("gemm_fusion_dot") & (h200.ops["dtype"] == "float32")]
    assert len(dots)
    assert (dots["peak_gflops_per_s"] == tf32).all()
    assert set(dots["roof"]) <= {"matrix tf32", "memory"}
    assert h200.summary["model_flops_utilization_roof"] == "matrix tf32"
    # A compute-bound f32 dot on the same device names its unit.
    big = pd.DataFrame({"op_name": ["dot"], "op_type": ["dot"], "dtype": ["float32"], "macs": [1e12],
                        "flops": [2e12], "bytes": [1e6], "gflops_per_s": [1e5], "gbytes_per_s": [1.0],
                        "total_time_us": [2e4], "time_share": [1.0]})
    full = dict(ceilings, source="theoretical", vendor="NVIDIA")
    assert tf32_allowed(full)
    assert apply_roofline(big, full)["roof"].iloc[0] == "matrix tf32"


def test_every_generation_has_every_float_dtype_on_both_units():
    for cc in [(7, 0), (7, 5), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0)]:
        c = gpu_ceilings({"core_count": 100, "clock_rate": 1_000_000, "compute_cap_major": cc[0],
                          "compute_cap_minor": cc[1], "memory_bandwidth": 1e12}, device="GPU:0")
        assert set(FLOAT_DTYPES) <= set(c["peak_gflops_per_s"])
        assert set(FLOAT_DTYPES) <= set(c["tensor_core_gflops_per_s"])
        assert tf32_allowed(c) == (cc >= (8, 0)), cc
    for cc in [(9, 0), (9, 4), (9, 5)]:
        c = gpu_ceilings({"core_count": 100, "clock_rate": 1_000_000, "compute_cap_major": cc[0],
                          "compute_cap_minor": cc[1], "memory_bandwidth": 1e12, "device_vendor": "AMD"},
                         device="GPU:0")
        assert set(FLOAT_DTYPES) <= set(c["peak_gflops_per_s"])
        assert set(FLOAT_DTYPES) <= set(c["tensor_core_gflops_per_s"])
        assert not tf32_allowed(c)
        assert matrix_roof("bfloat16", c)[0] == "matrix bf16"


def test_cpu_measured_ceilings_keep_the_vector_roof_of_each_dtype():
    result = traceflops.analyze(CPU_EXAMPLE, ceilings=CPU_CEILINGS)
    ops = result.ops
    assert not ops["roof"].str.startswith("matrix").any()
    dtype = ops["dtype"].fillna("").map(lambda d: d if d in CPU_CEILINGS["peak_gflops_per_s"] else "float32")
    expected = dtype.map(CPU_CEILINGS["peak_gflops_per_s"]).astype(float)
    assert np.allclose(ops["peak_gflops_per_s"].astype(float), expected)
    assert result.summary["model_flops_utilization_roof"].startswith("vector")
