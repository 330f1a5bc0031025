"""Roofline columns, model figures and layer rollup on a hand-made ops table.

Ceilings used throughout: float32 100 GFLOP/s, bfloat16 400 GFLOP/s, 10 GB/s,
so the ridge is at 10 FLOP/byte for float32 and 40 for bfloat16.
"""
import math

import numpy as np
import pandas as pd
import pytest

from samples import ops_table
from traceflops.roofline import (ABOVE_CEILING_TOLERANCE, apply_roofline, layer_rollup, model_figures,
                                 op_family)

CEILINGS = {"device": "CPU:0", "peak_gflops_per_s": {"float32": 100.0, "bfloat16": 400.0},
            "bandwidth_gbytes_per_s": 10.0}

# name, type, layer, dtype, occurrences, flops/run, bytes/run, total time us
ROWS = [
    ("A", "MatMul", "dense", "float32", 1, 2_000_000_000, 100_000_000, 40_000.0),
    ("B", "AddV2", "dense", "float32", 2, 1_000_000, 12_000_000, 4_000.0),
    ("C", "Transpose", "", "float32", 1, 0, 8_000_000, 2_000.0),
    ("D", "Mystery", "attn", "float32", 1, None, 4_000_000, 1_000.0),
    ("E", "BatchMatMulV2", "attn", "bfloat16", 1, 4_000_000_000, 100_000_000, 20_000.0),
    ("F", "Mul", "attn", "int32", 1, 1_000_000, 10_000, 100.0),
    ("G", "MatMul", "attn", "float32", 1, 1_000_000_000, 1_000_000, 5_000.0),
    ("H", "AddV2", "attn", "float32", 1, 1_000_000, 12_000_000, 500.0),
]
TOTAL_US = 72_600.0  # sum of the times above


def make_ops(rows=ROWS) -> pd.DataFrame:
    return ops_table(rows)


def row(table, name):
    return table.set_index("op_name").loc[name]


@pytest.fixture
def table():
    return apply_roofline(make_ops(), CEILINGS)


def test_compute_bound_matmul(table):
    a = row(table, "A")
    # intensity 2e9 / 1e8 = 20 >= ridge 10: compute; attainable min(100, 20 x 10) = 100
    # achieved 2e9 / 0.04 s = 50 GFLOP/s; efficiency 50 / 100 = 0.5; recoverable 40000 x 0.5 = 20000
    assert a["bound"] == "compute"
    assert a["ceiling_dtype"] == "float32"
    assert a["attainable_gflops_per_s"] == pytest.approx(100.0)
    assert a["efficiency"] == pytest.approx(0.5)
    assert a["recoverable_time_us"] == pytest.approx(20_000.0)


def test_memory_bound_elementwise(table):
    b = row(table, "B")
    # intensity 1e6 / 12e6 = 1/12 < 10: memory; attainable 10 / 12 = 0.8333 GFLOP/s
    # achieved 2 x 1e6 / 0.004 s = 0.5 GFLOP/s; efficiency 0.5 / 0.8333 = 0.6 (= 6 GB/s / 10 GB/s)
    # recoverable 4000 x 0.4 = 1600
    assert b["bound"] == "memory"
    assert b["attainable_gflops_per_s"] == pytest.approx(10 / 12)
    assert b["efficiency"] == pytest.approx(0.6)
    assert b["efficiency"] == pytest.approx(b["gbytes_per_s"] / 10.0)
    assert b["recoverable_time_us"] == pytest.approx(1_600.0)


def test_zero_flop_op_is_rated_by_bandwidth(table):
    c = row(table, "C")
    # 8e6 bytes / 0.002 s = 4 GB/s of 10: efficiency 0.4, recoverable 2000 x 0.6 = 1200
    assert c["bound"] == "memory"
    assert c["attainable_gflops_per_s"] == 0.0
    assert c["efficiency"] == pytest.approx(0.4)
    assert c["recoverable_time_us"] == pytest.approx(1_200.0)
    # time share 2000 / 72600 = 0.0275 >= 0.01 and 0.4 < 0.5
    assert bool(c["underutilized"]) is True


def test_unknown_flops_leave_roofline_empty(table):
    d = row(table, "D")
    assert d["bound"] == ""
    assert math.isnan(d["attainable_gflops_per_s"])
    assert math.isnan(d["efficiency"])
    assert math.isnan(d["recoverable_time_us"])
    assert bool(d["underutilized"]) is False
    assert bool(d["above_ceiling"]) is False


def test_bfloat16_uses_its_own_ceiling_and_ridge_tie_is_compute(table):
    e = row(table, "E")
    # intensity 4e9 / 1e8 = 40 = bf16 ridge 400 / 10: a tie counts as compute; attainable 400
    # achieved 4e9 / 0.02 s = 200; efficiency 0.5; recoverable 20000 x 0.5 = 10000
    assert e["ceiling_dtype"] == "bfloat16"
    assert e["bound"] == "compute"
    assert e["attainable_gflops_per_s"] == pytest.approx(400.0)
    assert e["efficiency"] == pytest.approx(0.5)
    assert e["recoverable_time_us"] == pytest.approx(10_000.0)


def test_dtype_without_ceiling_falls_back_to_float32(table):
    f = row(table, "F")
    # int32: float32's ceiling; intensity 1e6 / 1e4 = 100; attainable min(100, 1000) = 100
    # achieved 1e6 / 1e-4 s = 10 GFLOP/s; efficiency 0.1; recoverable 100 x 0.9 = 90
    assert f["ceiling_dtype"] == "float32"
    assert f["efficiency"] == pytest.approx(0.1)
    assert f["recoverable_time_us"] == pytest.approx(90.0)
    # time share 100 / 72600 = 0.0014 < 0.01: not flagged despite 10% efficiency
    assert bool(f["underutilized"]) is False


def test_dtype_spellings_are_canonical():
    ops = make_ops([("X", "MatMul", "", "bf16", 1, 4_000_000_000, 100_000_000, 20_000.0),
                    ("Y", "MatMul", "", "float", 1, 2_000_000_000, 100_000_000, 40_000.0),
                    ("Z", "MatMul", "", "float16", 1, 2_000_000_000, 100_000_000, 40_000.0)])
    result = apply_roofline(ops, CEILINGS)
    assert list(result["ceiling_dtype"]) == ["bfloat16", "float32", "float32"]


def test_above_ceiling_compute_and_memory(table):
    g, h = row(table, "G"), row(table, "H")
    # G: 1e9 / 0.005 s = 200 GFLOP/s > 100 x 1.05: impossible, a counting error
    assert bool(g["above_ceiling"]) is True
    assert g["above_ceiling_kind"] == "compute"
    assert g["efficiency"] == pytest.approx(2.0)
    assert g["recoverable_time_us"] == 0.0  # clipped, never negative
    # H: 12e6 bytes / 0.0005 s = 24 GB/s > 10 x 1.05, below the compute peak
    assert bool(h["above_ceiling"]) is True
    assert h["above_ceiling_kind"] == "memory"
    assert h["efficiency"] == pytest.approx(2.4)
    flagged = set(table.loc[table["above_ceiling"], "op_name"])
    assert flagged == {"G", "H"}


def test_above_ceiling_tolerance_is_strict():
    ops = make_ops([("at", "MatMul", "", "float32", 1, 1_000_000_000, 1_000_000, 1_000.0),
                    ("over", "MatMul", "", "float32", 1, 1_000_000_000, 1_000_000, 1_000.0)])
    at_limit = 100.0 * ABOVE_CEILING_TOLERANCE  # 105 GFLOP/s exactly at the tolerance
    ops["gflops_per_s"] = pd.array([at_limit, np.nextafter(at_limit, np.inf)], dtype="Float64")
    result = apply_roofline(ops, CEILINGS)
    assert list(result["above_ceiling"]) == [False, True]


def test_threshold_edges():
    ops = make_ops()
    # A and E sit at efficiency exactly 0.5: "below the threshold" is strict
    default = apply_roofline(ops, CEILINGS, threshold=0.5)
    assert set(default.loc[default["underutilized"], "op_name"]) == {"C"}
    raised = apply_roofline(ops, CEILINGS, threshold=0.5 + 1e-9)
    assert set(raised.loc[raised["underutilized"], "op_name"]) == {"A", "C", "E"}
    # time share at exactly min_time_share counts; just above it does not
    share_c = 2_000.0 / TOTAL_US
    at_share = apply_roofline(ops, CEILINGS, min_time_share=float(ops["time_share"][2]))
    assert set(at_share.loc[at_share["underutilized"], "op_name"]) == {"C"}
    above_share = apply_roofline(ops, CEILINGS, min_time_share=share_c * 1.001)
    assert not above_share["underutilized"].any()
    # with no time-share floor, F (efficiency 0.1, tiny) is flagged too
    no_floor = apply_roofline(ops, CEILINGS, min_time_share=0.0)
    assert set(no_floor.loc[no_floor["underutilized"], "op_name"]) == {"C", "F"}


def test_input_table_is_not_modified():
    ops = make_ops()
    before = list(ops.columns)
    apply_roofline(ops, CEILINGS)
    assert list(ops.columns) == before


SUMMARY = {"steps": 1, "step_time_us": 160_000.0, "flops_per_step": 8_000_000_000,
           "flops_per_step_by_dtype": {"float32": 5_000_000_000, "bfloat16": 3_000_000_000}}


def test_model_figures(table):
    figures = model_figures(table, SUMMARY, CEILINGS)
    # 8e9 FLOP / 0.16 s = 50 GFLOP/s against float32's 100 (float32 has most FLOPs)
    assert figures["reference_dtype"] == "float32"
    assert figures["achieved_gflops_per_s"] == pytest.approx(50.0)
    assert figures["model_flops_utilization"] == pytest.approx(0.5)
    assert figures["ridge_intensity"] == pytest.approx(10.0)
    # memory-bound: B, C, H = 4000 + 2000 + 500; unclassified: D = 1000
    assert figures["memory_bound_time_share"] == pytest.approx(6_500 / TOTAL_US)
    assert figures["compute_bound_time_share"] == pytest.approx(65_100 / TOTAL_US)
    assert figures["unclassified_time_share"] == pytest.approx(1_000 / TOTAL_US)
    assert figures["underutilized_ops"] == 1
    # 20000 + 1600 + 1200 + 10000 + 90 (+0 for G and H, clipped)
    assert figures["recoverable_time_us_per_step"] == pytest.approx(32_890.0)
    kinds = {op["op_name"]: op["kind"] for op in figures["above_ceiling_ops"]}
    assert kinds == {"G": "compute", "H": "memory"}


def test_model_figures_dominant_dtype_and_raw_ops():
    summary = dict(SUMMARY, flops_per_step_by_dtype={"float32": 1, "bf16": 7_999_999_999})
    figures = model_figures(make_ops(), summary, CEILINGS)  # roofline columns added on the way
    assert figures["reference_dtype"] == "bfloat16"
    assert figures["model_flops_utilization"] == pytest.approx(50.0 / 400.0)


def test_layer_rollup(table):
    rollup = layer_rollup(table, steps=2).set_index("layer")
    # by time: dense 40000 + 4000 = 44000 us, attn 1000 + 20000 + 100 + 5000 + 500 = 26600, C 2000
    assert list(rollup.index) == ["dense", "attn", "(no layer)"]
    dense, attn = rollup.loc["dense"], rollup.loc["attn"]
    # dense: A 2e9 x 1 + B 1e6 x 2 = 2.002e9 FLOPs over 2 steps; 44000 us / 2 steps
    assert dense["flops_per_step"] == pytest.approx(1.001e9)
    assert dense["time_us_per_step"] == pytest.approx(22_000.0)
    # 1.001e9 FLOP / 22000 us = 45.5 GFLOP/s
    assert dense["gflops_per_s"] == pytest.approx(1.001e9 / 22_000 / 1e3)
    assert dense["recoverable_time_us_per_step"] == pytest.approx((20_000 + 1_600) / 2)
    assert dense["memory_bound_time_share"] == pytest.approx(4_000 / 44_000)
    # attn: D (unknown, 1000 us) E F G H: FLOPs 4e9 + 1e6 + 1e9 + 1e6 = 5.002e9; time 26600 us
    assert attn["ops"] == 5
    assert attn["flops_per_step"] == pytest.approx(2.501e9)
    assert attn["unknown_flops_time_us_per_step"] == pytest.approx(500.0)
    assert attn["time_share"] == pytest.approx(26_600 / TOTAL_US)


def test_layer_rollup_without_roofline_columns():
    rollup = layer_rollup(make_ops())
    assert "recoverable_time_us_per_step" not in rollup
    assert rollup["time_us_per_step"].sum() == pytest.approx(TOTAL_US)


@pytest.mark.parametrize("op_type, family", [
    ("_MklNativeFusedConv2D", "conv"), ("DepthwiseConv2dNative", "conv"), ("_MklEinsum", "matmul/einsum"),
    ("BatchMatMulV2", "matmul/einsum"), ("_MklAddV2", "elementwise"), ("Relu", "elementwise"),
    ("FusedBatchNormV3", "normalization"), ("_MklLayerNorm", "normalization"), ("MaxPool", "pooling"),
    ("_MklSoftmax", "softmax"), ("Transpose", "data movement"), ("SomeCustomOp", "other"),
    ("Mean", "reduction"), ("Tan", "elementwise"), ("_MklNativeAsin", "elementwise"),
    ("__inference_train_step_287", "call"), ("fusion:kLoop", "elementwise"), ("fusion:kInput", "reduction"),
    ("fusion", "other"), ("dot", "matmul/einsum"), ("convolution", "conv"), ("custom-call", "other"),
    ("copy", "data movement"), ("no-such-opcode", "other"),
])
def test_op_family(op_type, family):
    assert op_family(op_type) == family


def test_ceilings_without_float32_are_refused():
    with pytest.raises(ValueError, match="float32"):
        apply_roofline(make_ops(), {"peak_gflops_per_s": {"bfloat16": 400.0}, "bandwidth_gbytes_per_s": 10.0})
