"""The roofline PNG and the self-contained HTML report, from a hand-made ops table."""
import base64
import html
import re

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from traceflops.report.html import write_report
from traceflops.report.plots import DPI, FIGURE_INCHES, roofline_png
from traceflops.roofline import apply_roofline

from samples import REPORT_CEILINGS as CEILINGS, REPORT_ROWS as ROWS, REPORT_SUMMARY as SUMMARY
from samples import report_ops as make_ops

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "roofline.png"
    roofline_png(make_ops(), CEILINGS, path, title="test model")
    return path


def test_png_is_valid_sized_and_not_blank(png):
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC
    pixels = matplotlib.image.imread(str(png))
    assert pixels.shape[:2] == (round(FIGURE_INCHES[1] * DPI), round(FIGURE_INCHES[0] * DPI))
    assert float(np.var(pixels[..., :3])) > 0.001
    # Some pixels carry colour (ceiling lines and op points), not only grey text.
    rgb = pixels[..., :3]
    assert float((rgb.max(axis=2) - rgb.min(axis=2)).max()) > 0.3


def test_png_write_leaves_no_temporary_files(png):
    assert sorted(p.name for p in png.parent.iterdir()) == ["roofline.png"]


def test_png_with_no_plottable_ops(tmp_path):
    ops = make_ops().iloc[[6, 7]]  # a zero-FLOP op and an unknown one
    path = tmp_path / "empty.png"
    roofline_png(ops, CEILINGS, path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert float(np.var(matplotlib.image.imread(str(path))[..., :3])) > 0.001


@pytest.fixture
def report(tmp_path, png):
    path = tmp_path / "report.html"
    write_report(make_ops(), SUMMARY, CEILINGS, png, path)
    return path.read_text(encoding="utf-8")


def test_report_embeds_the_png(report, png):
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', report)
    assert match is not None
    assert base64.b64decode(match.group(1)) == png.read_bytes()


def test_report_has_no_network_references(report):
    assert re.search(r"https?://", report) is None
    assert re.search(r"""(src|href)\s*=\s*["'](?!data:)""", report) is None
    assert "@import" not in report and "url(" not in report
    assert html.escape("default-src 'none'") in report  # the CSP meta forbids any other source


def test_report_has_sections_and_every_op_row(report):
    for section in ('id="summary"', 'id="roofline"', 'id="layers"', 'id="ops"'):
        assert section in report
    op_table = report.split('id="op-table"')[1].split("</table>")[0]
    assert op_table.count("<tr") == len(ROWS) + 1  # header row + one per op
    assert "model/dense/MatMul" in op_table
    layer_table = report.split('id="layer-table"')[1].split("</table>")[0]
    for layer in ("dense", "conv", "norm", "attn", "pool", "(no layer)", "weird"):
        assert f"<td>{layer}</td>" in layer_table


def test_report_escapes_text(report):
    assert "model/&lt;odd&gt; &amp; name" in report
    assert "<odd>" not in report
    assert "2*M*N*K &lt;matmul&gt;" in report
    assert "2 FMA pipes &lt;assumed&gt;" in report


def test_report_sort_keys_and_flags(report):
    # numeric cells carry their raw value for the sorter
    assert 'data-sort="80000.0"' in report
    assert "<script>" in report and "sortable" in report
    # whole step: 2.909e9 FLOP / 64000 us = 45.45 GFLOP/s, i.e. 45.5% of float32's 100 GFLOP/s
    assert "45.45 GFLOP/s" in report
    assert "45.5%" in report


def test_report_flags_above_ceiling_loudly(tmp_path, png):
    ops = make_ops()
    ops.loc[0, "total_time_us"] = 10_000.0  # 4e9 FLOP in 10 ms = 400 GFLOP/s on a 100 GFLOP/s ceiling
    ops.loc[0, "gflops_per_s"] = 400.0
    path = tmp_path / "report.html"
    write_report(apply_roofline(ops, CEILINGS), SUMMARY, CEILINGS, png, path)
    text = path.read_text(encoding="utf-8")
    assert 'class="warning"' in text
    assert "ABOVE THE PEAK: COUNTING ERROR?" in text  # issue 13: the flag names what it means
    assert '<tr class="above-ceiling">' in text


def test_report_opens_on_figures_and_roofline_with_grouped_capped_warnings(tmp_path, png):
    """Key figures and the roofline come first; warnings are grouped, counted and capped;
    zero-FLOP ops are flagged nowhere."""
    ops = make_ops()
    zero = ops.iloc[[0] * 8].copy()
    zero["op_name"] = [f"model/v{i}/ReadVariableOp" for i in range(8)]
    zero["op_type"], zero["flops"] = "ReadVariableOp", 0
    zero["bytes"], zero["total_time_us"] = 4_000_000_000, 1.0  # 4e6 GB/s: far above any memory roof
    zero["gbytes_per_s"], zero["gflops_per_s"] = 4e6, 0.0
    ops = pd.concat([ops, zero], ignore_index=True)
    ops["flops"] = pd.array(ops["flops"], dtype="Int64")
    summary = dict(SUMMARY, warnings=[f"warning number {i}" for i in range(7)])
    path = tmp_path / "report.html"
    write_report(apply_roofline(ops, CEILINGS), summary, CEILINGS, png, path)
    text = path.read_text(encoding="utf-8")
    assert text.index('id="key-figures"') < text.index('id="roofline-image"') < text.index('id="warnings"')
    assert "ReadVariableOp" not in text[:text.index('id="ops"')]  # no zero-FLOP op in any warning
    assert "7 other warnings" in text and "4 more" in text
    assert "warning number 2" in text[:text.index("4 more")]
    assert "warning number 6" in text[text.index("4 more"):]
    rows = [line for line in text.split("<tr") if "ReadVariableOp" in line]
    assert rows and not any("above-ceiling" in row or "CEILING" in row.upper() for row in rows)
