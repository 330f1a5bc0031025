"""Join, the ops table: one row per executed op, from the priced records.

Its columns, their meaning and how each combines are the schema's `ops` table
(`traceflops/schema.py`; README.md's "ops.csv columns" is rendered from it).

Host TF ops and host XLA instructions are rows of their own. A GPU op's host
event only times its launch, so its row is the roll-up of the kernels it
launched on each device (their time, their FLOPs: combine.py, by each column's
rule), and its host row is dropped.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..schema import cast_counts, columns
from .combine import combine_rows, single_rows

OPS_COLUMNS = columns("ops")
# The ops of one device that a GPU op's kernels combine into.
OP_KEYS = ["device", "op_name", "op_type", "hlo_module", "program_id"]
_RATE_COLUMNS = ("gflops_per_s", "gbytes_per_s", "intensity", "time_share")
_COMBINED = [c for c in OPS_COLUMNS if c not in _RATE_COLUMNS]


def _with_times(row: dict) -> dict:
    total_us = row["total_ps"] / 1e6
    row.update(total_time_us=total_us, avg_time_us=total_us / row["occurrences"])
    return row


def _launched_rows(kernels: pd.DataFrame) -> list:
    """Each op's kernels on one device, combined (combine.py): occurrences = launches of its most-launched
    kernel (one per op execution); per-occurrence counts = the kernels' totals / occurrences; text
    columns from its longest-running kernel, the note led by the number of kernels."""
    rows = combine_rows(kernels, OP_KEYS, _COMBINED)
    for row in rows:
        row["note"] = f"{row.pop('parts')} kernel(s); " + row["note"]
        _with_times(row)
    return rows


def ops_table(records: pd.DataFrame) -> pd.DataFrame:
    """The ops table (module doc) from split-applied records, sorted by total time."""
    kernels = records[records["source"] == "kernel"]
    # A host event of an op whose device work is kernels, or an XLA copy instruction run as a runtime copy
    # (memcpy.csv), times only its launch.
    xla_copies = records[(records["source"] == "memcpy") & (records["hlo_op"].fillna("").astype(str) != "")]
    launched = set(kernels["op_name"]) | set(xla_copies["op_name"])
    host = records[records["source"].isin(("tf", "xla")) & ~records["op_name"].isin(launched)]
    rows = [_with_times(r) for r in single_rows(host[host["source"] == "xla"], _COMBINED)]
    rows += _launched_rows(kernels)
    rows += [_with_times(r) for r in single_rows(host[host["source"] == "tf"], _COMBINED)]
    table = pd.DataFrame(rows, columns=_COMBINED)
    table = add_rates(table, float(table["total_time_us"].sum()) if len(table) else 0.0)
    table = table.sort_values("total_time_us", ascending=False, kind="stable").reset_index(drop=True)
    return table[OPS_COLUMNS]


def add_rates(table: pd.DataFrame, total_op_us: float) -> pd.DataFrame:
    """GFLOP/s, GB/s, intensity and time share from counts and times (NaN where unknown)."""
    table = cast_counts(table.copy(), "ops")
    seconds = table["total_time_us"].astype(float) / 1e6
    flops = table["flops"].astype("Float64") * table["occurrences"]
    size = table["bytes"].astype("Float64") * table["occurrences"]
    with np.errstate(divide="ignore", invalid="ignore"):
        table["gflops_per_s"] = (flops / seconds / 1e9).where(seconds > 0)
        table["gbytes_per_s"] = (size / seconds / 1e9).where(seconds > 0)
        table["intensity"] = (table["flops"].astype("Float64") / table["bytes"].astype("Float64")).where(
            table["bytes"].astype("Float64") > 0)
    table["time_share"] = table["total_time_us"] / total_op_us if total_op_us else np.nan
    return table
