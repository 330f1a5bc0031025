"""The parser on traces recorded for real: the CPU example run and the V100 fixture."""
import numpy as np
import pytest

from traceflops import analyze
from traceflops.trace import load_trace

from conftest import TRACES

EXAMPLE = TRACES / "cpu-example-cnn"


def test_cpu_trace_events_and_steps():
    trace = load_trace(EXAMPLE)
    events = trace.events
    steps = events[events["kind"] == "step"].sort_values("start_ps")
    assert list(steps["step"]) == [0, 1, 2, 3, 4]
    assert list(steps["step_num"]) == [0, 1, 2, 3, 4]
    ops = events[events["kind"] == "op"]
    # every op event falls inside a recorded step (the capture runs nothing else)
    assert (ops["step"] >= 0).all()
    conv = ops[ops["op_name"] == "example_cnn_1/conv_1/Relu"]
    assert set(conv["op_type"]) == {"_MklNativeFusedConv2D"} and len(conv) == 5
    assert set(conv["shape"]) == {"(float[2,16,16,64];float[3,3,64,64];float[64])"}
    # absolute time = line timestamp + offset, and each op lies inside its step
    for _, op in ops.iterrows():
        step = steps[steps["step"] == op["step"]].iloc[0]
        assert step["start_ps"] <= op["start_ps"] < step["start_ps"] + step["duration_ps"]
    assert (events["self_ps"] <= events["duration_ps"]).all()


def test_cpu_trace_analysis_exact_counts():
    result = analyze(EXAMPLE)
    ops, summary = result.ops, result.summary
    assert summary["steps"] == 3  # the capture asked for 3; the first recorded step is skipped
    assert summary["macs_per_step"] == 25_446_912  # hand count in traces/README.md
    conv = ops[ops["op_name"] == "example_cnn_1/conv_1/Relu"].iloc[0]
    assert conv["macs"] == 2 * 16 * 16 * 64 * 3 * 3 * 64
    assert conv["flops"] == 2 * conv["macs"] + 2 * (2 * 16 * 16 * 64)  # + bias add and relu
    assert conv["bytes"] == 4 * (2 * 16 * 16 * 64 * 2 + 3 * 3 * 64 * 64 + 64)
    assert conv["occurrences"] == 3 and conv["layer"] == "conv_1"
    assert conv["gflops_per_s"] == pytest.approx(conv["flops"] * 3 / (conv["total_time_us"] * 1e-6) / 1e9)
    assert summary["coverage"] == 1.0 and summary["unknown_op_types"] == {}
    # op time in a step never exceeds the step's wall time
    events = result.trace.events
    for step in events.loc[events["kind"] == "step", "step"]:
        in_step = events[(events["kind"] == "op") & (events["step"] == step)]
        wall = events[(events["kind"] == "step") & (events["step"] == step)]["duration_ps"].iloc[0]
        assert in_step["self_ps"].sum() <= wall


def test_v100_fixture_host_and_device_events():
    path = TRACES / "gpu" / "tf-v100-bert-multiworker.xplane.pb"  # the committed copy of the shared fixture
    trace = load_trace(path)
    events = trace.events
    kernels = events[events["kind"] == "kernel"]
    assert set(kernels["plane"]) == {"/device:GPU:4", "/device:GPU:6"}
    assert (kernels.groupby("plane").size() == 665).all()
    assert (kernels["op_name"] != "").all()  # every kernel names its launching op
    first = kernels.iloc[0]
    assert first["op_type"] == "RandomUniform" and first["shape"] == "(int32[3])"
    assert first["kernel_details"] == "regs:38 shm:0 grid:160,1,1 block:1024,1,1"
    gpu4 = next(p for p in trace.planes if p.name == "/device:GPU:4")
    assert gpu4.stats["core_count"] == 80 and gpu4.stats["clock_rate"] == 1530000
    memcpy = events[events["kind"] == "memcpy"]
    assert memcpy["memcpy_details"].str.startswith("size:").all()
    # derived lines ("TensorFlow Ops", "Steps") are not counted twice
    assert not events["line"].isin(["TensorFlow Ops", "Steps", "TensorFlow Name Scope"]).any()
    assert np.all(events["duration_ps"] >= 0)
