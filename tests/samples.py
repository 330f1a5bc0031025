"""The hand-made ops table shared by the roofline and report tests and `scripts/check_report_browser.py`.

`ops_table(rows)` builds a table shaped like `join.join_ops` output, with the
rates derived as `join.add_rates` does, from rows of
(op name, op type, layer, dtype, occurrences, flops per run, bytes per run, total time us);
None for unknown FLOPs. `report_ops()` is the report sample: `REPORT_ROWS` with
input shapes, FLOP sources and a note, to go with `REPORT_CEILINGS` and
`REPORT_SUMMARY`.

Importable by the tests (pytest puts tests/ on the path) and by scripts that
put tests/ on `sys.path`; it needs only pandas.
"""
from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd

COLUMNS = ["op_name", "op_type", "layer", "dtype", "occurrences", "flops", "bytes", "total_time_us"]

REPORT_CEILINGS = {"device": "CPU:0", "peak_gflops_per_s": {"float32": 100.0, "bfloat16": 400.0},
                   "bandwidth_gbytes_per_s": 10.0, "source": "measured", "cached": False,
                   "theoretical": {"peak_gflops_per_s": {"float32": 120.0}, "bandwidth_gbytes_per_s": None,
                                   "assumptions": ["2 FMA pipes <assumed>"]}}
REPORT_ROWS = [
    # name, type, layer, dtype, occurrences, flops/run, bytes/run, total time us
    ("model/dense/MatMul", "_MklNativeFusedMatMul", "dense", "float32", 2, 2_000_000_000, 100_000_000, 80_000.0),
    ("model/conv/Conv2D", "_MklNativeFusedConv2D", "conv", "float32", 2, 900_000_000, 30_000_000, 30_000.0),
    ("model/dense/AddV2", "AddV2", "dense", "float32", 2, 1_000_000, 12_000_000, 8_000.0),
    ("model/norm/FusedBatchNormV3", "FusedBatchNormV3", "norm", "float32", 2, 5_000_000, 8_000_000, 3_000.0),
    ("model/attn/Softmax", "_MklSoftmax", "attn", "bfloat16", 2, 2_000_000, 4_000_000, 1_500.0),
    ("model/pool/MaxPool", "MaxPool", "pool", "float32", 2, 1_000_000, 5_000_000, 900.0),
    ("model/x/Transpose", "Transpose", "", "float32", 2, 0, 8_000_000, 2_000.0),
    ("model/<odd> & name", "Mystery", "weird", "float32", 2, None, 1_000, 50.0),
]
REPORT_SUMMARY = {"steps": 2, "step_time_us": 64_000.0, "flops_per_step": 2_909_000_000, "coverage": 0.99,
                  "flops_per_step_by_dtype": {"float32": 2_907_000_000, "bfloat16": 2_000_000}}


def ops_table(rows: Sequence[tuple], input_shapes: Optional[str] = None, flops_source: Optional[list] = None,
              note: Optional[list] = None) -> pd.DataFrame:
    """An ops table from `rows`; the optional columns are added when given."""
    frame = pd.DataFrame(list(rows), columns=COLUMNS)
    frame["flops"] = pd.array(frame["flops"], dtype="Int64")
    frame["bytes"] = pd.array(frame["bytes"], dtype="Int64")
    seconds = frame["total_time_us"] / 1e6
    frame["gflops_per_s"] = frame["flops"].astype("Float64") * frame["occurrences"] / seconds / 1e9
    frame["gbytes_per_s"] = frame["bytes"].astype("Float64") * frame["occurrences"] / seconds / 1e9
    frame["intensity"] = frame["flops"].astype("Float64") / frame["bytes"].astype("Float64")
    frame["time_share"] = frame["total_time_us"] / frame["total_time_us"].sum()
    for name, value in (("input_shapes", input_shapes), ("flops_source", flops_source), ("note", note)):
        if value is not None:
            frame[name] = value
    return frame


def report_ops() -> pd.DataFrame:
    """The report sample: REPORT_ROWS with shapes, sources (6 formulas, a zero, an unknown) and a note."""
    return ops_table(REPORT_ROWS, input_shapes="float[4,32];float[32,8]",
                     flops_source=["formula"] * 6 + ["zero", "unknown"], note=["2*M*N*K <matmul>"] + [""] * 7)
