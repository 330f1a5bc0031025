"""Stage 5: join measured op executions with their analytic costs.

`join_ops(trace, graph, steps)` returns `(ops, summary)`. `ops` has one row
per executed op (and distinct input shapes) with these columns:

| column | meaning |
| --- | --- |
| op_name, op_type | TensorFlow node name and kernel type as executed; for XLA: the HLO instruction and its opcode (fusions: `fusion:kLoop`...) |
| hlo_module | the XLA module of an XLA row; empty for TensorFlow ops |
| layer | Keras layer from the name scope (`model/layer/...`), or empty |
| device | device the op ran on (`CPU:0`, `GPU:0`) |
| dtype | the dtype the op computes in |
| input_shapes, output_shapes | tensors as `float[4,32];float[32,8]` |
| occurrences | executions inside the profiled steps |
| flops, macs, bytes | per occurrence (macs only for contraction ops) |
| total_time_us, avg_time_us | measured time, all occurrences / per occurrence |
| gflops_per_s | flops x occurrences / total time |
| gbytes_per_s | bytes x occurrences / total time |
| intensity | flops / bytes (FLOP per byte) |
| time_share | share of all op time in the profiled steps |
| flops_source | `formula`, `zero` (declared zero-FLOP), `xla` (from the HLO in the trace), `shapes` (no graph: attributes inferred from shapes, see note) or `unknown` |
| note | the formula used, the zero reason, or why the count is unknown |
"""
from __future__ import annotations

import statistics
from typing import Optional

import numpy as np
import pandas as pd

from ..costs import UNKNOWN, OpInfo, op_cost
from ..graph import ExecutedGraph, layer_of
from ..graph.shapes import parse_shape_list

OPS_COLUMNS = ["op_name", "op_type", "hlo_module", "layer", "device", "dtype", "input_shapes", "output_shapes",
               "occurrences", "flops", "macs", "bytes", "total_time_us", "avg_time_us", "gflops_per_s",
               "gbytes_per_s", "intensity", "time_share", "flops_source", "note"]


def select_steps(events: pd.DataFrame, wanted: Optional[int]) -> list:
    """Indices of the complete steps to analyse.

    The first recorded step absorbs the profiler's start-up, so it is skipped
    when more steps than wanted were recorded; then the next `wanted` ones.
    """
    step_rows = events[events["kind"] == "step"].sort_values("start_ps")
    recorded = list(step_rows["step"])
    if wanted is None or len(recorded) <= wanted:
        return recorded
    return recorded[1: wanted + 1]


def _short_device(device: str, plane: str) -> str:
    text = device or plane
    if "device:" in text:
        return text.split("device:")[-1]
    if text.startswith("/host:CPU"):
        return "CPU:0"
    return text


def _format(specs) -> str:
    return ";".join("" if s is None else str(s) for s in specs)


def join_ops(trace, graph: Optional[ExecutedGraph] = None, steps: Optional[int] = None,
             hlo: Optional[pd.DataFrame] = None, device_rows: Optional[pd.DataFrame] = None,
             skip_ops: Optional[set] = None):
    """Per-op table and summary.

    `hlo` (from `xla.hlo_costs`) prices XLA instructions run on the host;
    `device_rows` are per-op rows built from GPU kernels (`kernels.device_op_rows`),
    and `skip_ops` the host op events whose real work is those kernels (their
    host time is only the launch).
    """
    events = trace.events
    graph = graph or ExecutedGraph()
    chosen = select_steps(events, steps)
    all_ops = events[events["kind"].isin(("op", "xla"))]
    if chosen:
        all_ops = all_ops[all_ops["step"].isin(chosen)]
    if skip_ops:
        all_ops = all_ops[~all_ops["op_name"].isin(skip_ops)]
    ops = all_ops[all_ops["kind"] == "op"]
    xla_rows = _xla_rows(all_ops[all_ops["kind"] == "xla"], hlo)
    step_rows = events[(events["kind"] == "step") & events["step"].isin(chosen)]

    # Every shape the trace recorded, so producers learn their outputs from consumers.
    distinct = ops.groupby(["op_name", "op_type", "plane"], dropna=False, sort=False)["shape"].agg(
        lambda s: s.dropna().iloc[0] if s.notna().any() else None)
    for (op_name, op_type, _plane), shape in distinct.items():
        node = graph.node(op_name, op_type)
        specs = parse_shape_list(shape)
        if node is not None and specs is not None:
            graph.observe(node, specs)

    grouped = ops.assign(shape=ops["shape"].fillna("")).groupby(
        ["op_name", "op_type", "plane", "shape"], sort=False).agg(
        occurrences=("self_ps", "size"), total_ps=("self_ps", "sum"))
    rows = list(xla_rows)
    if device_rows is not None and len(device_rows):
        rows += device_rows.to_dict("records")
    for (op_name, op_type, plane, shape), agg in grouped.iterrows():
        node = graph.node(op_name, op_type)
        inputs = parse_shape_list(shape) if shape else None
        if node is not None:
            from_graph = graph.input_specs(node)
            if inputs is None:
                inputs = from_graph
            else:
                # Trace shapes win; the graph fills entries the trace left empty (handles excepted).
                inputs = [t if t is not None else (from_graph[i] if i < len(from_graph) else None)
                          for i, t in enumerate(inputs)]
            outputs = graph.output_specs(node)
            attrs = node.attrs
            device = node.device
        else:
            inputs, outputs, attrs, device = inputs or [], [], {}, ""
        cost = op_cost(OpInfo(op_type, inputs, outputs, attrs, attrs_known=node is not None))
        total_us = agg["total_ps"] / 1e6
        occurrences = int(agg["occurrences"])
        rows.append({
            "op_name": op_name, "op_type": op_type, "hlo_module": "", "layer": layer_of(op_name),
            "device": _short_device(device, plane), "dtype": cost.dtype,
            "input_shapes": _format(inputs), "output_shapes": _format(outputs),
            "occurrences": occurrences, "flops": cost.flops, "macs": cost.macs, "bytes": cost.bytes,
            "total_time_us": total_us, "avg_time_us": total_us / occurrences,
            "flops_source": cost.source, "note": cost.note,
        })
    table = pd.DataFrame(rows, columns=[c for c in OPS_COLUMNS])
    table = add_rates(table, float(table["total_time_us"].sum()) if len(table) else 0.0)
    table = table.sort_values("total_time_us", ascending=False, kind="stable").reset_index(drop=True)
    summary = summarize(table, step_rows, len(chosen))
    return table[OPS_COLUMNS], summary


def _xla_rows(xla_events: pd.DataFrame, hlo: Optional[pd.DataFrame]) -> list:
    """One row per XLA instruction run on the host, priced from its HLO."""
    if xla_events.empty:
        return []
    index = {}
    if hlo is not None and len(hlo):
        for record in hlo.to_dict("records"):
            index[(record["hlo_module"], record["hlo_op"])] = record
    grouped = xla_events.groupby(["hlo_module", "op_name", "plane"], sort=False).agg(
        occurrences=("self_ps", "size"), total_ps=("self_ps", "sum"))
    rows = []
    for (module, instruction, plane), agg in grouped.iterrows():
        record = index.get((module, instruction))
        total_us = agg["total_ps"] / 1e6
        occurrences = int(agg["occurrences"])
        if record is None:
            cost = {"flops": None, "macs": None, "bytes": None, "dtype": "", "flops_source": UNKNOWN,
                    "note": "no HLO instruction of this name in the trace's modules", "op_type": "",
                    "layer": "", "shape": ""}
        else:
            kind = record.get("fusion_kind") or ""
            cost = {"flops": record["flops"], "macs": record["macs"], "bytes": record["bytes"],
                    "dtype": record["dtype"], "flops_source": record["flops_source"], "note": record["note"],
                    "op_type": f"{record['opcode']}:{kind}" if kind else record["opcode"],
                    "layer": layer_of(record.get("framework_op") or ""), "shape": record.get("shape") or ""}
        rows.append({
            "op_name": instruction, "op_type": cost["op_type"], "hlo_module": module, "layer": cost["layer"],
            "device": _short_device("", plane), "dtype": cost["dtype"], "input_shapes": "",
            "output_shapes": cost["shape"], "occurrences": occurrences,
            "flops": None if pd.isna(cost["flops"]) else int(cost["flops"]),
            "macs": None if pd.isna(cost["macs"]) else int(cost["macs"]),
            "bytes": None if pd.isna(cost["bytes"]) else int(cost["bytes"]),
            "total_time_us": total_us, "avg_time_us": total_us / occurrences,
            "flops_source": cost["flops_source"], "note": cost["note"]})
    return rows


def add_rates(table: pd.DataFrame, total_op_us: float) -> pd.DataFrame:
    """GFLOP/s, GB/s, intensity and time share from counts and times (NaN where unknown)."""
    table = table.copy()
    for column in ("flops", "macs", "bytes"):
        table[column] = pd.array(table[column], dtype="Int64")
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


def summarize(table: pd.DataFrame, step_rows: pd.DataFrame, num_steps: int) -> dict:
    steps = max(num_steps, 1)
    known = table["flops_source"] != UNKNOWN
    op_time = float(table["total_time_us"].sum())
    flops_total = float((table["flops"].astype("Float64").fillna(0) * table["occurrences"]).sum())
    macs_total = float((table["macs"].astype("Float64").fillna(0) * table["occurrences"]).sum())
    bytes_total = float((table["bytes"].astype("Float64").fillna(0) * table["occurrences"]).sum())
    step_times = list(step_rows["duration_ps"] / 1e6)
    step_time = statistics.median(step_times) if step_times else op_time / steps
    by_dtype = (table.assign(total=table["flops"].astype("Float64").fillna(0) * table["occurrences"])
                .groupby("dtype")["total"].sum() / steps)
    unknown = table[~known]
    unknown_types = (unknown.groupby("op_type")["total_time_us"].sum().sort_values(ascending=False))
    return {
        "steps": num_steps,
        "step_time_us": step_time,
        "step_times_us": step_times,
        "op_time_per_step_us": op_time / steps,
        "flops_per_step": int(round(flops_total / steps)),
        "macs_per_step": int(round(macs_total / steps)),
        "bytes_per_step": int(round(bytes_total / steps)),
        "gflops_per_s": (flops_total / steps) / (step_time * 1e3) if step_time else None,
        "flops_per_step_by_dtype": {k: int(round(v)) for k, v in by_dtype.items() if k and v},
        "coverage": float(table.loc[known, "total_time_us"].sum() / op_time) if op_time else None,
        "unknown_op_types": {k: round(float(v) / steps, 3) for k, v in unknown_types.items()},
        "num_ops": int(len(table)),
    }
