"""Report stage: the files of a result (ops.csv, kernels.csv, memcpy.csv, summary.json, roofline.png,
report.html) and moving a finished run out of its staging directory.

Each file appears whole or not at all (files.atomic_path), and `profile` writes
everything to a staging directory inside `--out` first, so a failed run leaves
no partial output.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import UsageError
from . import OPS_CSV, SUMMARY_JSON, write_ops_csv, write_summary_json

ROOFLINE_PNG = "roofline.png"
REPORT_HTML = "report.html"


def ensure_writable_dir(path) -> Path:
    """Create `path` if needed and prove we can write there, before any work is done."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=out, prefix=".traceflops-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{out}: cannot write output here ({exc.strerror or exc})") from None
    return out


def write_outputs(result, out_dir) -> list:
    """Write the result's tables and summary (and, with ceilings, roofline.png and report.html)."""
    out = ensure_writable_dir(out_dir)
    written = []
    if result.ceilings is not None:
        from . import html, plots
        png = out / ROOFLINE_PNG
        plots.roofline_png(result.ops, result.ceilings, png, title=result.summary.get("model") or "")
        page = out / REPORT_HTML
        html.write_report(result.ops, result.summary, result.ceilings, png, page, result.hosts)
        written += [png, page]
    path = out / OPS_CSV
    write_ops_csv(result.ops, path)
    written.append(path)
    for name, table in result.side_tables.items():
        path = out / f"{name}.csv"
        write_ops_csv(table, path)
        written.append(path)
    path = out / SUMMARY_JSON
    write_summary_json(result.summary, path)
    written.append(path)
    return written


def publish(staging: Path, out_dir: Path, run_dir: Path) -> Path:
    """Move finished outputs from the staging directory into `out_dir`; returns the run's new place."""
    for item in staging.iterdir():
        if item.is_file():
            os.replace(item, out_dir / item.name)
    relative = run_dir.relative_to(staging)
    target = out_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(run_dir, target)
    return target
