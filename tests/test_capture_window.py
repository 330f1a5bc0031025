"""The level-3 capture's window: the session is ended once the profiled calls are done (the profiler
service's Terminate call) rather than left to run out its fixed length, and the capture child is started
ahead of its request by the CLI and handed its answer back before it has finished exiting."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import traceflops
from traceflops.capture import child_process, sandbox
from traceflops.trace import load_trace

from conftest import assert_clean_failure, run_cli


def _session_times_ns(trace_file: Path) -> tuple:
    """(profile_start_time, profile_stop_time) of the trace, read with TensorFlow's own proto."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    space = xplane_pb2.XSpace()
    space.ParseFromString(trace_file.read_bytes())
    found = {}
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.stat_metadata.items()}
        for stat in plane.stats:
            if names[stat.metadata_id] in ("profile_start_time", "profile_stop_time"):
                found[names[stat.metadata_id]] = stat.uint64_value
    return found["profile_start_time"], found["profile_stop_time"]


@pytest.mark.tf
def test_session_ends_once_the_steps_are_done(tf_runtime, tmp_path):
    import keras
    # Calls of some milliseconds, so that the window (3x the warm call per profiled call, plus 200 ms) is
    # far longer than the calls take even on a loaded machine: only an ended session stops early.
    model = keras.Sequential([keras.Input((48, 48, 16)), keras.layers.Conv2D(32, 3, name="conv")], name="cnn")
    steps = 6
    result = traceflops.profile(model, out=tmp_path / "out", batch_size=8, steps=steps, warmup=2, roofline=False)
    run_dir = Path(result.run_dir)
    info = json.loads((run_dir / "traceflops_capture.json").read_text())
    assert info["profiler_session_ended_early"] is True
    # The requested steps and the one spare before them ran under the profiler, and were all recorded.
    assert len(info["step_wall_times_us"]) == steps + 1
    trace_file = next(run_dir.glob("*.xplane.pb"))
    events = load_trace([trace_file]).events
    recorded = events[events["kind"] == "step"]
    assert sorted(recorded["step"]) == list(range(steps + 1))
    assert result.summary["steps"] == steps
    # A window that closes by itself leaves at least its 100 ms pad idle after the last call (profiler.py:
    # startup + allowance x calls x warm call + 100 ms, the allowance covering the calls); an ended
    # session stops within the Terminate round trip.
    start_ns, stop_ns = _session_times_ns(trace_file)
    last_step_end_ps = int((recorded["start_ps"] + recorded["duration_ps"]).max())
    idle_after_steps_ms = ((stop_ns - start_ns) * 1000 - last_step_end_ps) / 1e9
    assert 0 <= idle_after_steps_ms < 100
    assert (stop_ns - start_ns) / 1e6 < info["profiler_window_ms"]


def test_a_profile_that_fails_leaves_no_capture_child(tmp_path):
    """The CLI's `profile` starts its capture child before it checks anything; a refused run ends it."""
    mark = f"{os.getpid()}-{time.time_ns()}"
    proc = run_cli("profile", tmp_path / "missing.keras", env={"TRACEFLOPS_TEST_MARK": mark})
    assert_clean_failure(proc, 3, "no such file")
    assert _processes_marked(mark) == []


def _processes_marked(mark: str) -> list:
    """Pids of live processes whose environment holds TRACEFLOPS_TEST_MARK=mark (this test's own)."""
    wanted = f"TRACEFLOPS_TEST_MARK={mark}".encode()
    alive = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and wanted in (entry / "environ").read_bytes().split(b"\0"):
                if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    alive.append(int(entry.name))
        except OSError:
            continue
    return alive


def test_a_prestarted_child_is_ended_when_nothing_uses_it():
    sandbox.prestart()
    process = child_process.prestarted(sandbox.BOOTSTRAP)
    assert process.poll() is None
    child_process.discard_prestarted()
    assert process.returncode is not None and child_process.prestarted(sandbox.BOOTSTRAP) is None


ECHO = ("import os; from traceflops.capture import child_process; request = child_process.read_request(); "
        "child_process.answer_and_exit(request, {'echo': request['payload'], "
        "'inheritable': os.get_inheritable(request['answer_fd'])})")


def test_run_child_answers_before_the_child_is_reaped(tmp_path):
    answer, status = child_process.run_child(ECHO, {"payload": [1, 2]}, str(tmp_path / "answer.json"),
                                             dict(os.environ))
    # The answer pipe is kept from any process the child starts; the child is left to exit.
    assert answer == {"echo": [1, 2], "inheritable": False} and status is None
    child_process.wait_exiting()
    assert child_process.exiting_count() == 0
    # A child that dies without an answer: None, with its exit status.
    answer, status = child_process.run_child("import os; os._exit(7)", {}, str(tmp_path / "none.json"),
                                             dict(os.environ))
    assert (answer, status) == (None, 7)


def test_a_prestarted_child_for_another_environment_is_not_used(tmp_path):
    child_process.prestart(ECHO, {**os.environ, "TRACEFLOPS_TEST_MARK": "before"})
    stale = child_process.prestarted(ECHO)
    answer, _ = child_process.run_child(ECHO, {"payload": "fresh"}, str(tmp_path / "a.json"),
                                        {**os.environ, "TRACEFLOPS_TEST_MARK": "after"})
    assert answer["echo"] == "fresh"
    assert stale.returncode == -9 and child_process.prestarted(ECHO) is None  # ended, not fed the request


@pytest.mark.tf
def test_window_closes_by_itself_where_the_session_cannot_be_ended(tf_runtime, tmp_path):
    """Captured in this process (as for a model only this process can run): the server is confined to one
    thread's network namespace, which the Terminate call cannot reach; the window is sized for the calls
    and a spare after them, and closes by itself."""
    import keras
    from traceflops.capture import run as capture_run
    from traceflops.errors import CaptureError
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, name="fc")], name="mlp")
    if os.geteuid() != 0:  # no network namespace for a thread without root: refused, never exposed
        with pytest.raises(CaptureError, match="no private network namespace"):
            capture_run.capture(model, tmp_path / "logdir", batch_size=2, steps=3, warmup=1)
        return
    result = capture_run.capture(model, tmp_path / "logdir", batch_size=2, steps=3, warmup=1)
    info = json.loads((Path(result.run_dir) / "traceflops_capture.json").read_text())
    assert info["profiler_session_ended_early"] is False
    assert len(info["step_wall_times_us"]) == 3 + 2  # a spare before the steps and one after
    start_ns, stop_ns = _session_times_ns(Path(result.trace_files[0]))
    assert (stop_ns - start_ns) / 1e6 >= info["profiler_window_ms"] - 5  # the whole window ran


def test_a_process_the_child_started_does_not_hold_up_the_parent(tmp_path):
    """A child that forks (the fork keeps the answer pipe whatever its flags) and dies without an answer:
    the parent stops waiting once the child is gone, not when the fork is."""
    forks_and_dies = "import os, time; os.fork() == 0 and time.sleep(4); os._exit(5)"
    started = time.monotonic()
    answer, status = child_process.run_child(forks_and_dies, {}, str(tmp_path / "none.json"), dict(os.environ))
    assert (answer, status) == (None, 5)
    assert time.monotonic() - started < 3
