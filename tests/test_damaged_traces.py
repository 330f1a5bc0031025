"""Damaged, unusual and large traces: analysed as far as they go, or one clean error naming the file.

Also the synthetic trace generator (its bytes are protobuf's own) and the
parallel parse of a multi-host run directory.
"""

import numpy as np
import pandas as pd
import pytest

import traceflops
from traceflops.testing import synthetic
from traceflops.trace import load_trace, parse_spaces, read_xspace, xplane_schema
from traceflops.trace.timeline import assign_steps, self_times
from traceflops.testing.builder import Ref, XSpaceBuilder, field_bytes
from traceflops.errors import TraceError

from conftest import TRACES, assert_clean_failure, run_cli

REAL = TRACES / "cpu-example-cnn" / "host.xplane.pb"


cli = run_cli
one_error_line = assert_clean_failure


def write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


MATMUL, EXECUTOR = "a/MatMul:MatMul", "ExecutorState::Process"


def host_space(events, name="/host:CPU") -> XSpaceBuilder:
    """A space with one host plane: events (name, offset ps, duration ps) on one `tf_Compute` line,
    MatMul ops with their interned shape, executor bookkeeping without stats."""
    space = XSpaceBuilder(hostnames=["h"])
    line = space.plane(name, id=0).line(1, "tf_Compute/1", timestamp_ns=1000)
    for event_name, offset, duration in events:
        if event_name == MATMUL:
            line.event(MATMUL, offset, duration, {"shape": Ref("(float[2,3];float[3,4])")}, display_name="MatMul")
        else:
            line.event(event_name, offset, duration)
    return space


# ---------------------------------------------------------------- nothing to analyse

def test_valid_trace_without_op_events_is_a_clean_error_naming_the_file(tmp_path):
    space = host_space([(EXECUTOR, 10, 5), (EXECUTOR, 30, 5)])  # executor bookkeeping only
    path = space.write(tmp_path / "run" / "quiet.xplane.pb")
    with pytest.raises(TraceError, match="quiet.xplane.pb"):
        traceflops.analyze(path)
    out = tmp_path / "out"
    one_error_line(cli("analyze", path, "--out", out), 4, "quiet.xplane.pb", "no TensorFlow op")
    assert not any(out.iterdir()) if out.exists() else True


def test_space_without_planes_is_a_clean_error(tmp_path):
    path = XSpaceBuilder(hostnames=["h"]).write(tmp_path / "bare.xplane.pb")
    with pytest.raises(TraceError, match="bare.xplane.pb"):
        load_trace(path)


# ---------------------------------------------------------------- unknown device types: analysed

@pytest.mark.parametrize("device", ["/device:TPU:0", "/device:XPU:0"])
def test_unknown_device_type_is_analysed(tmp_path, device):
    """A device plane of a type we have no ceilings for: its events are kernels, attributed to the
    op named by their `tf_op` stat, and the trace is analysed (no roofline for that device)."""
    path = synthetic.write_synthetic_trace(tmp_path / "run" / "host.xplane.pb", 2000, num_names=20,
                                           ops_per_step=200, device_plane=device)
    result = traceflops.analyze(path)
    kernels = result.trace.events[result.trace.events["kind"] == "kernel"]
    assert len(kernels) == 2000 and set(kernels["plane"]) == {device}
    assert (kernels["op_name"].astype(str) != "").all() and (kernels["op_type"].astype(str) != "").all()
    assert result.summary["steps"] == 10 and len(result.ops)


def test_kernel_only_trace_of_unknown_device_is_analysed(tmp_path):
    space = XSpaceBuilder(hostnames=["xpuhost"])
    line = space.plane("/device:XPU:0", id=1).line(2, "stream 1", timestamp_ns=5)
    for k in range(4):
        line.event("fusion_kernel", 1000 * k, 500, {"tf_op": Ref("model/dense/MatMul:MatMul")})
    path = space.write(tmp_path / "xpu.xplane.pb")
    result = traceflops.analyze(path)
    assert "model/dense/MatMul" in set(result.ops["op_name"])
    assert any("no step markers" in w for w in result.summary["warnings"])


# ---------------------------------------------------------------- damage that is reported and analysed around

def test_space_errors_and_warnings_reach_the_summary(tmp_path):
    path = synthetic.write_synthetic_trace(
        tmp_path / "run" / "host.xplane.pb", 1500, num_names=20, ops_per_step=300, hostname="worker-3",
        errors=["CUPTI error: out of memory"],
        warnings=["Detected GPU events dropped on worker-3: 12 events dropped because buffer full."])
    result = traceflops.analyze(path)
    warnings = result.summary["warnings"]
    assert "worker-3: CUPTI error: out of memory" in warnings
    assert any("12 events dropped" in w for w in warnings)
    assert result.summary["steps"] == 5


def test_dropped_events_counter_is_a_warning(tmp_path):
    path = synthetic.write_synthetic_trace(tmp_path / "run" / "host.xplane.pb", 1500, num_names=20,
                                           ops_per_step=300, dropped_traces=4096)
    result = traceflops.analyze(path)
    said = [w for w in result.summary["warnings"] if "dropped 4096 events" in w]
    assert said and "dropped_traces" in said[0]
    assert result.trace.damage and said[0] in result.trace.damage


def test_capture_that_ends_inside_the_last_step(tmp_path):
    """The last step's marker is cut at the stop time and its ops run past it: that step is left
    out with a warning, the complete steps are analysed."""
    path = synthetic.write_synthetic_trace(tmp_path / "run" / "host.xplane.pb", 3000, num_names=20,
                                           ops_per_step=500, cut_last_step=True)
    result = traceflops.analyze(path)
    assert result.summary["steps"] == 5  # of 6 recorded markers
    warnings = " | ".join(result.summary["warnings"])
    assert "capture ended inside the last step (step_num 5)" in warnings
    assert "end after the capture stopped" in warnings
    events = result.trace.events
    steps = events[events["kind"] == "step"]
    assert list(steps["step_num"]) == [0, 1, 2, 3, 4] and list(steps["step"]) == [0, 1, 2, 3, 4]
    ops = events[events["kind"] == "op"]
    assert (ops["step"] <= 4).all() and (ops["step"] >= 0).sum() == 5 * 504  # 500 ops + 4 call ops a step


def test_last_step_whose_marker_was_never_recorded(tmp_path):
    path = synthetic.write_synthetic_trace(tmp_path / "run" / "host.xplane.pb", 3000, num_names=20,
                                           ops_per_step=500, lose_last_marker=True)
    result = traceflops.analyze(path)
    assert result.summary["steps"] == 5
    assert any("504 op events after the last step marker" in w for w in result.summary["warnings"])


def test_events_past_the_end_of_their_line_are_left_out(tmp_path):
    space = host_space([(MATMUL, 0, 100_000), (MATMUL, 200_000, 100_000), (MATMUL, 900_000, 500_000)])
    space.space.planes[0].lines[0].duration_ps = 1_000_000  # the line lasted 1 us: the third op was cut
    loaded = parse_spaces([("cut.xplane.pb", space.to_bytes())])
    assert len(loaded.events) == 2
    assert any("1 events run past the end of their line" in d for d in loaded.damage)


def test_negative_durations_and_malformed_event_bytes_are_skipped(tmp_path):
    space = host_space([(MATMUL, 0, 100_000), (MATMUL, 200_000, -5), (MATMUL, 400_000, 100_000)])
    # Append a malformed event to the line (wire type 7 inside the event): the line stays readable.
    plane = space.space.planes[0]
    line = plane.lines[0].SerializeToString() + b"\x22\x03\x08\x01\x0f"
    rest = xplane_schema.XPlane()
    rest.CopyFrom(plane)
    rest.ClearField("lines")
    plane_bytes = rest.SerializeToString() + field_bytes(3, line)
    damaged = field_bytes(1, plane_bytes) + XSpaceBuilder(hostnames=["h"]).to_bytes()
    path = write(tmp_path / "run" / "damaged.xplane.pb", damaged)
    loaded = load_trace(path)
    ops = loaded.events[loaded.events["kind"] == "op"]
    assert list(ops["start_ps"]) == [1_000_000, 1_400_000]
    assert any("1 events with a negative duration" in d for d in loaded.damage)
    assert any("1 events with malformed bytes" in d for d in loaded.damage)
    assert set(loaded.damage) <= set(loaded.warnings)


def test_absolute_timestamps_are_counted_from_the_profile_start():
    relative = parse_spaces([("a.xplane.pb", synthetic.synthetic_trace(1000, num_names=10))])
    absolute = parse_spaces([("a.xplane.pb", synthetic.synthetic_trace(1000, num_names=10,
                                                                          absolute_times=True))])
    pd.testing.assert_frame_equal(relative.events, absolute.events)
    assert absolute.damage == []


# ---------------------------------------------------------------- truncated files

def test_truncated_real_trace_fails_cleanly(tmp_path):
    data = REAL.read_bytes()
    path = write(tmp_path / "run" / "host.xplane.pb", data[: len(data) * 2 // 3])
    out = tmp_path / "out"
    proc = cli("analyze", path, "--out", out)
    one_error_line(proc, 4, "host.xplane.pb", "not a readable XSpace trace")
    assert not out.exists() or [p.name for p in out.iterdir()] == []


@pytest.mark.parametrize("keep", [1, 17, 1000, 30_000, 58_000])
def test_truncation_anywhere_is_a_trace_error(tmp_path, keep):
    path = write(tmp_path / "host.xplane.pb", REAL.read_bytes()[:keep])
    with pytest.raises(TraceError, match="host.xplane.pb"):
        load_trace(path)


# ---------------------------------------------------------------- synthetic traces and several hosts

def test_synthetic_events_are_protobufs_own_bytes():
    line = xplane_schema.XLine(id=3, name="tf_Compute/3", timestamp_ns=10)
    metadata = np.array([1, 2, 300], dtype=np.int64)
    offsets = np.array([0, 5, 2**40], dtype=np.int64)
    durations = np.array([7, 0, 2**33], dtype=np.int64)
    refs = np.array([9, 200, 70000], dtype=np.int64)
    for m, o, d, r in zip(metadata, offsets, durations, refs):
        event = line.events.add(metadata_id=int(m), offset_ps=int(o))
        event.duration_ps = int(d)
        event.stats.add(metadata_id=4, ref_value=int(r))
    ours = xplane_schema.XLine(id=3, name="tf_Compute/3", timestamp_ns=10).SerializeToString()
    ours += synthetic.encode_events(metadata, offsets, durations, [(4, "ref", refs)])
    # protobuf leaves out zero fields; ours writes them: both parse to the same message.
    assert xplane_schema.XLine.FromString(ours) == line


def test_synthetic_trace_has_tensorflows_layout():
    space = xplane_schema.XSpace.FromString(synthetic.synthetic_trace(400, num_names=30, ops_per_step=100))
    host = space.planes[0]
    assert host.name == "/host:CPU" and space.planes[-1].name == "Task Environment"
    names = {line.name.split("/")[0] for line in host.lines}
    assert names == {"tf_Compute", "traceflops"}
    stat_names = {k: m.name for k, m in host.stat_metadata.items()}
    op_events = 0
    for line in host.lines:
        for event in line.events:
            meta = host.event_metadata[event.metadata_id]
            if meta.display_name:
                op_events += 1
                assert meta.name.endswith(":" + meta.display_name)
                (stat,) = event.stats
                assert stat_names[stat.metadata_id] == "shape" and stat.WhichOneof("value") == "ref_value"
                assert stat_names[stat.ref_value].startswith("(")
    assert op_events == 400 + 4 * 4  # plus one call op per step and thread
    loaded = parse_spaces([("s.xplane.pb", space)])
    assert (loaded.events["kind"] == "op").sum() == op_events and (loaded.events["kind"] == "step").sum() == 4
    ops = loaded.events[loaded.events["kind"] == "op"]
    call = ops["op_type"] == "StatefulPartitionedCall"
    assert (ops.loc[call, "self_ps"] < ops.loc[call, "duration_ps"]).all()  # nested ops subtracted
    assert (ops.loc[~call, "self_ps"] == ops.loc[~call, "duration_ps"]).all()


def test_public_self_times_and_assign_steps_agree_with_the_table():
    loaded = parse_spaces([("s.xplane.pb", synthetic.synthetic_trace(1200, num_names=20, ops_per_step=300))])
    events = loaded.events
    assert (self_times(events) == events["self_ps"].to_numpy()).all()
    assert (assign_steps(events) == events["step"].to_numpy()).all()
    assert (events["self_ps"] < events["duration_ps"]).any()  # the call ops hold nested ops


def test_message_and_bytes_inputs_give_the_same_table():
    from_file = load_trace(REAL)
    from_message = parse_spaces([(REAL, read_xspace(REAL))])
    pd.testing.assert_frame_equal(from_file.events, from_message.events)


def test_several_hosts_parse_in_parallel_as_in_one_process(tmp_path):
    run = tmp_path / "plugins" / "profile" / "run"
    for k in range(3):
        synthetic.write_synthetic_trace(run / f"h{k}.xplane.pb", 1500 + 100 * k, num_names=20, ops_per_step=300,
                                        seed=k, hostname=f"host-{k}", device_plane="/device:GPU:0" if k else None)
    serial = load_trace(tmp_path, parallel=False)
    parallel = load_trace(tmp_path, parallel=True)
    pd.testing.assert_frame_equal(serial.events, parallel.events)
    assert serial.hostnames == parallel.hostnames == ["host-0", "host-1", "host-2"]
    steps = parallel.events[parallel.events["kind"] == "step"]
    assert steps.groupby("host", observed=True)["step"].max().tolist() == [4, 5, 5]


def test_damaged_file_among_several_hosts_is_named(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setenv("TRACEFLOPS_SCRATCH_DIR", str(scratch))
    run = tmp_path / "run"
    synthetic.write_synthetic_trace(run / "good.xplane.pb", 500, num_names=10)
    data = synthetic.synthetic_trace(500, num_names=10)
    write(run / "cut.xplane.pb", data[: len(data) // 2])
    with pytest.raises(TraceError, match="cut.xplane.pb"):
        load_trace(run, parallel=True)
    assert list(scratch.iterdir()) == []  # the good file's arrays were read back and removed


# ---------------------------------------------------------------- one file decoded by two processes

# Run in a fresh interpreter (fork is only used where no other thread runs, which a test session that
# loaded TensorFlow cannot promise): decodes FILE in one process and in two, the split forced, then
# with a prefetching child, then with one that fails; prints the forks made, events and damage lines.
SPLIT_CHECK = """
import os, sys
import pandas as pd
from traceflops.trace import load_trace
from traceflops.trace import parallel
forks, real_fork = [], os.fork
os.fork = lambda: forks.append(1) or real_fork()
path = sys.argv[1]
one = load_trace([path], parallel=False)
two = load_trace([path], parallel=True)
assert not parallel.prefetch(path)  # a small file (these are): not worth a second process
runs = {"split": two}
parallel.SPLIT_MIN_BYTES = 0
assert parallel.prefetch(path)
runs["prefetched"] = load_trace([path])
scratch = os.environ["TRACEFLOPS_SCRATCH_DIR"]
os.environ["TRACEFLOPS_SCRATCH_DIR"] = os.path.join(scratch, "missing")  # the child cannot leave its part
assert parallel.prefetch(path)
os.environ["TRACEFLOPS_SCRATCH_DIR"] = scratch
runs["child failed"] = load_trace([path])
for name, trace in runs.items():
    pd.testing.assert_frame_equal(one.events, trace.events)
    assert one.damage == trace.damage and one.warnings == trace.warnings, name
print(len(forks), len(one.events), len(one.damage))
"""


def _split_check(path, scratch):
    import subprocess
    import sys
    env = {**__import__("os").environ, "TRACEFLOPS_SCRATCH_DIR": str(scratch)}
    proc = subprocess.run([sys.executable, "-c", SPLIT_CHECK, str(path)], capture_output=True, text=True,
                          env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return [int(x) for x in proc.stdout.split()]


def test_one_file_decoded_by_two_processes_is_the_file_decoded_by_one(tmp_path):
    path = synthetic.write_synthetic_trace(tmp_path / "run" / "h.xplane.pb", 3000, num_names=40,
                                           ops_per_step=300, device_plane="/device:GPU:0")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    forks, events, damage = _split_check(path, scratch)
    assert forks == 3 and events > 3000 and damage == 0  # the split, two prefetches (one child failed)
    assert list(scratch.iterdir()) == []


def test_damaged_file_decoded_by_two_processes_counts_its_damage_once(tmp_path):
    """Damaged events in both halves: one line per reason, with the sum of both halves' counts."""
    space = host_space([(MATMUL, k * 300_000, -5 if k in (1, 7) else 100_000) for k in range(9)])
    plane = space.space.planes[0]
    line = plane.lines[0].SerializeToString() + b"\x22\x03\x08\x01\x0f"
    rest = xplane_schema.XPlane()
    rest.CopyFrom(plane)
    rest.ClearField("lines")
    damaged = field_bytes(1, rest.SerializeToString() + field_bytes(3, line)) + XSpaceBuilder(
        hostnames=["h"]).to_bytes()
    path = write(tmp_path / "run" / "damaged.xplane.pb", damaged)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    forks, events, damage = _split_check(path, scratch)
    assert (forks, events, damage) == (3, 7, 2)
    assert any("2 events with a negative duration" in d for d in load_trace(path).damage)


def test_cli_prefetch_of_a_large_file_matches_the_api_and_leaves_nothing(tmp_path):
    """`analyze` of one file of 16 MB or more starts decoding it before importing the pipeline: the same
    summary as the API's; a damaged large file or a run that stops before reading it leaves no scratch."""
    import json
    from traceflops.report import to_jsonable
    from traceflops.trace.parallel import SPLIT_MIN_BYTES
    path = synthetic.write_synthetic_trace(tmp_path / "run" / "big.xplane.pb", 700_000, num_names=200)
    assert path.stat().st_size >= SPLIT_MIN_BYTES
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {"TRACEFLOPS_SCRATCH_DIR": str(scratch)}
    proc = cli("analyze", path, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == json.loads(json.dumps(to_jsonable(traceflops.analyze(path).summary)))
    blocked = tmp_path / "file"
    blocked.write_text("")
    one_error_line(cli("analyze", path, "--out", blocked / "out", env=env), 2)
    data = path.read_bytes()
    cut = write(tmp_path / "cut" / "big.xplane.pb", data[: len(data) * 2 // 3])
    one_error_line(cli("analyze", cut, env=env), 4, "big.xplane.pb")
    assert list(scratch.iterdir()) == []
