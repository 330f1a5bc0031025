"""Stage 5: join measured executions with their costs into the ops, kernels and memcpy tables.

    records   = build_records(events, graph, hlo_modules, steps)   # records.py: describe + price
    records   = apply_split(records)                               # kernels.py: one op, several kernels
    ops       = ops_table(records)                                 # ops_table.py
    kernels   = kernels_table(records); memcpy = memcpy_table(records)
    summary   = build_summary(ops, ...)                            # summary.py

`join(trace, graph, steps, capture_info, run_dir)` runs them all and returns a
`Joined`. Every table's columns, their meanings and how each combines are
declared once, in `traceflops/schema.py`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import pandas as pd

from ..errors import TraceError
from ..trace.events import DEVICE_WORK_KINDS, text_mask
from ..trace.xla_cpu import attribute_xla_time, untimed_calls
from .hosts import HOST_COLUMNS, apply_peak, hosts_table, straggler
from .kernels import KERNEL_COLUMNS, MEMCPY_COLUMNS, apply_split, kernel_coverage, kernels_table, memcpy_table
from .ops_table import OPS_COLUMNS, add_rates, ops_table
from .records import COMPUTE_KINDS, RECORD_COLUMNS, assign_phases, build_records
from .steps import select_steps
from .summary import build_summary, primary_device, summarize

__all__ = ["Joined", "join", "join_records", "price_trace", "HOST_COLUMNS", "apply_peak", "select_steps", "OPS_COLUMNS", "KERNEL_COLUMNS", "MEMCPY_COLUMNS", "RECORD_COLUMNS",
           "add_rates", "summarize", "primary_device", "kernel_coverage"]


def _module_names(trace) -> list:
    """Names of the HLO modules the trace carries; none when its metadata cannot be read."""
    try:
        return [m.name for m in trace.hlo_modules]
    except Exception:  # a trace without readable metadata: no XLA clusters to name
        return []


def _price_clusters(ops: pd.DataFrame, calls: list, trace) -> pd.DataFrame:
    """Call ops of XLA clusters the trace has no instruction events for, priced as one row each: the sum
    of their module's entry-computation instructions (a fusion carries what it fused)."""
    from ..costs.hlo.module import module_costs
    ops = ops.copy()
    for column in ("flops", "macs"):
        ops[column] = ops[column].astype("object")
    for position in ops.index[ops["op_name"].isin(calls)]:
        name = str(ops.at[position, "op_type"]).lstrip("_") + "_"
        modules = [m for m in trace.hlo_modules if name in m.name.lstrip("_")]
        if not modules:
            continue
        entry = module_costs(modules[0].proto, modules[0].program_id)
        entry = entry[entry["is_entry"]]
        known = entry["flops"].notna().all()
        ops.at[position, "flops"] = int(entry["flops"].sum()) if known else None
        ops.at[position, "macs"] = int(entry["macs"].fillna(0).sum()) if known and entry["macs"].notna().any() \
            else None
        ops.at[position, "flops_source"] = "xla" if known else "unknown"
        ops.at[position, "hlo_module"] = modules[0].name
        ops.at[position, "note"] = (f"the whole XLA cluster {modules[0].name}: {len(entry)} entry instructions "
                                    "(the trace has no per-instruction events)")
    return add_rates(ops, float(ops["total_time_us"].sum()))[OPS_COLUMNS]


@dataclass
class Joined:
    ops: pd.DataFrame
    summary: dict
    records: pd.DataFrame
    kernels: Optional[pd.DataFrame] = None  # None when the trace has no device kernels or memcpys
    memcpy: Optional[pd.DataFrame] = None
    hosts: Optional[pd.DataFrame] = None  # the hosts table (hosts.py)


def price_trace(trace, graph=None, steps: Optional[int] = None, untimed: Optional[list] = None):
    """(priced records before the split, the chosen step rows, number of chosen steps) of one trace.
    XLA:CPU instruction time is attributed first (trace/xla_cpu.py); the call ops of XLA clusters
    that ran without instruction events are appended to `untimed`."""
    events = trace.events
    if not events["kind"].isin(COMPUTE_KINDS).any():
        raise TraceError(f"{', '.join(trace.paths)}: the trace holds no TensorFlow op, XLA or kernel events")
    chosen = select_steps(events, steps)
    events, untimed_clusters = attribute_xla_time(events)
    if not events["kind"].eq("xla").any() and text_mask(events["op_type"], lambda text: text.startswith("__inference_")).any():
        untimed_clusters = untimed_calls(events, _module_names(trace))
    if untimed is not None:
        untimed.extend(untimed_clusters)
    records = build_records(events, graph, lambda: trace.hlo_modules, chosen)
    step_rows = events[(events["kind"] == "step") & events["step"].isin(chosen)]
    return records, step_rows[["host", "step", "start_ps", "duration_ps"]], len(chosen)


def join(trace, graph=None, steps: Optional[int] = None, capture_info: Optional[dict] = None,
         run_dir: str = "") -> Joined:
    """Price every execution of the chosen steps and build the tables and the summary."""
    untimed: list = []
    records, step_rows, num_steps = price_trace(trace, graph, steps, untimed)
    device_work = trace.events["kind"].isin(DEVICE_WORK_KINDS).any()
    return join_records(records, step_rows, num_steps, trace, graph, steps, capture_info, run_dir, device_work,
                        untimed)


def join_records(records: pd.DataFrame, step_rows: pd.DataFrame, num_steps: int, trace, graph=None,
                 steps: Optional[int] = None, capture_info: Optional[dict] = None, run_dir: str = "",
                 device_work: bool = False, untimed_clusters: tuple = ()) -> Joined:
    """The tables and the summary from priced records (of one trace, or of several files priced apart)."""
    records = apply_split(records)
    records["phase"] = assign_phases(records, bool((capture_info or {}).get("training")))
    ops = ops_table(records)
    summary = build_summary(ops, step_rows, num_steps, trace, graph, capture_info or {}, steps, run_dir)
    if untimed_clusters:
        ops = _price_clusters(ops, list(untimed_clusters), trace)
        summary.update(summarize(ops, step_rows, num_steps))
        summary["warnings"].append(
            f"XLA cluster(s) {', '.join(untimed_clusters[:5])} ran without per-instruction events in the "
            "trace: each is one row, its call op, with the cluster's whole time and FLOPs")
    joined = Joined(ops, summary, records)
    if device_work:
        joined.kernels, joined.memcpy = kernels_table(records), memcpy_table(records)
        summary["kernel_coverage"] = kernel_coverage(joined.kernels) if len(joined.kernels) else None
    if records["host"].nunique() > 1 or step_rows["host"].nunique() > 1:
        joined.hosts = hosts_table(records, step_rows)
        summary["straggler"] = straggler(joined.hosts)
    return joined
