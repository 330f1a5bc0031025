"""Consistent tables: per-occurrence flops/macs/bytes everywhere with totals named total_*; the
terminal shows the device when more than one ran ops; units and labels say what they cover."""
import io

import pandas as pd

from traceflops.join.kernels import KERNEL_COLUMNS, MEMCPY_COLUMNS
from traceflops.join.ops_table import OPS_COLUMNS
from traceflops.report import human, render_terminal, summary_lines


def _ops(devices):
    rows = [{"op_name": "model/dense/MatMul", "op_type": "MatMul", "device": device, "occurrences": 2,
             "flops": 2048, "bytes": 4096, "avg_time_us": 1.0, "time_share": 0.5, "gflops_per_s": 2.0,
             "gbytes_per_s": 4.0, "intensity": 0.5, "flops_source": "formula"} for device in devices]
    return pd.DataFrame(rows)


def _printed(ops, summary) -> str:
    from rich.console import Console
    stream = io.StringIO()
    render_terminal(ops, summary, console=Console(file=stream, width=200))
    return stream.getvalue()


SUMMARY = {"steps": 3, "flops_per_step": 4096, "macs_per_step": 0, "step_time_us": 10.0,
           "op_time_per_step_us": 4.0, "gflops_per_s": 0.4, "coverage": 1.0}


def test_device_column_only_when_several_devices_ran_ops():
    two = _printed(_ops(["GPU:0", "GPU:1"]), SUMMARY)
    assert "device" in two and "GPU:0" in two and "GPU:1" in two
    one = _printed(_ops(["GPU:0"]), SUMMARY)
    assert "device" not in one.split("\n")[1] and "GPU:0" not in one


def test_counts_are_labelled_per_run_and_units_are_spaced():
    printed = _printed(_ops(["CPU:0"]), SUMMARY)
    assert "FLOPs/run" in printed and "bytes/run" in printed
    assert "0 MAC in contractions" in printed and "0MAC" not in printed
    assert human(0, "MAC") == "0 MAC" and human(2.5e6, "FLOP") == "2.5 MFLOP"


def test_per_step_only_for_real_steps():
    stepped = summary_lines(dict(SUMMARY, unknown_op_types={"Foo": 2.0}))
    assert "FLOPs per step" in stepped and "median step time" in stepped and "(2 µs/step)" in stepped
    whole = summary_lines(dict(SUMMARY, steps=0, unknown_op_types={"Foo": 2.0}))
    assert "per step" not in whole and "µs/step" not in whole
    assert "whole trace (no step markers)" in whole and "FLOPs in the whole trace" in whole
    assert "(2 µs in the trace)" in whole


def test_every_table_counts_per_occurrence_and_names_totals():
    for columns in (OPS_COLUMNS, KERNEL_COLUMNS, MEMCPY_COLUMNS):
        assert "flops_per_occurrence" not in columns
        totals = [c for c in columns if c.startswith("total_")]
        assert all(c in ("total_flops", "total_bytes", "total_time_us") for c in totals), totals
    assert {"flops", "bytes", "total_flops", "total_bytes"} <= set(KERNEL_COLUMNS)
    assert {"bytes", "total_bytes"} <= set(MEMCPY_COLUMNS)
