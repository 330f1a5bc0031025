"""One self-contained HTML report: key figures, the roofline PNG (inline), per-layer rollup, op table.

Nothing is fetched from the network: CSS and the table sorter are inline,
the image is a base64 data URI, and a Content-Security-Policy forbids any
other source. Every piece of text from the tables goes through html.escape.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path
from typing import Optional

import pandas as pd

from ..files import atomic_write_text

from ..roofline import ROOFLINE_COLUMNS, apply_roofline, layer_rollup, model_figures

CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'")

STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 3px 6px; }
th { background: #f0f0f0; position: sticky; top: 0; }
table.sortable th { cursor: pointer; user-select: none; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.underutilized td { background: #fff6e0; }
tr.above-ceiling td { background: #ffe0e0; }
.warning { border: 2px solid #c00; background: #fff0f0; padding: 0.4em 1em; margin: 0.4em 0; }
.caution { border: 1px solid #c90; background: #fffaf0; padding: 0.4em 1em; margin: 0.4em 0; }
.info { border: 1px solid #69c; background: #f4f8ff; padding: 0.4em 1em; margin: 0.4em 0; }
.overview { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
#key-figures { flex: 0 1 26em; font-size: 1.05em; } #key-figures dd { white-space: nowrap; }
#roofline { flex: 1 1 34em; } #roofline img { max-height: 72vh; }
dl.figures { display: grid; grid-template-columns: max-content auto; gap: 2px 1.2em; }
dl.figures dt { font-weight: 600; } dl.figures dd { margin: 0; }
.note { color: #555; font-size: 0.85em; }
img.roofline { max-width: 100%; border: 1px solid #ddd; }
"""

# Click a header to sort by it (again to reverse). Cells carry data-sort with the raw
# number; empty values sort last either way. Also marks whether the image decoded.
SCRIPT = """
(function () {
  function key(cell) {
    var raw = cell.getAttribute('data-sort');
    if (raw === null) { return {num: false, text: cell.textContent.trim().toLowerCase()}; }
    if (raw === '') { return null; }
    return {num: true, value: parseFloat(raw)};
  }
  function compare(a, b, direction) {
    if (a === null && b === null) { return 0; }
    if (a === null) { return 1; }
    if (b === null) { return -1; }
    if (a.num && b.num) { return direction * (a.value - b.value); }
    var x = a.num ? String(a.value) : a.text, y = b.num ? String(b.value) : b.text;
    return direction * (x < y ? -1 : x > y ? 1 : 0);
  }
  function sortBy(table, header, column) {
    var direction = header.classList.contains('sorted-asc') ? -1 : 1;
    Array.prototype.forEach.call(table.querySelectorAll('th'), function (th) {
      th.classList.remove('sorted-asc', 'sorted-desc');
    });
    header.classList.add(direction === 1 ? 'sorted-asc' : 'sorted-desc');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (row, index) { return {row: row, key: key(row.cells[column]), index: index}; });
    keyed.sort(function (p, q) { return compare(p.key, q.key, direction) || p.index - q.index; });
    keyed.forEach(function (item) { body.appendChild(item.row); });
  }
  Array.prototype.forEach.call(document.querySelectorAll('table.sortable'), function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      header.addEventListener('click', function () { sortBy(table, header, column); });
    });
  });
  window.addEventListener('load', function () {
    var image = document.getElementById('roofline-image');
    var ok = image && image.complete && image.naturalWidth > 0;
    document.documentElement.setAttribute('data-roofline-image', ok ? 'loaded' : 'failed');
  });
})();
"""

OP_COLUMNS = [
    # (column, header, kind): kind picks the cell format
    ("op_name", "op", "text"), ("op_type", "type", "text"), ("layer", "layer", "text"),
    ("dtype", "dtype", "text"), ("input_shapes", "inputs", "text"), ("occurrences", "runs", "int"),
    ("flops", "FLOPs/run", "int"), ("bytes", "bytes/run", "int"), ("total_time_us", "time us", "float"),
    ("time_share", "time %", "percent"), ("gflops_per_s", "GFLOP/s", "float"),
    ("gbytes_per_s", "GB/s", "float"), ("intensity", "FLOP/B", "float"), ("bound", "bound", "text"),
    ("attainable_gflops_per_s", "attainable GFLOP/s", "float"), ("efficiency", "efficiency", "percent"),
    ("recoverable_time_us", "recoverable us", "float"), ("flags", "flags", "text"),
    ("flops_source", "FLOPs from", "text"), ("note", "note", "text"),
]
LAYER_COLUMNS = [
    ("layer", "layer", "text"), ("ops", "ops", "int"), ("flops_per_step", "FLOPs/step", "int"),
    ("time_us_per_step", "time us/step", "float"), ("time_share", "time %", "percent"),
    ("gflops_per_s", "GFLOP/s", "float"), ("unknown_flops_time_us_per_step", "unknown-FLOP us/step", "float"),
    ("recoverable_time_us_per_step", "recoverable us/step", "float"),
    ("memory_bound_time_share", "memory-bound %", "percent"),
]


def _missing(value) -> bool:
    if value is None or value is pd.NA:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _format(value, kind: str) -> str:
    if _missing(value):
        return ""
    if kind == "int":
        return f"{int(value):,}"
    if kind == "float":
        number = float(value)
        return f"{number:,.1f}" if abs(number) >= 100 else f"{number:.3g}"
    if kind == "percent":
        return f"{100 * float(value):.1f}%"
    return str(value)


def _cell(value, kind: str) -> str:
    shown = html.escape(_format(value, kind))
    if kind == "text":
        return f"<td>{shown}</td>"
    raw = "" if _missing(value) or not math.isfinite(float(value)) else repr(float(value))
    return f'<td class="num" data-sort="{html.escape(raw)}">{shown}</td>'


def html_table(frame: pd.DataFrame, columns: list, table_id: str, row_classes: Optional[list] = None) -> str:
    """A sortable <table> of `frame`'s `columns` ((column, header, kind) triples) present in it."""
    present = [(c, h, k) for c, h, k in columns if c in frame.columns]
    head = "".join(f'<th title="{html.escape(c)}">{html.escape(h)}</th>' for c, h, _ in present)
    body = []
    for position, row in enumerate(frame.itertuples(index=False)):
        values = row._asdict()
        cells = "".join(_cell(values[c], k) for c, _, k in present)
        css = row_classes[position] if row_classes else ""
        body.append(f'<tr class="{css}">{cells}</tr>' if css else f"<tr>{cells}</tr>")
    return (f'<table class="sortable" id="{table_id}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


def _flags(row) -> str:
    flags = []
    has_flops = not _missing(row.get("flops")) and float(row.get("flops")) > 0
    kind = row.get("above_ceiling_kind") or ""
    if row.get("above_ceiling") and has_flops:
        flags.append({"compute": "ABOVE THE PEAK: COUNTING ERROR?", "ceiling": "above the measured ceiling (low?)",
                      "memory": "above the memory roof (in cache)"}.get(kind, "above its ceiling"))
    if row.get("underutilized"):
        flags.append("underutilized")
    return ", ".join(flags)


def _op_rows(table: pd.DataFrame) -> tuple:
    """(table with a flags column, css class per row)."""
    records = table.to_dict("records")
    shown = table.assign(flags=[_flags(r) for r in records])
    classes = ["above-ceiling" if "COUNTING" in flag else "underutilized" if r.get("underutilized")
               else "" for r, flag in zip(records, shown["flags"])]
    return shown, classes


def figure_list(items: list) -> str:
    """(label, value) pairs as a <dl> of figures."""
    rows = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in items)
    return f'<dl class="figures">{rows}</dl>'


def _fmt(value, unit: str = "", digits: int = 1) -> str:
    if _missing(value):
        return "unknown"
    return f"{float(value):,.{digits}f}{unit}"


def _summary_items(summary: dict, ceilings: dict, figures: dict) -> list:
    peaks = ", ".join(f"{d} {_fmt(v)} GFLOP/s" for d, v in ceilings["peak_gflops_per_s"].items())
    theory = ceilings.get("theoretical") or {}
    theory_peaks = ", ".join(f"{d} {_fmt(v)}" for d, v in (theory.get("peak_gflops_per_s") or {}).items())
    share = figures["memory_bound_time_share"]
    mfu = figures["model_flops_utilization"]
    return [
        ("device", ceilings.get("device", "")),
        ("steps profiled", summary.get("steps", "")),
        ("step time", _fmt(summary.get("step_time_us"), " us")),
        ("FLOPs per step", "unknown" if summary.get("flops_per_step") is None
         else f"{int(summary['flops_per_step']):,}"),
        ("achieved (whole step)", _fmt(figures["achieved_gflops_per_s"], " GFLOP/s", 2)),
        ("model FLOPs utilization (vs "
         f"{figures.get('model_flops_utilization_roof') or figures['reference_dtype']} peak)",
         "unknown" if mfu is None else f"{100 * mfu:.1f}%" + (f" ({summary['model_flops_utilization_note']})"
                                                              if summary.get("model_flops_utilization_note")
                                                              else "")),
        ("measured compute ceilings", peaks),
        ("measured bandwidth", _fmt(ceilings.get("bandwidth_gbytes_per_s"), " GB/s")),
        ("ridge intensity", _fmt(figures["ridge_intensity"], " FLOP/byte", 2)),
        ("theoretical peaks (GFLOP/s)", theory_peaks or "unknown"),
        ("op time in memory-bound ops", "unknown" if share is None else f"{100 * share:.1f}%"),
        ("underutilized ops", figures["underutilized_ops"]),
        ("recoverable time per step", _fmt(figures["recoverable_time_us_per_step"], " us")),
        ("FLOP coverage (share of op time with known FLOPs)",
         "unknown" if summary.get("coverage") is None else f"{100 * summary['coverage']:.1f}%"),
        ("ceilings", f"{ceilings.get('source', '')}{' (cached)' if ceilings.get('cached') else ''}"),
    ]


WARNINGS_SHOWN = 3  # per group: the count, the first few, the rest folded


def _op_line(op: dict) -> str:
    return (f"{html.escape(str(op['op_name']))} ({html.escape(str(op['op_type']))}): "
            f"{_fmt(op['gflops_per_s'], ' GFLOP/s', 2)} achieved, "
            f"{_fmt(op['attainable_gflops_per_s'], ' GFLOP/s', 2)} attainable")


def warning_groups(summary: dict, figures: dict) -> list:
    """[(title, css class, [html items])]: counting errors, a low ceiling, data in cache, other warnings.
    Only ops with FLOPs appear (zero-FLOP ops are never flagged by the roofline)."""
    above = [op for op in figures["above_ceiling_ops"] if op.get("gflops_per_s")]
    by_kind = {kind: [_op_line(op) for op in above if op["kind"] == kind] for kind in ("compute", "ceiling",
                                                                                    "memory")}
    trust = [w for w in summary.get("warnings") or [] if "looks low" in w or "measured again" in w]
    others = [w for w in summary.get("warnings") or []
              if w not in trust and not w.startswith("COUNTING ERROR?")]
    groups = [
        ("ops above the theoretical peak: counting or timing errors", "warning", by_kind["compute"]),
        ("the measured ceiling looks low or stale", "caution", [html.escape(w) for w in trust] + by_kind["ceiling"]),
        ("ops above the memory roof: their data stayed in cache (not an error)", "info", by_kind["memory"]),
        ("other warnings", "caution", [html.escape(str(w)) for w in others]),
    ]
    return [group for group in groups if group[2]]


def _warnings_html(groups: list) -> str:
    parts = []
    for title, css, items in groups:
        shown = "".join(f"<li>{item}</li>" for item in items[:WARNINGS_SHOWN])
        rest = items[WARNINGS_SHOWN:]
        folded = (f"<details><summary>{len(rest)} more</summary><ul>"
                  + "".join(f"<li>{item}</li>" for item in rest) + "</ul></details>") if rest else ""
        parts.append(f'<div class="{css}"><strong>{len(items)} {html.escape(title)}</strong>'
                     f"<ul>{shown}</ul>{folded}</div>")
    return "\n".join(parts)


def _key_figures(summary: dict, figures: dict) -> list:
    mfu = figures["model_flops_utilization"]
    note = summary.get("model_flops_utilization_note")
    per = "per step" if summary.get("steps") else "whole trace"
    return [
        (f"time ({per})", _fmt(summary.get("step_time_us"), " us")),
        (f"FLOPs ({per})", human_count(summary.get("flops_per_step"))),
        ("achieved", _fmt(figures["achieved_gflops_per_s"], " GFLOP/s", 2)),
        (f"model FLOPs utilization (vs {figures['reference_dtype']} ceiling)",
         "unknown" if mfu is None else f"{100 * mfu:.1f}%" + (f" ({note})" if note else "")),
        ("op time in memory-bound ops", "unknown" if figures["memory_bound_time_share"] is None
         else f"{100 * figures['memory_bound_time_share']:.1f}%"),
        ("FLOP coverage", "unknown" if summary.get("coverage") is None else f"{100 * summary['coverage']:.1f}%"),
    ]


def human_count(value) -> str:
    if _missing(value):
        return "unknown"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(float(value)) >= scale:
            return f"{float(value) / scale:.3g} {prefix}FLOP"
    return f"{float(value):.0f} FLOP"


def _image_tag(png_path) -> str:
    encoded = base64.b64encode(Path(png_path).read_bytes()).decode("ascii")
    return (f'<img id="roofline-image" class="roofline" alt="roofline chart" '
            f'src="data:image/png;base64,{encoded}">')


HOST_COLUMNS = [
    ("host", "host", "text"), ("steps", "steps", "int"), ("median_step_time_us", "median step us", "float"),
    ("step_time_skew", "skew vs median host", "percent"), ("flops_per_step", "FLOPs/step", "int"),
    ("gflops_per_s", "GFLOP/s", "float"), ("mfu", "MFU", "percent"),
]


def _hosts_section(hosts: Optional[pd.DataFrame], summary: dict) -> str:
    """The per-host section of a multi-host trace (join/hosts.py), naming the straggler."""
    if hosts is None or hosts.empty:
        return ""
    slow = summary.get("straggler") or {}
    note = (f'<p class="note">Straggler: {html.escape(str(slow["host"]))} (median step '
            f'{slow["step_time_skew"]:+.1%} against the median host).</p>') if slow else ""
    return f"""<section id="hosts"><h2>Hosts</h2>
{note}
{html_table(hosts, HOST_COLUMNS, "host-table")}
</section>
"""


def render_report(ops: pd.DataFrame, summary: dict, ceilings: dict, png_path, hosts=None) -> str:
    """The report as one HTML string (with `hosts`, the hosts table, a per-host section)."""
    table = ops if all(c in ops for c in ROOFLINE_COLUMNS) else apply_roofline(ops, ceilings)
    figures = model_figures(table, summary, ceilings)
    layers = layer_rollup(table, steps=summary.get("steps") or 1)
    shown, classes = _op_rows(table)
    assumptions = (ceilings.get("theoretical") or {}).get("assumptions") or []
    assumption_list = "".join(f"<li>{html.escape(str(a))}</li>" for a in assumptions)
    title = f"traceflops report: {ceilings.get('device', '')}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{html.escape(CSP)}">
<title>{html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<section id="overview" class="overview">
<div id="key-figures">{figure_list(_key_figures(summary, figures))}</div>
<div id="roofline">{_image_tag(png_path)}
<p class="note">Points: ops with known FLOPs and bytes; area by time share. Ceilings are measured through
TensorFlow on this device (GEMM sweep and streaming add). Efficiency above 100% on the memory roof means the
data stayed in cache: the roof is the DRAM streaming bandwidth.</p></div>
</section>
<section id="warnings">{_warnings_html(warning_groups(summary, figures))}</section>
<section id="summary"><h2>All figures</h2>
{figure_list(_summary_items(summary, ceilings, figures))}
<details><summary class="note">theoretical-peak assumptions</summary><ul class="note">{assumption_list}</ul></details>
</section>
{_hosts_section(hosts, summary)}<section id="layers"><h2>Per-layer rollup</h2>
{html_table(layers, LAYER_COLUMNS, "layer-table")}
</section>
<section id="ops"><h2>Ops</h2>
<p class="note">Click a header to sort. Red rows run above the peak (a counting or timing error); amber rows
are underutilized. Ops without FLOPs are never flagged.</p>
{html_table(shown, OP_COLUMNS, "op-table", classes)}
</section>
<script>{SCRIPT}</script>
</body>
</html>
"""


def write_report(ops: pd.DataFrame, summary: dict, ceilings: dict, png_path, path, hosts=None) -> str:
    """Write the self-contained report to `path` (temp file in the same folder, then rename); returns it."""
    text = render_report(ops, summary, ceilings, png_path, hosts)
    atomic_write_text(path, text)
    return str(path)
