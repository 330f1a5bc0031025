"""Theoretical GPU ceilings from plane stats: exact values for known parts, and the edge cases."""
import pytest

from conftest import TRACES
from traceflops.roofline.gpu_specs import _NVIDIA_CUDA_CORES, _NVIDIA_TENSOR_CORES, gpu_ceilings, trace_gpu_ceilings
from traceflops.trace import load_trace

GPU = TRACES / "gpu"


def nvidia(sms, clock_khz, major, minor, bandwidth=None):
    stats = {"core_count": sms, "clock_rate": clock_khz, "compute_cap_major": major, "compute_cap_minor": minor}
    if bandwidth:
        stats["memory_bandwidth"] = bandwidth
    return stats


def test_v100_from_the_real_trace():
    ceilings = trace_gpu_ceilings(load_trace(GPU / "tf-v100-bert-multiworker.xplane.pb"))
    assert sorted(ceilings) == [f"GPU:{i}" for i in range(8)]
    v100 = ceilings["GPU:4"]
    assert v100["device"] == "GPU:4" and v100["source"] == "theoretical"
    # 80 SMs x 64 FP32 lanes x 2 (FMA) x 1.53 GHz.
    assert v100["peak_gflops_per_s"]["float32"] == 15667.2
    assert v100["peak_gflops_per_s"]["float64"] == 7833.6
    assert v100["peak_gflops_per_s"]["float16"] == 31334.4
    # 8 tensor cores x 64 FMA x 2 per SM per cycle.
    # Every float dtype has a matrix row (issue 21): those V100 tensor cores lack run on the CUDA cores.
    assert v100["tensor_core_gflops_per_s"] == {"float16": 125337.6, "float32": 15667.2, "float64": 7833.6,
                                                "bfloat16": 15667.2}
    assert v100["bandwidth_gbytes_per_s"] == 898.048
    theory = v100["theoretical"]
    assert (theory["compute_capability"], theory["units"], theory["clock_ghz"]) == ("7.0", 80, 1.53)
    assert any("V100" in a for a in theory["assumptions"])


def test_a100_and_h100_rates():
    a100 = gpu_ceilings(nvidia(108, 1_410_000, 8, 0, 1_555_200_000_000), device="GPU:0")
    assert a100["device"] == "GPU:0"
    assert a100["peak_gflops_per_s"]["float32"] == pytest.approx(19491.84)  # 19.5 TFLOP/s
    assert a100["peak_gflops_per_s"]["float64"] == pytest.approx(9745.92)
    assert a100["tensor_core_gflops_per_s"]["bfloat16"] == pytest.approx(311869.44)  # 312
    assert a100["tensor_core_gflops_per_s"]["tf32"] == pytest.approx(155934.72)  # 156
    assert a100["tensor_core_gflops_per_s"]["float64"] == pytest.approx(19491.84)  # 19.5
    assert a100["bandwidth_gbytes_per_s"] == 1555.2
    h100 = gpu_ceilings(nvidia(132, 1_980_000, 9, 0))
    assert h100["peak_gflops_per_s"]["float32"] == pytest.approx(66908.16)  # 67 TFLOP/s
    assert h100["tensor_core_gflops_per_s"]["float16"] == pytest.approx(132 * 4096 * 1.98e9 / 1e9)
    assert h100["bandwidth_gbytes_per_s"] is None


def test_every_listed_compute_capability_keeps_cuda_and_tensor_cores_apart():
    for cc in [(7, 0), (7, 5), (8, 0), (8, 6), (8, 9), (9, 0), (10, 0)]:
        result = gpu_ceilings(nvidia(100, 1_000_000, *cc))
        cuda, tensor = result["peak_gflops_per_s"], result["tensor_core_gflops_per_s"]
        assert cuda["float32"] == 100 * _NVIDIA_CUDA_CORES[cc]["float32"]
        assert tensor["float16"] > cuda["float16"] >= cuda["float32"], cc
        # Every float dtype has a matrix row too (issue 21), besides the tensor cores' own formats.
        assert set(tensor) == set(_NVIDIA_TENSOR_CORES[cc]) | {"float16", "bfloat16", "float32", "float64"}
        assert "tf32" not in cuda


def test_amd_from_the_real_traces():
    mi300 = trace_gpu_ceilings(load_trace(GPU / "jax-mi300-gemm.xplane.pb"))["GPU:0"]
    assert mi300["vendor"] == "AMD" and mi300["theoretical"]["unit_name"] == "compute units"
    # 304 CUs x 2.1 GHz: packed FP32 vector 163.4, BF16 matrix 1307.4 TFLOP/s.
    assert mi300["peak_gflops_per_s"]["float32"] == pytest.approx(163430.4)
    assert mi300["tensor_core_gflops_per_s"]["bfloat16"] == pytest.approx(1307443.2)
    assert mi300["bandwidth_gbytes_per_s"] == 2662.4
    assert any("best effort" in a for a in mi300["theoretical"]["assumptions"])
    ceilings = trace_gpu_ceilings(load_trace(GPU / "jax-mi355-fused-attn.xplane.pb"))
    mi355 = ceilings["GPU:0"]
    assert mi355["tensor_core_gflops_per_s"]["bfloat16"] == pytest.approx(256 * 4096 * 2.4)  # 2.5 PFLOP/s
    # GPU:1-7 of that trace carry only device_vendor: no ceilings, and the reason is stated.
    empty = ceilings["GPU:3"]
    assert empty["peak_gflops_per_s"] == {} and empty["tensor_core_gflops_per_s"] == {}
    assert any("missing" in a for a in empty["theoretical"]["assumptions"])


def test_unknown_compute_capability_gives_no_rates():
    pascal = gpu_ceilings(nvidia(56, 1_480_000, 6, 0), device="GPU:0")
    assert pascal["peak_gflops_per_s"] == {} and pascal["tensor_core_gflops_per_s"] == {}
    assert any("6.0 is not in the NVIDIA table" in a for a in pascal["theoretical"]["assumptions"])
