"""The normalising exceptions for golden outputs frozen before later issues renamed, added or recounted
columns: each names the issue that asked for the change and says what it maps or leaves out.

They apply only to golden directories without the FROZEN_AS_IS marker (tests/golden_outputs.py). Once
every case is refrozen with scripts/freeze_golden.py, this module and its one call in
tests/test_golden.py go.
"""
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from golden_outputs import SUMMARY_JSON, SUMMARY_SKIP, frozen_tables

def _zero_flop_rows(frozen: pd.DataFrame):
    return (pd.to_numeric(frozen["flops"], errors="coerce") == 0).to_numpy()


_ZERO_FLOP_ROWS = _zero_flop_rows
TEXTBOOK_CONV = "issue 15/13: textbook convolution count on the XLA path"
_CONV_NOTE = re.compile(r"(convolution[\w -]*): 2 x \d+ (FMAs over valid window positions|MACs \(.*?positions\))")
# Columns added since the freeze (name -> the issue that asked for it).
# A (table, column) key names a column added to one table only; it is left out before comparing.
NEW_COLUMNS = {
    "phase": "issue 10: forward / backward / optimizer / loss_and_metrics of a training step",
    ("kernels.csv", "bytes"): "issue 13: bytes per occurrence, as in every table (the total is total_bytes)",
    ("memcpy.csv", "bytes"): "issue 13: bytes per occurrence, as in every table (the total is total_bytes)",
    "xla_valid_macs": TEXTBOOK_CONV + " (XLA's valid-window count moved to its own column)",
    "source_line": "issue 15: XLA rows name the source line their HLO metadata gives",
}
# Columns renamed since the freeze: old name -> new name.
# A (table, old name) key renames in one table only.
RENAMED = {
    ("kernels.csv", "flops"): "total_flops",  # issue 13: totals are named total_*; flops is per occurrence
    ("kernels.csv", "flops_per_occurrence"): "flops",  # issue 13: per occurrence is plain `flops` everywhere
    ("kernels.csv", "bytes"): "total_bytes",  # issue 13: the total, named as one
    ("memcpy.csv", "bytes"): "total_bytes",  # issue 13: the total, named as one
}
# Values whose spelling changed on purpose since the freeze: (table, column) -> (why, a function that
# maps both the frozen and the new value to what must still agree).
CHANGED = {
    ("kernels.csv", "op_type"): ("issue 9: XLA kernels' launching op is spelled like host XLA rows, "
                                 "`fusion:kLoop` (one record type, one spelling)", lambda v: str(v).split(":")[0]),
    ("ops.csv", "op_type"): ("issue 9: likewise for the ops rolled up from XLA kernels",
                             lambda v: str(v).split(":k")[0]),
    ("ops.csv", "layer"): ("issue 15: a JAX name-stack scope is unwrapped from its transformations "
                           "(`transpose(jvp(dense))` -> `dense`, the layer); issue 10: a gradient op's layer is read "
                           "below `gradient_tape/`, like its forward op's",
                           lambda v: _unwrap_scope(str(v)),
                           lambda frozen: frozen["op_name"].fillna("").str.contains("gradient_tape/")),
    ("kernels.csv", "note"): (TEXTBOOK_CONV + ": a convolution's note gives both counts",
                              lambda v: _CONV_NOTE.sub(r"\1", str(v))),
    ("ops.csv", "note"): (TEXTBOOK_CONV + ": likewise", lambda v: _CONV_NOTE.sub(r"\1", str(v))),
    # A third element, when present, picks the frozen rows whose value changed on purpose (not compared).
    ("ops.csv", "macs"): ("issue 14, found on the recorded H200 trace: an op run as device kernels reports its "
                          "main kernel's MACs (it was always empty)", lambda v: v,
                          lambda frozen: frozen["macs"].isna()),
    ("ops.csv", "above_ceiling"): ("issue 13: zero-FLOP ops are never flagged against a ceiling",
                                   lambda v: v, _ZERO_FLOP_ROWS),
    ("ops.csv", "above_ceiling_kind"): (
        "issue 13: zero-FLOP ops are never flagged; `compute` (a counting error) only above max(theoretical, "
        "measured) x 1.10, `ceiling` between the peak x 1.05 and that line",
        lambda v: "compute" if v == "ceiling" else v, _ZERO_FLOP_ROWS),
}


def _unwrap_scope(scope: str) -> str:
    while re.match(r"^[\w.-]+\((.*)\)$", scope):
        scope = re.match(r"^[\w.-]+\((.*)\)$", scope).group(1)
    return scope


# Rows priced as XLA convolutions (`xla_valid_macs` set): their FLOPs now count every kernel tap
# (TEXTBOOK_CONV). The frozen count was XLA's valid-window one, so it must equal 2 x xla_valid_macs;
# the columns proportional to FLOPs change by the same factor.
CONV_FLOP_COLUMNS = ("flops", "flops_per_occurrence", "gflops_per_s", "intensity")
# The roofline's verdicts on those rows follow from the new FLOPs; they are not compared there.
CONV_ROOFLINE_COLUMNS = ("bound", "attainable_gflops_per_s", "efficiency", "recoverable_time_us", "underutilized")


def _textbook_conv_rows(frozen: pd.DataFrame, now: pd.DataFrame, name: str) -> pd.DataFrame:
    """`now` with its convolution rows' FLOP columns mapped back to XLA's valid-window count, after
    checking that the frozen count is exactly that count."""
    if "xla_valid_macs" not in now.columns or name not in ("ops.csv", "kernels.csv"):
        return now
    conv = now["xla_valid_macs"].notna() & (now["flops"].fillna(0) > 0)
    if not conv.any():
        return now
    now = now.copy()
    per_occurrence = now["flops"] / (now["occurrences"] if name == "kernels.csv" else 1)
    factor = 2 * now["xla_valid_macs"] / per_occurrence
    for column in CONV_FLOP_COLUMNS:
        if column in now.columns:
            now.loc[conv, column] = now.loc[conv, column] * factor[conv]
    for column in CONV_ROOFLINE_COLUMNS:
        if column in now.columns:
            now.loc[conv, column] = frozen.loc[conv, column]
    valid_total = 2 * now["xla_valid_macs"] * (now["occurrences"] if name == "kernels.csv" else 1)
    assert (frozen.loc[conv, "flops"].astype(float) == valid_total[conv].astype(float)).all(), \
        f"{name}: frozen convolution FLOPs are not 2 x the new xla_valid_macs"
    return now


# Summary values that changed on purpose: key path -> (why, a function applied to both values[, a check of
# the pair (frozen, now) that replaces equality]).
SUMMARY_VALUE_CHANGED = {
    "warnings": ("issue 13: COUNTING ERROR? only above max(theoretical, measured) x 1.10, reworded; a model "
                 "FLOPs utilization above 100% is never shown without its reason (a new warning); issue 14: "
                 "a trace without TensorFlow ops (JAX's) is not told it lacks TensorFlow's executed graph",
                 lambda items: [w for w in items if not str(w).startswith(("COUNTING ERROR?",
                                                                           "model FLOPs utilization",
                                                                           "no executed graph beside"))]),
    "macs_per_step": ("issue 14, found on the recorded H200 trace: device ops' MACs were never counted, so "
                      "a GPU trace's total was 0; it is now the sum of their main kernels' MACs (checked by "
                      "hand on that trace in tests/test_nvidia_jax_trace.py); a nonzero frozen total is kept",
                      lambda value: value, lambda frozen, now: frozen == now or (frozen == 0 and now > 0)),
    "roofline.above_ceiling_ops": (
        "issue 13: zero-FLOP ops are never flagged; kind `ceiling` below the counting-error line",
        lambda items: [dict(op, kind="compute" if op.get("kind") == "ceiling" else op.get("kind"))
                       for op in items if op.get("gflops_per_s")]),
}
# Summary text that changed on purpose: (why, normalizer of a string value).
SUMMARY_CHANGED = ("issue 9: summary entries name XLA kernels' ops as `fusion:kCustom` (see op_type above)",
                   lambda text: re.sub(r"^(\w[\w-]*):k\w+$", r"\1", re.sub(r"\((\w[\w-]*):k\w+\)", r"(\1)", text)))
# Summary keys added since the freeze (key -> the issue that asked for it).
SUMMARY_NEW = {"flops_per_step_by_phase": "issue 10", "macs_per_step_by_phase": "issue 10",
               "profiler_overhead": "issue 14", "straggler": "issue 14", "ceiling_trust": "issue 13",
               "memory_roof_note": "issue 13", "model_flops_utilization_note": "issue 13",
               "totals_cover": "issue 11", "model_match": "issue 11"}


def _same_frame(frozen: pd.DataFrame, now: pd.DataFrame, table: str):
    name = table.split("/")[-1]
    now = now.drop(columns=[c for key in NEW_COLUMNS if isinstance(key, tuple) and key[0] == name
                            for c in [key[1]] if c in now.columns])
    renames = {v: k for k, v in RENAMED.items() if isinstance(k, str)}
    renames.update({v: k[1] for k, v in RENAMED.items() if isinstance(k, tuple) and k[0] == name})
    now = now.rename(columns=renames)
    extra = set(now.columns) - set(frozen.columns) - {k for k in NEW_COLUMNS if isinstance(k, str)}
    assert not extra, f"{table}: columns added without being named: {sorted(extra)}"
    missing = set(frozen.columns) - set(now.columns)
    assert not missing, f"{table}: columns lost: {sorted(missing)}"
    now = now[list(frozen.columns) + [c for c in NEW_COLUMNS if c in now.columns and c not in frozen.columns]]
    keys = [c for c in frozen.columns if frozen[c].dtype == object and (table.split("/")[-1], c) not in CHANGED]
    keys = [k for k in keys + ["total_time_us"] if k in frozen.columns]
    frozen = frozen.sort_values(keys, kind="stable").reset_index(drop=True)
    now = now.sort_values(keys, kind="stable").reset_index(drop=True)
    assert len(frozen) == len(now), f"{table}: {len(now)} rows, frozen {len(frozen)}"
    name = table.split("/")[-1]
    now = _textbook_conv_rows(frozen, now, name)[list(frozen.columns)]
    for column in frozen.columns:
        a, b = frozen[column], now[column]
        if (name, column) in CHANGED:
            entry = CHANGED[(name, column)]
            if len(entry) > 2:
                keep = ~entry[2](frozen)
                a, b = a[keep].reset_index(drop=True), b[keep].reset_index(drop=True)
            normal = entry[1]
            a, b = a.fillna("").map(normal), b.fillna("").map(normal)
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            a, b = a.astype(float).to_numpy(), b.astype(float).to_numpy()
            both_nan = [math.isnan(x) and math.isnan(y) for x, y in zip(a, b)]
            close = [n or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12) for n, x, y in zip(both_nan, a, b)]
            assert all(close), f"{table}.{column} differs at rows {[i for i, c in enumerate(close) if not c][:5]}"
        else:
            diff = (a.astype(object).fillna("").astype(str) != b.astype(object).fillna("").astype(str))
            assert not diff.any(), f"{table}.{column} differs: {list(zip(a[diff][:3], b[diff][:3]))}"


def _same_value(frozen, now, where: str):
    """Equal JSON values: floats to 1e-9 relative (sums may run in another order), strings after
    the named normalization."""
    if where in SUMMARY_VALUE_CHANGED:
        entry = SUMMARY_VALUE_CHANGED[where]
        if len(entry) > 2:  # a check of the pair (frozen, now) in place of equality
            assert entry[2](frozen, now), (where, frozen, now)
            return
        frozen, now = entry[1](frozen), entry[1](now)
    if isinstance(frozen, dict):
        assert isinstance(now, dict) and set(frozen) == set(now), where
        for key in frozen:
            _same_value(frozen[key], now[key], f"{where}.{key}")
    elif isinstance(frozen, list):
        assert isinstance(now, list) and len(frozen) == len(now), where
        for i, (a, b) in enumerate(zip(frozen, now)):
            _same_value(a, b, f"{where}[{i}]")
    elif isinstance(frozen, float) and isinstance(now, (int, float)):
        assert math.isclose(frozen, now, rel_tol=1e-9, abs_tol=1e-12), (where, frozen, now)
    elif isinstance(frozen, str) and isinstance(now, str):
        normal = SUMMARY_CHANGED[1]
        assert normal(frozen) == normal(now), (where, frozen, now)
    else:
        assert frozen == now, (where, frozen, now)


# Summary figures that follow from the XLA convolutions' textbook count (TEXTBOOK_CONV): those
# proportional to FLOPs are mapped back by the ratio of the old to the new count per step (after
# checking the old count is the new one less the convolutions' padding taps); the roofline's time
# shares and recoverable time are not compared on traces with such convolutions.
SUMMARY_FLOP_KEYS = ("gflops_per_s", "model_flops_utilization", "flops_per_step_by_dtype",
                     "roofline.achieved_gflops_per_s", "roofline.model_flops_utilization")
SUMMARY_ROOFLINE_KEYS = ("memory_bound_time_share", "roofline.memory_bound_time_share",
                         "roofline.compute_bound_time_share", "roofline.recoverable_time_us_per_step")


def _textbook_conv_summary(frozen: dict, now: dict, ops: pd.DataFrame) -> dict:
    conv = ops["xla_valid_macs"].notna() & (ops["flops"].fillna(0) > 0) if "xla_valid_macs" in ops else None
    if conv is None or not conv.any():
        return now
    rows = ops[conv]
    padding_taps = float(((rows["flops"] - 2 * rows["xla_valid_macs"]) * rows["occurrences"]).sum())
    steps = max(now["steps"], 1)
    assert frozen["flops_per_step"] == pytest.approx(now["flops_per_step"] - padding_taps / steps, abs=1)
    ratio = frozen["flops_per_step"] / now["flops_per_step"]
    now = json.loads(json.dumps(now))
    now["flops_per_step"] = frozen["flops_per_step"]
    for key in SUMMARY_FLOP_KEYS + SUMMARY_ROOFLINE_KEYS:
        *path, last = key.split(".")
        source, target = frozen, now
        for part in path:
            source, target = source.get(part, {}), target.get(part, {})
        if last not in target or last not in source:
            continue
        if key in SUMMARY_ROOFLINE_KEYS:
            target[last] = source[last]
        elif isinstance(target[last], dict):
            target[last] = {k: v * ratio for k, v in target[last].items()}
        elif target[last] is not None:
            target[last] = target[last] * ratio
    return now


def assert_unchanged(frozen_dir: Path, written_dir: Path, name: str):
    """The tables and summary `written_dir` holds agree with the ones frozen in `frozen_dir`, through the
    exceptions above."""
    for csv in frozen_tables(frozen_dir):
        frozen = pd.read_csv(csv, keep_default_na=True)
        now = pd.read_csv(written_dir / csv.name, keep_default_na=True)
        _same_frame(frozen, now, f"{name}/{csv.name}")
    frozen = json.loads((frozen_dir / SUMMARY_JSON).read_text())
    now = json.loads((written_dir / SUMMARY_JSON).read_text())
    now = _textbook_conv_summary(frozen, now, pd.read_csv(written_dir / "ops.csv"))
    for key, value in frozen.items():
        if key in SUMMARY_SKIP:
            continue
        assert key in now, f"summary key {key} lost"
        _same_value(value, now[key], key)
    added = set(now) - set(frozen) - SUMMARY_SKIP - set(SUMMARY_NEW)
    assert not added, f"summary keys added without being named: {sorted(added)}"
