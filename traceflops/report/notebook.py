"""Report stage, in a notebook: the rich display of a `Result` (`Result._repr_html_`).

The summary figures, the roofline image (inline PNG) and the top ops by time,
in one HTML fragment that needs no network and no script.
"""
from __future__ import annotations

import base64
import html
import io
import tempfile
from pathlib import Path

from .html import OP_COLUMNS, figure_list, html_table

TOP_OPS = 10
_FRAGMENT_STYLE = ("<style>.traceflops dl.figures{display:grid;grid-template-columns:max-content auto;"
                   "gap:2px 12px}.traceflops dt{font-weight:600}.traceflops img{max-width:640px}"
                   ".traceflops td.num{text-align:right}</style>")


def _figure(label: str, value, unit: str = "", scale: float = 1.0, digits: int = 4) -> tuple:
    if value is None:
        return label, "unknown"
    return label, f"{float(value) * scale:.{digits}g}{unit}"


def summary_items(summary: dict) -> list:
    """The figures a notebook user looks for first."""
    steps = summary.get("steps") or 0
    per = "per step" if steps else "whole trace"
    items = [("model", f"{summary.get('model') or '?'} on {summary.get('device') or '?'}"),
             ("steps", steps or "no step markers"),
             _figure(f"FLOPs {per}", summary.get("flops_per_step")),
             _figure(f"MACs {per} (contractions)", summary.get("macs_per_step")),
             _figure("median step time", summary.get("step_time_us"), " µs"),
             _figure("achieved", summary.get("gflops_per_s"), " GFLOP/s"),
             _figure("coverage (op time with a known count)", summary.get("coverage"), "%", 100)]
    if summary.get("model_flops_utilization") is not None:
        roof = summary.get("model_flops_utilization_roof")
        items.append(_figure("model FLOPs utilization" + (f" (vs {roof} peak)" if roof else ""),
                             summary["model_flops_utilization"], "%", 100))
    items += [("warning", w) for w in (summary.get("warnings") or [])[:5]]
    return items


def _roofline_img(result) -> str:
    if result.ceilings is None:
        return ""
    from .plots import roofline_png
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "roofline.png"
        roofline_png(result.ops, result.ceilings, path, title=result.summary.get("model") or "")
        encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="roofline chart" src="data:image/png;base64,{encoded}">'


def result_html(result) -> str:
    """The HTML fragment Jupyter shows for a Result."""
    top = result.ops.head(TOP_OPS)
    parts = [_FRAGMENT_STYLE, '<div class="traceflops">', "<h3>traceflops</h3>",
             figure_list(summary_items(result.summary)), _roofline_img(result),
             f"<h4>Top {len(top)} of {len(result.ops)} ops by time</h4>", html_table(top, OP_COLUMNS, "traceflops-ops"),
             "</div>"]
    return "\n".join(p for p in parts if p)


def result_text(result) -> str:
    """A short plain-text form (the repr outside notebooks)."""
    buffer = io.StringIO()
    for label, value in summary_items(result.summary):
        buffer.write(f"{label}: {html.unescape(str(value))}\n")
    return buffer.getvalue().rstrip()
