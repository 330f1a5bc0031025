"""Stage 7: present the results: a terminal table, `ops.csv`, `summary.json`.

Every file is written to a temporary name in its final directory and renamed
into place, so an interrupted run never leaves a half-written file.
"""
from __future__ import annotations

import json
import math
import pandas as pd

from ..files import atomic_write_text  # noqa: F401  (re-exported: callers write through report)

OPS_CSV = "ops.csv"
SUMMARY_JSON = "summary.json"


def to_jsonable(value):
    """Summary values to plain JSON: NaN and pandas NA become null."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if value is pd.NA or value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_ops_csv(ops: pd.DataFrame, path) -> None:
    atomic_write_text(path, ops.to_csv(index=False))


def write_summary_json(summary: dict, path) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(summary), indent=2) + "\n")


def human(value, unit: str = "") -> str:
    """1234567 -> '1.23 M'; None -> '?'."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "?"
    value = float(value)
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def _number(value, digits: int = 3) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{float(value):.{digits}g}"


def _display_name(op_name: str) -> str:
    """Drop the model's own scope (`model_1/`), which every op shares."""
    head, sep, rest = op_name.partition("/")
    return rest if sep and "/" in rest else op_name


def render_terminal(ops: pd.DataFrame, summary: dict, top: int = 15, console=None) -> None:
    """Top ops by time, then the totals, as rich tables."""
    from rich.console import Console
    from rich.table import Table

    class _Console(Console):
        def on_broken_pipe(self) -> None:  # rich would exit 1 itself; the caller decides (cli.py: 141)
            raise BrokenPipeError

    if console is None:
        console = _Console()
        if not console.is_terminal:
            console = _Console(width=160)  # piped output: wide enough that op names stay whole
    steps = summary.get("steps")
    covered = f"{steps} steps" if steps else "whole trace, no step markers"
    table = Table(title=f"Top {min(top, len(ops))} of {len(ops)} ops by time ({covered})", title_justify="left")
    several_devices = "device" in ops.columns and ops["device"].nunique() > 1
    headers = [("op", "left")] + ([("device", "left")] if several_devices else []) + [
        ("type", "left"), ("runs", "right"), ("FLOPs/run", "right"), ("bytes/run", "right"), ("avg µs", "right"),
        ("time %", "right"), ("GFLOP/s", "right"), ("GB/s", "right"), ("FLOP/B", "right"), ("count", "left")]
    for header, justify in headers:
        table.add_column(header, justify=justify, overflow="fold")
    extra = [c for c in ("efficiency", "bound") if c in ops.columns]
    for column in extra:
        table.add_column(column, justify="right")
    for _, row in ops.head(top).iterrows():
        cells = [_display_name(str(row["op_name"]))] + ([str(row["device"])] if several_devices else []) + [
                 str(row["op_type"]), str(row["occurrences"]),
                 human(row["flops"]), human(row["bytes"], "B"), _number(row["avg_time_us"]),
                 _number(100 * row["time_share"], 3), _number(row["gflops_per_s"]),
                 _number(row["gbytes_per_s"]), _number(row["intensity"]), row["flops_source"]]
        cells += [_number(row["efficiency"], 2) if c == "efficiency" else str(row[c] or "") for c in extra]
        table.add_row(*cells)
    console.print(table)
    console.print(summary_lines(summary), highlight=False)


def _total(value, unit: str) -> str:
    """`1.52 GFLOP`, `512 MAC`; `unknown` where a total is withheld."""
    return "unknown" if value is None else f"{human(value)}{unit}".replace("  ", " ") if value >= 1000 else f"{value} {unit}"


def _time_line(summary: dict) -> str:
    if not summary.get("steps"):
        return f"op time (whole trace)     {_number(summary.get('op_time_per_step_us'), 4)} µs"
    return (f"median step time          {_number(summary.get('step_time_us'), 4)} µs "
            f"(op time {_number(summary.get('op_time_per_step_us'), 4)} µs)")


def summary_lines(summary: dict) -> str:
    coverage = summary.get("coverage")
    steps = summary.get("steps")
    # "per step" only for real steps: without step markers every total covers the whole trace.
    per = "per step" if steps else "in the whole trace"
    lines = [
        f"model {summary.get('model') or '?'} on {summary.get('device') or '?'}"
        + (f", batch {summary['batch_size']}" if summary.get("batch_size") else "")
        + (f", {summary['steps']} profiled steps" if summary.get("steps") else ", whole trace (no step markers)"),
        f"{'FLOPs ' + per:<26}{_total(summary.get('flops_per_step'), 'FLOP')} "
        f"({_total(summary.get('macs_per_step'), 'MAC')} in contractions)",
        _time_line(summary),
        "achieved                  " + ("unknown" if summary.get("gflops_per_s") is None else
                                       f"{_number(summary.get('gflops_per_s'), 4)} GFLOP/s over the "
                                       + ("step" if steps else "trace's op time")),
        f"coverage                  {'?' if coverage is None else f'{100 * coverage:.2f}'}% of op time has a known count",
    ]
    for key, unit in (("flops_per_step_by_phase", "FLOP"), ("macs_per_step_by_phase", "MAC")):
        split = summary.get(key) or {}
        if split:
            label = f"{unit}s per step by phase"
            lines.append(f"{label:<26}" + ", ".join(f"{phase} {human(value)}{unit}" for phase, value in split.items()))
    unknown = summary.get("unknown_op_types") or {}
    if unknown:
        unit = "µs/step" if steps else "µs in the trace"
        listed = ", ".join(f"{k} ({v:.3g} {unit})" for k, v in list(unknown.items())[:8])
        lines.append(f"unknown op types          {listed}")
    if summary.get("kernel_coverage") is not None:
        lines.append(f"kernel coverage           {100 * summary['kernel_coverage']:.2f}% of GPU kernel time "
                     "has a known count (kernels.csv)")
    match = summary.get("model_match")
    if match:
        lines.append(f"matched to the model      {match['by_name']} op events by name, {match['by_structure']} by "
                     f"structure, {match['unmatched']} unmatched")
    for key, label in (("model_flops_utilization", "model FLOPs utilization"),
                       ("memory_bound_time_share", "time in memory-bound ops")):
        if summary.get(key) is not None:
            note = summary.get(key + "_note")
            if key == "model_flops_utilization" and summary[key] > 1 and not note:
                note = "above 100%: the ceiling is low or a count is too high"
            roof = summary.get(key + "_roof")
            against = f" of the {roof} peak" if roof else ""
            lines.append(f"{label:<26}{100 * summary[key]:.2f}%{against}" + (f" ({note})" if note else ""))
    if summary.get("memory_roof_note"):
        lines.append(f"{'memory roof':<26}{summary['memory_roof_note']}")
    slow = summary.get("straggler")
    if slow:
        lines.append(f"straggler                 {slow['host']}: median step {_number(slow['median_step_time_us'], 4)}"
                     f" µs, {100 * slow['step_time_skew']:+.1f}% against the median host (hosts.csv)")
    if summary.get("profiler_overhead") is not None:
        lines.append(f"profiler overhead         {summary['profiler_overhead']:.3f}x median step time, "
                     "profiled / unprofiled")
    for warning in summary.get("warnings") or []:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)
