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
from .hosts import HOST_COLUMNS, apply_peak, hosts_table, straggler
from .kernels import KERNEL_COLUMNS, MEMCPY_COLUMNS, apply_split, kernel_coverage, kernels_table, memcpy_table
from .ops_table import OPS_COLUMNS, add_rates, ops_table
from .records import RECORD_COLUMNS, assign_phases, build_records
from .steps import select_steps
from .summary import build_summary, primary_device, summarize

__all__ = ["Joined", "join", "join_records", "price_trace", "HOST_COLUMNS", "apply_peak", "select_steps", "OPS_COLUMNS", "KERNEL_COLUMNS", "MEMCPY_COLUMNS", "RECORD_COLUMNS",
           "add_rates", "summarize", "primary_device", "kernel_coverage"]


@dataclass
class Joined:
    ops: pd.DataFrame
    summary: dict
    records: pd.DataFrame
    kernels: Optional[pd.DataFrame] = None  # None when the trace has no device kernels or memcpys
    memcpy: Optional[pd.DataFrame] = None
    hosts: Optional[pd.DataFrame] = None  # the hosts table (hosts.py)


def price_trace(trace, graph=None, steps: Optional[int] = None):
    """(priced records before the split, the chosen step rows, number of chosen steps) of one trace."""
    events = trace.events
    if not events["kind"].isin(("op", "xla", "kernel")).any():
        raise TraceError(f"{', '.join(trace.paths)}: the trace holds no TensorFlow op, XLA or kernel events")
    chosen = select_steps(events, steps)
    records = build_records(events, graph, lambda: trace.hlo_modules, chosen)
    step_rows = events[(events["kind"] == "step") & events["step"].isin(chosen)]
    return records, step_rows[["host", "step", "start_ps", "duration_ps"]], len(chosen)


def join(trace, graph=None, steps: Optional[int] = None, capture_info: Optional[dict] = None,
         run_dir: str = "") -> Joined:
    """Price every execution of the chosen steps and build the tables and the summary."""
    records, step_rows, num_steps = price_trace(trace, graph, steps)
    device_work = trace.events["kind"].isin(("kernel", "memcpy")).any()
    return join_records(records, step_rows, num_steps, trace, graph, steps, capture_info, run_dir, device_work)


def join_records(records: pd.DataFrame, step_rows: pd.DataFrame, num_steps: int, trace, graph=None,
                 steps: Optional[int] = None, capture_info: Optional[dict] = None, run_dir: str = "",
                 device_work: bool = False) -> Joined:
    """The tables and the summary from priced records (of one trace, or of several files priced apart)."""
    records = apply_split(records)
    records["phase"] = assign_phases(records, bool((capture_info or {}).get("training")))
    ops = ops_table(records)
    summary = build_summary(ops, step_rows, num_steps, trace, graph, capture_info or {}, steps, run_dir)
    joined = Joined(ops, summary, records)
    if device_work:
        joined.kernels, joined.memcpy = kernels_table(records), memcpy_table(records)
        summary["kernel_coverage"] = kernel_coverage(joined.kernels) if len(joined.kernels) else None
    if records["host"].nunique() > 1 or step_rows["host"].nunique() > 1:
        joined.hosts = hosts_table(records, step_rows)
        summary["straggler"] = straggler(joined.hosts)
    return joined
