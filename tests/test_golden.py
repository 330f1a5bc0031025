"""The outputs of `traceflops analyze` on every recorded trace under traces/, frozen before the
package was restructured (tests/golden, written by scripts/freeze_golden.py), stay the same.

Only the column changes that later issues asked for may differ, each named here.
"""
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

import traceflops

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden"
TRACES = REPO / "traces"
# Columns added since the freeze (name -> the issue that asked for it).
NEW_COLUMNS = {"phase": "issue 10: forward / backward / optimizer / loss_and_metrics of a training step"}
# Columns renamed since the freeze: old name -> new name.
RENAMED = {}
# Values whose spelling changed on purpose since the freeze: (table, column) -> (why, a function that
# maps both the frozen and the new value to what must still agree).
CHANGED = {
    ("kernels.csv", "op_type"): ("issue 9: XLA kernels' launching op is spelled like host XLA rows, "
                                 "`fusion:kLoop` (one record type, one spelling)", lambda v: str(v).split(":")[0]),
    ("ops.csv", "op_type"): ("issue 9: likewise for the ops rolled up from XLA kernels",
                             lambda v: str(v).split(":k")[0]),
    ("ops.csv", "layer"): ("issue 12: a JAX transformation frame (`jvp()`) is no Keras layer; such ops have none",
                           lambda v: "" if "(" in str(v) else str(v)),
}
# Values that changed on purpose in some rows only: (table, column) -> (why, which frozen rows).
CHANGED_ROWS = {
    ("ops.csv", "layer"): ("issue 10: a gradient op's layer is read below `gradient_tape/`, like its forward op's",
                           lambda frozen: frozen["op_name"].fillna("").str.contains("gradient_tape/")),
}
# Summary text that changed on purpose: (why, normalizer of a string value).
SUMMARY_CHANGED = ("issue 9: summary entries name XLA kernels' ops as `fusion:kCustom` (see op_type above)",
                   lambda text: re.sub(r"^(\w[\w-]*):k\w+$", r"\1", re.sub(r"\((\w[\w-]*):k\w+\)", r"(\1)", text)))
# Summary keys that depend on where the trace lies, or were added since the freeze.
SUMMARY_SKIP = {"trace_files", "run_dir"}
# Summary keys added since the freeze (key -> the issue that asked for it).
SUMMARY_NEW = {"flops_per_step_by_phase": "issue 10", "macs_per_step_by_phase": "issue 10",
               "totals_cover": "issue 11", "model_match": "issue 11"}


def _cases():
    for trace in sorted(TRACES.rglob("*.xplane.pb")):
        if trace.name == "host.xplane.pb":
            yield trace.parent.name, trace.parent
        else:
            yield trace.name.replace(".xplane.pb", ""), trace


CASES = dict(_cases())


@pytest.fixture(scope="module")
def results():
    return {}


def _result(results, name):
    if name not in results:
        results[name] = traceflops.analyze(str(CASES[name]))
    return results[name]


def _same_frame(frozen: pd.DataFrame, now: pd.DataFrame, table: str):
    now = now.rename(columns={v: k for k, v in RENAMED.items()})
    extra = set(now.columns) - set(frozen.columns) - set(NEW_COLUMNS)
    assert not extra, f"{table}: columns added without being named: {sorted(extra)}"
    missing = set(frozen.columns) - set(now.columns)
    assert not missing, f"{table}: columns lost: {sorted(missing)}"
    now = now[list(frozen.columns)]
    keys = [c for c in frozen.columns if frozen[c].dtype == object and (table.split("/")[-1], c) not in CHANGED
            and (table.split("/")[-1], c) not in CHANGED_ROWS]
    keys = [k for k in keys + ["total_time_us"] if k in frozen.columns]
    frozen = frozen.sort_values(keys, kind="stable").reset_index(drop=True)
    now = now.sort_values(keys, kind="stable").reset_index(drop=True)
    assert len(frozen) == len(now), f"{table}: {len(now)} rows, frozen {len(frozen)}"
    name = table.split("/")[-1]
    for column in frozen.columns:
        a, b = frozen[column], now[column]
        if (name, column) in CHANGED:
            normal = CHANGED[(name, column)][1]
            a, b = a.astype(object).fillna("").map(normal), b.astype(object).fillna("").map(normal)
        if (name, column) in CHANGED_ROWS:
            keep = ~CHANGED_ROWS[(name, column)][1](frozen)
            a, b = a[keep], b[keep]
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


@pytest.mark.parametrize("name", sorted(CASES))
def test_analyze_outputs_unchanged(name, results, tmp_path):
    result = _result(results, name)
    result.write(tmp_path)
    for csv in sorted((GOLDEN / name).glob("*.csv")):
        frozen = pd.read_csv(csv, keep_default_na=True)
        now = pd.read_csv(tmp_path / csv.name, keep_default_na=True)
        _same_frame(frozen, now, f"{name}/{csv.name}")
    frozen = json.loads((GOLDEN / name / "summary.json").read_text())
    now = json.loads((tmp_path / "summary.json").read_text())
    for key, value in frozen.items():
        if key in SUMMARY_SKIP:
            continue
        assert key in now, f"summary key {key} lost"
        _same_value(value, now[key], key)
    added = set(now) - set(frozen) - SUMMARY_SKIP - set(SUMMARY_NEW)
    assert not added, f"summary keys added without being named: {sorted(added)}"


def test_every_recorded_trace_has_a_frozen_output():
    assert sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()) == sorted(CASES)
