"""Roofline classification of the ops table against a device's ceilings.

Pure pandas/numpy (no TensorFlow). `ceilings` is the dict `peaks.get_ceilings`
returns; only its "peak_gflops_per_s" ({dtype: GFLOP/s}) and
"bandwidth_gbytes_per_s" are read here.

The roofline of an op with intensity I (FLOP per byte) on a device with
compute peak P and bandwidth B is attainable = min(P, I x B). The op is
memory-bound when I x B < P, i.e. below the ridge intensity P / B, and
compute-bound otherwise. Efficiency is achieved / attainable; for a
memory-bound op that equals achieved GB/s / B, which is how zero-FLOP ops
(copies, transposes, casts counted as zero) are rated too.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from ..costs import COMPUTE_FAMILIES, family_of
from ..graph.shapes import canonical_dtype

REFERENCE_DTYPE = "float32"
# Achieved above attainable by more than this is a counting or timing error, not speed.
ABOVE_CEILING_TOLERANCE = 1.05
NO_LAYER = "(no layer)"

ROOFLINE_COLUMNS = ["bound", "roof", "ceiling_dtype", "peak_gflops_per_s", "attainable_gflops_per_s", "efficiency",
                    "recoverable_time_us", "underutilized", "above_ceiling", "above_ceiling_kind"]

# Op families for plots and summaries come from the cost registry (traceflops/costs/registry.py),
# the one place that knows each op type: the families of ops that compute, in legend order.
# Zero-FLOP families (data movement, control flow...) never plot: their ops have no FLOPs.
FAMILIES = list(COMPUTE_FAMILIES)


def op_family(op_type: str) -> str:
    """The registry's family of an op type (`costs.family_of`): conv, matmul/einsum, elementwise,
    normalization, pooling, softmax, reduction..., a zero-FLOP family, or other."""
    return family_of(op_type)


def _floats(series: pd.Series) -> np.ndarray:
    """A column as float64 with NaN for missing (nullable Int64/Float64 included)."""
    return pd.to_numeric(series, errors="coerce").astype("Float64").to_numpy(dtype=float, na_value=np.nan)


def apply_roofline(ops: pd.DataFrame, ceilings: dict, threshold: float = 0.5,
                   min_time_share: float = 0.01) -> pd.DataFrame:
    """The ops table with roofline columns added (a copy; `ops` is left alone).

    Added columns:
    * bound: "compute" when intensity >= peak / bandwidth (the ridge), "memory"
      below it and for zero-FLOP ops with bytes; "" when flops or bytes are
      unknown, or both are zero;
    * roof: the roof the op is judged against, "memory" for memory-bound ops, else
      the execution unit and dtype (`matrix bf16`, `matrix tf32`, `vector f32`;
      roofs.py: contractions on the matrix units, the rest on the vector units);
    * ceiling_dtype, peak_gflops_per_s: whose compute ceiling applies (the unit's
      rate); a dtype without a ceiling (int32...) uses float32's;
    * attainable_gflops_per_s: min(peak, intensity x bandwidth); 0 for zero-FLOP ops;
    * efficiency: achieved / attainable, i.e. gflops_per_s / attainable, which
      for memory-bound ops equals gbytes_per_s / bandwidth. Zero-FLOP ops use
      gbytes_per_s / bandwidth (their attainable FLOP/s is 0, so this is the
      only meaningful rate). NaN where unknown; above 1 is kept (see above_ceiling);
    * recoverable_time_us: total_time_us x (1 - efficiency), clipped at 0: the
      time the op would save running at its ceiling;
    * underutilized: efficiency < threshold and time_share >= min_time_share;
    * above_ceiling: achieved > attainable x 1.05, for ops with FLOPs only (a
      zero-FLOP op is never flagged); above_ceiling_kind says which ceiling:
      "compute" (above max(theoretical, measured peak) x 1.10, trust.py: the
      FLOP count is too high, or the time too short), "ceiling" (above the
      measured peak but under that line: the measured ceiling is low or stale)
      or "memory" (beats intensity x bandwidth only: the working set stayed in
      cache, which the DRAM bandwidth line does not model; not an error).
    """
    table = ops.copy()
    peaks = ceilings["peak_gflops_per_s"]
    if REFERENCE_DTYPE not in peaks:
        raise ValueError(f"ceilings have no {REFERENCE_DTYPE} peak (the fallback for other dtypes): {peaks}")
    bandwidth = float(ceilings["bandwidth_gbytes_per_s"])
    flops, size = _floats(table["flops"]), _floats(table["bytes"])
    achieved_flops, achieved_bytes = _floats(table["gflops_per_s"]), _floats(table["gbytes_per_s"])
    time_us, share = _floats(table["total_time_us"]), _floats(table["time_share"])

    from .roofs import unit_roofs
    chosen = unit_roofs(table, ceilings)
    unit = np.array([label for label, _, _, _ in chosen], dtype=object)
    ceiling_dtype = [name for _, name, _, _ in chosen]
    peak = np.array([value for _, _, value, _ in chosen], dtype=float)

    known = ~np.isnan(flops) & ~np.isnan(size) & ((flops > 0) | (size > 0))
    zero_flop = known & (flops == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        intensity = np.where(size > 0, flops / size, np.inf)
        attainable = np.where(known, np.minimum(peak, intensity * bandwidth), np.nan)
        attainable = np.where(zero_flop, 0.0, attainable)
        memory = known & (intensity * bandwidth < peak)
        efficiency = np.where(zero_flop, achieved_bytes / bandwidth, achieved_flops / attainable)
    efficiency = np.where(known, efficiency, np.nan)

    from .trust import counting_error_line
    # A counting error only above the highest roof the device reaches at the op's dtype.
    error_line = np.array([counting_error_line(ceilings, name, highest) for _, name, _, highest in chosen],
                          dtype=float)
    # Zero-FLOP ops are never flagged: their rate against the bandwidth says nothing about a count.
    computes = known & ~zero_flop
    beats_error_line = computes & (achieved_flops > error_line)
    beats_peak = computes & (achieved_flops > peak * ABOVE_CEILING_TOLERANCE)
    beats_line = computes & (achieved_flops > attainable * ABOVE_CEILING_TOLERANCE)
    with np.errstate(invalid="ignore"):
        underutilized = (efficiency < threshold) & (share >= min_time_share)

    table["bound"] = np.where(memory, "memory", np.where(known, "compute", ""))
    table["roof"] = np.where(memory | zero_flop, "memory", np.where(known, unit, ""))
    table["ceiling_dtype"] = ceiling_dtype
    table["peak_gflops_per_s"] = peak
    table["attainable_gflops_per_s"] = attainable
    table["efficiency"] = efficiency
    table["recoverable_time_us"] = np.clip(time_us * (1.0 - efficiency), 0.0, None)
    table["underutilized"] = underutilized
    table["above_ceiling"] = beats_line
    table["above_ceiling_kind"] = np.where(beats_error_line, "compute", np.where(
        beats_peak, "ceiling", np.where(beats_line, "memory", "")))
    return table


def _with_roofline(ops: pd.DataFrame, ceilings: dict) -> pd.DataFrame:
    return ops if all(column in ops for column in ROOFLINE_COLUMNS) else apply_roofline(ops, ceilings)


def reference_dtype(summary: dict, ceilings: dict) -> str:
    """The dtype with most FLOPs per step that has a ceiling, else float32."""
    by_dtype = {canonical_dtype(k): v for k, v in (summary.get("flops_per_step_by_dtype") or {}).items()}
    with_ceiling = {k: v for k, v in by_dtype.items() if k in ceilings["peak_gflops_per_s"] and v}
    return max(with_ceiling, key=with_ceiling.get) if with_ceiling else REFERENCE_DTYPE


def model_figures(ops: pd.DataFrame, summary: dict, ceilings: dict) -> dict:
    """Whole-model roofline figures.

    * model_flops_utilization: (flops_per_step / step_time) / peak of the
      reference dtype (the one with most FLOPs that has a ceiling, else float32),
      on the matrix units where the model's contractions ran on them;
      model_flops_utilization_roof names that roof (`matrix bf16`, `vector f32`);
    * memory_bound_time_share, compute_bound_time_share, unclassified_time_share:
      shares of op time by `bound`;
    * underutilized_ops: how many rows are flagged; recoverable_time_us_per_step;
    * above_ceiling_ops: [{op_name, op_type, dtype, kind, gflops_per_s, gbytes_per_s,
      attainable_gflops_per_s, efficiency}], the rows to distrust.
    `ops` may already carry the roofline columns; otherwise they are added with defaults.
    """
    table = _with_roofline(ops, ceilings)
    steps = max(int(summary.get("steps") or 1), 1)
    dtype = reference_dtype(summary, ceilings)
    from .roofs import model_roof
    flops_table = table[pd.to_numeric(table["flops"], errors="coerce").fillna(0) > 0]
    roof, peak = model_roof(flops_table, dtype, ceilings)
    step_us = summary.get("step_time_us")
    flops = summary.get("flops_per_step")  # None when withheld (too little of the work has a count)
    achieved = flops / step_us / 1e3 if step_us and flops is not None else None  # FLOP/us / 1e3 = GFLOP/s
    time_us = _floats(table["total_time_us"])
    total_us = float(np.nansum(time_us))
    bound = table["bound"].to_numpy()

    def share(mask) -> Optional[float]:
        return float(np.nansum(time_us[mask]) / total_us) if total_us else None

    above = table[table["above_ceiling"].astype(bool)]
    return {
        "reference_dtype": dtype,
        "peak_gflops_per_s": peak,
        "bandwidth_gbytes_per_s": float(ceilings["bandwidth_gbytes_per_s"]),
        "ridge_intensity": peak / float(ceilings["bandwidth_gbytes_per_s"]),
        "achieved_gflops_per_s": achieved,
        "model_flops_utilization": achieved / peak if achieved is not None and peak else None,
        "model_flops_utilization_roof": roof,
        "memory_bound_time_share": share(bound == "memory"),
        "compute_bound_time_share": share(bound == "compute"),
        "unclassified_time_share": share(bound == ""),
        "underutilized_ops": int(table["underutilized"].astype(bool).sum()),
        "recoverable_time_us_per_step": float(np.nansum(_floats(table["recoverable_time_us"]))) / steps,
        "above_ceiling_ops": [
            {"op_name": row.op_name, "op_type": row.op_type, "dtype": row.dtype,
             "kind": row.above_ceiling_kind, "gflops_per_s": _number(row.gflops_per_s),
             "gbytes_per_s": _number(row.gbytes_per_s),
             "attainable_gflops_per_s": _number(row.attainable_gflops_per_s),
             "efficiency": _number(row.efficiency)}
            for row in above.itertuples(index=False)],
    }


def _number(value) -> Optional[float]:
    return None if value is None or pd.isna(value) else float(value)


def layer_rollup(ops: pd.DataFrame, steps: int = 1) -> pd.DataFrame:
    """Per Keras layer ("(no layer)" for ops outside one), sorted by time.

    Columns: layer, ops (rows), flops_per_step (known FLOPs x occurrences /
    steps), macs_per_step, forward_flops_per_step and backward_flops_per_step
    (training steps), bytes_per_step, time_us_per_step, time_share (of all
    op time), gflops_per_s (known FLOPs over the layer's whole time, so a layer
    with unknown-FLOP ops reads low), unknown_flops_time_us_per_step, and, when
    the roofline columns are present, efficiency (the time its ops would take at
    their attainable rates over their measured time), recoverable_time_us_per_step
    and memory_bound_time_share (of the layer's time).
    """
    steps = max(int(steps), 1)
    table = pd.DataFrame({
        "layer": ops["layer"].fillna("").replace("", NO_LAYER),
        "flops": np.nan_to_num(_floats(ops["flops"])) * _floats(ops["occurrences"]),
        "macs": np.nan_to_num(_floats(ops.get("macs", pd.Series(np.nan, index=ops.index))))
        * _floats(ops["occurrences"]),
        "bytes": np.nan_to_num(_floats(ops.get("bytes", pd.Series(np.nan, index=ops.index))))
        * _floats(ops["occurrences"]),
        "time_us": _floats(ops["total_time_us"]),
    })
    table["unknown_us"] = np.where(np.isnan(_floats(ops["flops"])), table["time_us"], 0.0)
    has_roofline = "recoverable_time_us" in ops and "bound" in ops
    if has_roofline:
        table["recoverable_us"] = np.nan_to_num(_floats(ops["recoverable_time_us"]))
        table["memory_us"] = np.where(ops["bound"].to_numpy() == "memory", table["time_us"], 0.0)
        efficiency = _floats(ops.get("efficiency", pd.Series(np.nan, index=ops.index)))
        # time at the attainable rate = measured time x efficiency (ops without one count as measured)
        table["ideal_us"] = table["time_us"] * np.where(np.isnan(efficiency), 1.0, efficiency)
    phases = [p for p in ("forward", "backward") if "phase" in ops and (ops["phase"] == "backward").any()]
    for phase in phases:  # a training step: each layer's forward and backward work apart
        table[f"flops_{phase}"] = np.where(ops["phase"].to_numpy() == phase, table["flops"], 0.0)
    grouped = table.groupby("layer", sort=False)
    total_us = table["time_us"].sum()
    rollup = pd.DataFrame({
        "ops": grouped.size(),
        "flops_per_step": grouped["flops"].sum() / steps,
        "macs_per_step": grouped["macs"].sum() / steps,
        **{f"{phase}_flops_per_step": grouped[f"flops_{phase}"].sum() / steps for phase in phases},
        "bytes_per_step": grouped["bytes"].sum() / steps,
        "time_us_per_step": grouped["time_us"].sum() / steps,
        "time_share": grouped["time_us"].sum() / total_us if total_us else np.nan,
        "unknown_flops_time_us_per_step": grouped["unknown_us"].sum() / steps,
    })
    with np.errstate(divide="ignore", invalid="ignore"):
        rollup["gflops_per_s"] = (rollup["flops_per_step"] / rollup["time_us_per_step"] / 1e3).where(
            rollup["time_us_per_step"] > 0)
    if has_roofline:
        rollup["efficiency"] = (grouped["ideal_us"].sum() / grouped["time_us"].sum()).where(
            grouped["time_us"].sum() > 0)
        rollup["recoverable_time_us_per_step"] = grouped["recoverable_us"].sum() / steps
        rollup["memory_bound_time_share"] = (grouped["memory_us"].sum() / grouped["time_us"].sum()).where(
            grouped["time_us"].sum() > 0)
    rollup = rollup.sort_values("time_us_per_step", ascending=False, kind="stable")
    return rollup.rename_axis("layer").reset_index()
