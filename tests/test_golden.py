"""The outputs of `traceflops analyze` on every recorded trace under traces/ stay the same as frozen in
tests/golden by scripts/freeze_golden.py (tests/golden_outputs.py: the cases and the files compared).

Every case is compared as is: the same columns, rows and values (floats to 1e-9), and the same summary
keys and values but where the trace lies. A deliberate change is a refreeze with its reason in each case's
FROZEN_AS_IS and a reviewed `git diff tests/golden`.
"""
import json
import math

import pandas as pd
import pytest

import traceflops
from golden_outputs import AS_IS_MARKER, GOLDEN, SUMMARY_JSON, SUMMARY_SKIP, frozen_tables, golden_cases

CASES = golden_cases()


@pytest.fixture(scope="module")
def results():
    return {}


def _result(results, name):
    if name not in results:
        results[name] = traceflops.analyze(str(CASES[name]))
    return results[name]


def _same_frame_as_is(frozen: pd.DataFrame, now: pd.DataFrame, table: str):
    """A table frozen with today's columns (FROZEN_AS_IS): the same columns, rows and values."""
    assert list(frozen.columns) == list(now.columns), f"{table}: columns changed"
    assert len(frozen) == len(now), f"{table}: {len(now)} rows, frozen {len(frozen)}"
    for column in frozen.columns:
        a, b = frozen[column], now[column]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            same = [(math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
                    for x, y in zip(a.astype(float), b.astype(float))]
        else:
            same = list(a.astype(object).fillna("").astype(str) == b.astype(object).fillna("").astype(str))
        assert all(same), f"{table}.{column} differs at rows {[i for i, s in enumerate(same) if not s][:5]}"


def _same_summary_as_is(frozen: dict, now: dict):
    """A summary frozen with today's keys (FROZEN_AS_IS): the same keys and values, but where the trace lies."""
    assert set(now) - SUMMARY_SKIP == set(frozen) - SUMMARY_SKIP, "summary keys changed"
    for key in set(frozen) - SUMMARY_SKIP:
        assert json.dumps(frozen[key], sort_keys=True) == json.dumps(now[key], sort_keys=True) or \
            math.isclose(float(frozen[key]), float(now[key]), rel_tol=1e-9), key


@pytest.mark.parametrize("name", sorted(CASES))
def test_analyze_outputs_unchanged(name, results, tmp_path):
    result = _result(results, name)
    result.write(tmp_path)
    frozen_dir = GOLDEN / name
    assert (frozen_dir / AS_IS_MARKER).exists(), f"{name}: frozen without its reason (FROZEN_AS_IS)"
    for csv in frozen_tables(frozen_dir):
        frozen = pd.read_csv(csv, keep_default_na=True)
        now = pd.read_csv(tmp_path / csv.name, keep_default_na=True)
        _same_frame_as_is(frozen, now, f"{name}/{csv.name}")
    _same_summary_as_is(json.loads((frozen_dir / SUMMARY_JSON).read_text()),
                        json.loads((tmp_path / SUMMARY_JSON).read_text()))


def test_every_recorded_trace_has_a_frozen_output():
    assert sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()) == sorted(CASES)
