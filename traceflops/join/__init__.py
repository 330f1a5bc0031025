"""Stage 5: join measured executions with their costs into the ops, kernels and memcpy tables.

    records   = build_records(events, graph, hlo_modules, steps)   # records.py: describe + price
    records   = apply_split(records)                               # kernels.py: one op, several kernels
    ops       = ops_table(records)                                 # ops_table.py
    kernels   = kernels_table(records); memcpy = memcpy_table(records)
    summary   = build_summary(ops, ...)                            # summary.py

`join(trace, graph, steps, capture_info, run_dir)` runs them all and returns a
`Joined`. Column meanings are in each module's docstring (ops: ops_table.py,
kernels and memcpys: kernels.py, records: records.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pandas as pd

from ..errors import TraceError
from ..trace.xla_cpu import attribute_xla_time
from .kernels import KERNEL_COLUMNS, MEMCPY_COLUMNS, apply_split, kernel_coverage, kernels_table, memcpy_table
from .ops_table import OPS_COLUMNS, add_rates, ops_table
from .records import RECORD_COLUMNS, build_records
from .steps import select_steps
from .summary import build_summary, primary_device, summarize

__all__ = ["Joined", "join", "select_steps", "OPS_COLUMNS", "KERNEL_COLUMNS", "MEMCPY_COLUMNS", "RECORD_COLUMNS",
           "add_rates", "summarize", "primary_device", "kernel_coverage"]


@dataclass
class Joined:
    ops: pd.DataFrame
    summary: dict
    records: pd.DataFrame
    kernels: Optional[pd.DataFrame] = None  # None when the trace has no device kernels or memcpys
    memcpy: Optional[pd.DataFrame] = None


def join(trace, graph=None, steps: Optional[int] = None, capture_info: Optional[dict] = None,
         run_dir: str = "") -> Joined:
    """Price every execution of the chosen steps and build the tables and the summary."""
    events = trace.events
    if not events["kind"].isin(("op", "xla", "kernel")).any():
        raise TraceError(f"{', '.join(trace.paths)}: the trace holds no TensorFlow op, XLA or kernel events")
    chosen = select_steps(events, steps)
    events, untimed_clusters = attribute_xla_time(events)
    records = apply_split(build_records(events, graph, lambda: trace.hlo_modules, chosen))
    ops = ops_table(records)
    step_rows = events[(events["kind"] == "step") & events["step"].isin(chosen)]
    summary = build_summary(ops, step_rows, len(chosen), trace, graph, capture_info or {}, steps, run_dir)
    if untimed_clusters:
        summary["warnings"].append(
            f"XLA cluster(s) {', '.join(untimed_clusters[:5])} ran without per-instruction events in the "
            "trace: their time stays on the call op's row, and its FLOPs are not split per instruction")
    joined = Joined(ops, summary, records)
    if events["kind"].isin(("kernel", "memcpy")).any():
        joined.kernels, joined.memcpy = kernels_table(records), memcpy_table(records)
        summary["kernel_coverage"] = kernel_coverage(joined.kernels) if len(joined.kernels) else None
    return joined
