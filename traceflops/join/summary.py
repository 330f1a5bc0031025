"""Join, the summary: per-step totals, coverage and the warnings an analysis carries."""
from __future__ import annotations

import statistics

import pandas as pd

from ..costs import UNKNOWN


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
        "totals_cover": "per step" if num_steps else "whole trace",
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


def by_phase(table: pd.DataFrame, num_steps: int) -> dict:
    """FLOPs and MACs per step of each training phase (present phases only, in pipeline order)."""
    from ..graph.phases import PHASES
    steps = max(num_steps, 1)
    occurrences = table["occurrences"]
    frame = table.assign(flop_total=table["flops"].astype("Float64").fillna(0) * occurrences,
                         mac_total=table["macs"].astype("Float64").fillna(0) * occurrences)
    grouped = frame.groupby("phase")[["flop_total", "mac_total"]].sum()
    present = [p for p in PHASES if p in grouped.index]
    return {"flops_per_step_by_phase": {p: int(round(grouped.loc[p, "flop_total"] / steps)) for p in present},
            "macs_per_step_by_phase": {p: int(round(grouped.loc[p, "mac_total"] / steps)) for p in present}}


# Below this share of op time with a known count, totals would mostly measure what is missing.
MIN_COVERAGE_FOR_TOTALS = 0.5
_TOTALS = ("flops_per_step", "macs_per_step", "bytes_per_step", "gflops_per_s", "flops_per_step_by_dtype",
           "flops_per_step_by_phase", "macs_per_step_by_phase")
NO_SHAPES_WARNING = (
    "the trace's op events carry no input shapes and no executed graph lies beside it: TensorFlow 2.21 records "
    "at host tracer level 2 whatever profiler options are passed (the TensorBoard callback's profile_batch and "
    "tf.profiler.experimental.start included), so most counts are unknown; analyze it with --model MODEL.keras "
    "(and --batch-size, --train as it ran), or record with `traceflops profile` or traceflops.keras.ProfileCallback")


def _tf_ops_and_shapes(trace, graph) -> tuple:
    """(whether the trace has TensorFlow op events, whether they carry no shapes and no executed graph
    describes them); from two columns, once: a trace has millions of rows."""
    is_op = (trace.events["kind"] == "op").to_numpy()
    has_ops = bool(is_op.any())
    no_shapes = graph is None and has_ops and not trace.events["shape"].notna().to_numpy()[is_op].any()
    return has_ops, bool(no_shapes)


def withhold_misleading_totals(summary: dict, no_shapes: bool = False) -> None:
    """Totals of a trace whose counts are mostly unknown, or that has no shapes at all (its contractions
    cannot be counted, however much else is), are withheld (None, "unknown"), never 0."""
    coverage = summary.get("coverage")
    if not no_shapes and coverage is not None and coverage >= MIN_COVERAGE_FOR_TOTALS:
        return
    for key in _TOTALS:
        if key in summary:
            summary[key] = None
    why = ("the trace has no shapes, so its contractions cannot be counted" if no_shapes else
           "they would mostly measure what is missing")
    summary["warnings"].append(
        f"{0 if coverage is None else 100 * coverage:.1f}% of op time has a known count: FLOP totals and "
        f"rates are withheld (unknown): {why}")


def analysis_warnings(trace, graph, summary: dict, steps_wanted, capture_info: dict, has_tf_ops: bool,
                      no_shapes: bool) -> list:
    """What the reader of the figures must know: the trace's own errors and damage, missing steps,
    an exposed profiler server, a missing executed graph or missing shapes."""
    warnings = list(trace.errors) + list(trace.warnings)
    if no_shapes:
        warnings.append(NO_SHAPES_WARNING)
    if steps_wanted and summary["steps"] < steps_wanted:
        warnings.append(f"{summary['steps']} complete steps were recorded, fewer than the {steps_wanted} asked for")
    if "listened on all interfaces" in (capture_info.get("profiler_server") or ""):
        warnings.append(capture_info["profiler_server"])
    warnings += [w for w in capture_info.get("capture_warnings") or [] if w not in warnings]
    if graph is None and has_tf_ops and not no_shapes and capture_info.get("backend") != "jax":
        warnings.append("no executed graph beside the trace: attributes (strides, transposes, fused ops, "
                        "einsum equations) are unknown, and counts that need them are unknown")
    if summary["steps"] == 0:
        warnings.append("no step markers in the trace: totals cover the whole trace")
    return warnings


def primary_device(ops: pd.DataFrame) -> str:
    """The device with the most op time: the one the model-level figures describe."""
    if ops.empty:
        return "CPU:0"
    return ops.groupby("device")["total_time_us"].sum().idxmax()


def profiler_overhead(capture_info: dict) -> dict:
    """Median wall time of the profiled calls / of the unprofiled warm-up calls after compilation (same
    run, same timing); None for traces recorded elsewhere."""
    profiled = capture_info.get("step_wall_times_us") or []
    unprofiled = capture_info.get("unprofiled_step_wall_times_us") or []
    if not profiled or not unprofiled:
        return {"profiler_overhead": None}
    with_profiler, without = statistics.median(profiled), statistics.median(unprofiled)
    return {"profiler_overhead": with_profiler / without if without > 0 else None,
            "profiled_step_wall_time_us": with_profiler, "unprofiled_step_wall_time_us": without}


def build_summary(ops: pd.DataFrame, step_rows: pd.DataFrame, num_steps: int, trace, graph,
                  capture_info: dict, steps_wanted, run_dir: str) -> dict:
    """summary.json: what ran (capture info), the per-step figures, and the warnings."""
    from pathlib import Path
    figures = summarize(ops, step_rows, num_steps)
    has_tf_ops, no_shapes = _tf_ops_and_shapes(trace, graph)
    if set(ops["phase"]) - {"forward"}:  # a training step: the split of its work
        figures.update(by_phase(ops, num_steps))
    summary = {
        "model": capture_info.get("model") or Path(trace.paths[0]).name,
        "device": capture_info.get("device", "").replace("/device:", "") or primary_device(ops),
        "batch_size": capture_info.get("batch_size"),
        **figures,
        "host_tracer_level": capture_info.get("host_tracer_level"),
        "inter_op_threads": capture_info.get("inter_op_threads"),
        "tensorflow": capture_info.get("tensorflow"),
        **({"training": capture_info["training"]} if capture_info.get("training") else {}),
        **profiler_overhead(capture_info),
        **({"backend": "jax", "jax": capture_info.get("jax"), "keras": capture_info.get("keras")}
           if capture_info.get("backend") == "jax" else {}),
        "trace_files": list(trace.paths),
        "run_dir": run_dir,
        "warnings": analysis_warnings(trace, graph, figures, steps_wanted, capture_info, has_tf_ops, no_shapes),
    }
    withhold_misleading_totals(summary, no_shapes)
    return summary
