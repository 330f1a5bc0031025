"""Profiler overhead: `profile` times warm-up calls without the profiler and the profiled calls the same
way in the same run, and reports the ratio of their medians as `profiler_overhead`."""
from __future__ import annotations

import json

import pytest

import traceflops
from traceflops.join.summary import profiler_overhead
from traceflops.report import summary_lines


def test_overhead_is_the_ratio_of_medians():
    figures = profiler_overhead({"step_wall_times_us": [110.0, 120.0, 500.0], "unprofiled_step_wall_times_us":
                                 [100.0, 90.0, 80.0]})
    assert figures == {"profiler_overhead": 120.0 / 90.0, "profiled_step_wall_time_us": 120.0,
                       "unprofiled_step_wall_time_us": 90.0}
    assert profiler_overhead({}) == {"profiler_overhead": None}  # a trace recorded elsewhere


def test_terminal_shows_overhead_and_straggler():
    summary = {"steps": 2, "profiler_overhead": 1.25,
               "straggler": {"host": "w3", "median_step_time_us": 120.0, "step_time_skew": 0.2}}
    text = summary_lines(summary)
    assert "profiler overhead         1.250x" in text
    assert "straggler                 w3" in text and "+20.0%" in text


@pytest.mark.tf
def test_profile_writes_profiler_overhead(tf_runtime, tmp_path):
    import keras
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, name="fc")], name="mlp")
    result = traceflops.profile(model, out=tmp_path / "out", batch_size=2, steps=3, warmup=3, roofline=False)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["profiler_overhead"] == pytest.approx(
        summary["profiled_step_wall_time_us"] / summary["unprofiled_step_wall_time_us"])
    assert summary["profiler_overhead"] > 0 and result.summary["profiler_overhead"] == summary["profiler_overhead"]
