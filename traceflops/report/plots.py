"""Roofline chart of the ops table as a PNG (matplotlib's Agg canvas, no pyplot state)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..files import atomic_path

from ..roofline import FAMILIES, ROOFLINE_COLUMNS, apply_roofline, op_family

FIGURE_INCHES = (10.0, 6.5)
DPI = 100  # so the PNG is 1000 x 650 pixels
LABELLED_OPS = 5
FAMILY_COLOURS = {
    "conv": "#1f77b4", "matmul/einsum": "#d62728", "elementwise": "#2ca02c", "normalization": "#9467bd",
    "pooling": "#8c564b", "softmax": "#e377c2", "reduction": "#e7ba52", "optimizer": "#393b79",
    "other": "#7f7f7f",
}
CEILING_COLOURS = ["#000000", "#ff7f0e", "#17becf", "#bcbd22"]
MIN_MARKER_AREA, MARKER_AREA_PER_SHARE = 12.0, 900.0


def plottable(ops: pd.DataFrame) -> pd.DataFrame:
    """Rows with known positive FLOPs and bytes and a measured positive rate."""
    flops = pd.to_numeric(ops["flops"], errors="coerce").astype("Float64").fillna(0).astype(float)
    size = pd.to_numeric(ops["bytes"], errors="coerce").astype("Float64").fillna(0).astype(float)
    rate = pd.to_numeric(ops["gflops_per_s"], errors="coerce").astype("Float64").fillna(0).astype(float)
    chosen = ops[(flops > 0) & (size > 0) & (rate > 0) & np.isfinite(rate)].copy()
    chosen["x_intensity"] = flops[chosen.index] / size[chosen.index]
    chosen["y_gflops"] = rate[chosen.index]
    return chosen


def _axis_limits(points: pd.DataFrame, peaks: dict, bandwidth: float) -> tuple:
    ridges = [peak / bandwidth for peak in peaks.values()]
    xs = list(points["x_intensity"]) + ridges
    ys = list(points["y_gflops"]) + list(peaks.values())
    x_low = min(min(xs) / 4, 0.05)
    y_low = min(min(ys) / 4, bandwidth * x_low)
    return (x_low, max(xs) * 8), (y_low, max(ys) * 3)


def _draw_ceilings(axes, peaks: dict, bandwidth: float, x_limits: tuple) -> None:
    """Bandwidth diagonal up to the highest ridge and one flat compute line per dtype, labelled."""
    top_ridge = max(peaks.values()) / bandwidth
    x_line = np.array([x_limits[0], top_ridge])
    axes.plot(x_line, bandwidth * x_line, color="#444444", linewidth=1.6)
    axes.annotate(f"memory {bandwidth:.1f} GB/s", xy=(x_limits[0] * 1.5, bandwidth * x_limits[0] * 1.5),
                  rotation=0, fontsize=9, color="#444444", xytext=(4, 6), textcoords="offset points")
    ordered = sorted(peaks.items(), key=lambda item: item[1])
    previous_peak = None
    offset = 4
    for index, (dtype, peak) in enumerate(ordered):
        colour = CEILING_COLOURS[index % len(CEILING_COLOURS)]
        ridge = peak / bandwidth
        axes.plot([ridge, x_limits[1]], [peak, peak], color=colour, linewidth=1.6)
        # Ceilings within 25% of each other would print their labels on top of one
        # another: move the upper one's label further up.
        offset = offset + 11 if previous_peak and peak < previous_peak * 1.25 else 4
        previous_peak = peak
        # Right-aligned at the plot's edge so long labels stay inside the axes.
        axes.annotate(f"{dtype} peak {peak:,.0f} GFLOP/s (ridge {ridge:.1f} FLOP/B)", xy=(x_limits[1], peak),
                      xytext=(-4, offset), textcoords="offset points", ha="right", fontsize=9, color=colour)


def _short_label(row) -> str:
    where = row.layer if isinstance(row.layer, str) and row.layer else str(row.op_name).split("/")[-1]
    text = f"{where} ({row.op_type})"
    return text if len(text) <= 40 else text[:37] + "..."


def _draw_points(axes, points: pd.DataFrame) -> None:
    families = points["op_type"].map(op_family)
    families = families.where(families.isin(FAMILIES), "other")  # a custom formula in a zero family
    shares = pd.to_numeric(points["time_share"], errors="coerce").fillna(0).to_numpy(dtype=float)
    for family in FAMILIES:
        mask = (families == family).to_numpy()
        if not mask.any():
            continue
        axes.scatter(points["x_intensity"][mask], points["y_gflops"][mask],
                     s=MIN_MARKER_AREA + MARKER_AREA_PER_SHARE * shares[mask], c=FAMILY_COLOURS[family],
                     alpha=0.7, edgecolors="white", linewidths=0.6, label=family, zorder=3)
    recoverable = pd.to_numeric(points["recoverable_time_us"], errors="coerce").fillna(0)
    chosen = [row for _, row in points.loc[recoverable.nlargest(LABELLED_OPS).index].iterrows()
              if recoverable[row.name] > 0]
    placed = []  # (x, y) of labels already drawn, in points from the data position's display spot
    for row in chosen:
        x, y = axes.transData.transform((row.x_intensity, row.y_gflops)) * 72.0 / DPI
        dy = _free_offset(x, y, placed)
        placed.append((x, y + dy))
        axes.annotate(_short_label(row), xy=(row.x_intensity, row.y_gflops), xytext=(6, dy),
                      textcoords="offset points", fontsize=8, zorder=4,
                      arrowprops={"arrowstyle": "-", "color": "#999999", "linewidth": 0.5} if dy != -10 else None)


LABEL_HEIGHT_PT, LABEL_WIDTH_PT = 11.0, 190.0


def _free_offset(x: float, y: float, placed: list) -> float:
    """A vertical offset (points) for a label at (x, y) that keeps it off the labels already placed:
    below the point first, then further down or up in label-height steps."""
    for step in range(0, 12):
        for sign in (-1, 1):
            dy = -10 + sign * step * LABEL_HEIGHT_PT
            if all(abs(y + dy - py) >= LABEL_HEIGHT_PT or abs(x - px) >= LABEL_WIDTH_PT for px, py in placed):
                return dy
    return -10.0


def _save_atomic(figure: Figure, path: Path) -> None:
    with atomic_path(path, suffix=".png") as temporary:
        # No Software metadata: its matplotlib URL would be the report's only web address.
        figure.savefig(temporary, format="png", dpi=DPI, metadata={"Software": None})


def roofline_png(ops: pd.DataFrame, ceilings: dict, path, title: str = "") -> str:
    """Draw the log-log roofline of `ops` against `ceilings` into the PNG at `path`; returns the path.

    One point per op with known FLOPs > 0 and bytes > 0, area by time share,
    colour by op family; the ops with most recoverable time are labelled.
    """
    table = ops if all(c in ops for c in ROOFLINE_COLUMNS) else apply_roofline(ops, ceilings)
    # Only the ceilings of dtypes the ops compute in (float32 always): others are clutter.
    used = {"float32"} | set(table["dtype"].dropna().astype(str))
    peaks = {dtype: float(value) for dtype, value in ceilings["peak_gflops_per_s"].items() if dtype in used}
    bandwidth = float(ceilings["bandwidth_gbytes_per_s"])
    points = plottable(table)

    figure = Figure(figsize=FIGURE_INCHES, dpi=DPI)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.set_xscale("log")
    axes.set_yscale("log")
    x_limits, y_limits = _axis_limits(points, peaks, bandwidth)
    axes.set_xlim(*x_limits)
    axes.set_ylim(*y_limits)
    _draw_ceilings(axes, peaks, bandwidth, x_limits)
    if len(points):
        _draw_points(axes, points)
        legend = axes.legend(loc="lower right", fontsize=8, title="op family (area ~ time share)",
                             title_fontsize=8)
        for handle in legend.legend_handles:  # same marker size in the legend, whatever the first op's share
            handle.set_sizes([30.0])
    else:
        axes.text(0.5, 0.5, "no op has known FLOPs and bytes", transform=axes.transAxes, ha="center")
    axes.set_xlabel("arithmetic intensity (FLOP / byte)")
    axes.set_ylabel("achieved GFLOP/s")
    device = ceilings.get("device", "")
    axes.set_title(title or f"Roofline on {device}", fontsize=11)
    axes.grid(True, which="major", linestyle=":", linewidth=0.6)
    figure.tight_layout()
    _save_atomic(figure, Path(path))
    return str(path)
