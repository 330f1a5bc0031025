"""Capture: recording the trace (host tracer level 3 through the profiler service, or level 2)."""
from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

from ..errors import CaptureError
from .names import STEP_MARKER
from .netns import enter_private_network_thread
from .tf import import_tf


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ServerPolicy:
    """Where the level-3 profiler server may start. `process_isolated`: this whole process is in its
    private network namespace (the sandboxed capture child, sandbox.py, once it entered it).
    `allow_exposed`: a server reachable on every interface is allowed where no namespace can be made
    (--expose-profiler-port, in that child only). The default allows only a server confined to its
    thread's own namespace."""
    process_isolated: bool = False
    allow_exposed: bool = False


class _ProfilerService:
    """The profiler server and its client, run from one thread in a private network namespace.

    Started once per process (TensorFlow cannot stop the server; it ends with
    the process, which is why traceflops.profile runs captures in a child process,
    sandbox.py). The server starts only where it is isolated, or where `policy` allows
    it exposed; `note` says which.
    """

    def __init__(self, policy: ServerPolicy):
        import queue
        self._tasks = queue.Queue()
        self._ready = queue.Queue()
        self.policy = policy  # what it was started under: a later capture in the process reuses it
        self.port = None
        self.isolated = False
        self.note = ""
        thread = threading.Thread(target=self._serve, args=(policy,), name="traceflops-profiler-service",
                                  daemon=True)
        thread.start()
        failure = self._ready.get()
        if failure is not None:
            raise CaptureError(f"could not start the profiler server: {failure}")

    def _serve(self, policy: ServerPolicy):
        try:
            reason = None if policy.process_isolated else enter_private_network_thread()
            self.isolated = reason is None
            if not self.isolated and not policy.allow_exposed:
                raise RuntimeError(
                    f"no private network namespace for the profiler server ({reason}), and it would listen on "
                    "every interface; capture through traceflops.profile (it sandboxes the capture) or at "
                    "host tracer level 2")
            self.note = ("profiler server reachable only inside a private network namespace (loopback)"
                         if self.isolated else
                         f"the profiler server listened on all interfaces, as TensorFlow binds [::] ({reason}); "
                         "--host-tracer-level 2 runs no server")
            from tensorflow.python.profiler.internal import _pywrap_profiler
            self.port = _free_loopback_port()
            _pywrap_profiler.start_server(self.port)
        except Exception as exc:  # reported to the caller as a CaptureError
            self._ready.put(f"{type(exc).__name__}: {exc}")
            return
        self._ready.put(None)
        while True:
            task, done = self._tasks.get()
            try:
                done.append(("ok", task()))
            except Exception as exc:  # the service reports failures as generic exceptions
                done.append(("error", exc))

    def submit(self, task) -> list:
        """Run `task` on the service thread; the returned list gets ("ok"|"error", value)."""
        done = []
        self._tasks.put((task, done))
        return done


# One per process: TensorFlow cannot stop the server, so a second capture in the process reuses it.
_service: Optional[_ProfilerService] = None


def _profiler_service(policy: ServerPolicy) -> _ProfilerService:
    global _service
    if _service is None:
        _service = _ProfilerService(policy)
    return _service


def run_steps(step_fn, inputs, count, first_step=0):
    """Call `step_fn(*inputs)` `count` times, each in a step marker numbered from `first_step` and waited
    on until its results are ready; the calls' wall times in microseconds."""
    tf = import_tf()
    times = []
    for number in range(first_step, first_step + count):
        start = time.perf_counter()
        with tf.profiler.experimental.Trace(STEP_MARKER, step_num=number, _r=1):
            out = step_fn(*inputs)
            # Wait for the result so the step's end is the end of its work.
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, out)
        times.append((time.perf_counter() - start) * 1e6)
    return times


@contextlib.contextmanager
def _stdout_to_stderr():
    """The profiler client prints progress on C-level stdout; keep stdout for our --json output."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# A profiled call's time over the warm unprofiled call's, allowed for in the level-3 window. Measured on
# ResNet50V2 and the example CNN on a 2-core CPU (19 runs): median 1.21, 18 of 19 at most 1.44, one 1.71.
# Where the window can be ended early (`_SessionEnder`), it is sized for the slow case and closed as soon
# as the steps are done; where it cannot, it is sized for the usual case and the time after the steps is idle.
PROFILED_CALL_ALLOWANCE = 1.35
PROFILED_CALL_ALLOWANCE_ENDED_EARLY = 3.0


def _session_names(start_s: float, end_s: float) -> list:
    """The names the trace client may have given its session: it names it after the time to the second
    when it starts (XProf's CaptureRemoteTrace: GetCurrentTimeStampAsString, also the run folder's name),
    in local time; UTC too, in case its time zone library reads $TZ another way than the C library."""
    names = []
    for second in range(int(start_s), int(end_s) + 1):
        for moment in (time.localtime(second), time.gmtime(second)):
            name = time.strftime("%Y_%m_%d_%H_%M_%S", moment)
            if name not in names:
                names.append(name)
    return names


class _SessionEnder:
    """Asks the profiler server to end a session now rather than at its window's end (the service's
    Terminate call: the server stops within a millisecond and writes what it recorded). Connected
    before the profiled steps, so that the call after them is a round trip on the loopback. Only from a
    process wholly inside the private network namespace: there 127.0.0.1 is the server's own loopback."""

    def __init__(self, port: int):
        import grpc  # a TensorFlow dependency; its client opens no listening socket
        self._grpc = grpc
        # Never through a proxy named in the environment: the server is on this namespace's loopback.
        self._channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.enable_http_proxy", 0)])
        try:
            grpc.channel_ready_future(self._channel).result(timeout=2)
        except BaseException:
            self._channel.close()
            raise
        self._terminate = self._channel.unary_unary("/tensorflow.ProfilerService/Terminate",
                                                    request_serializer=bytes, response_deserializer=bytes)

    @classmethod
    def connect(cls, port: int, policy: ServerPolicy) -> Optional["_SessionEnder"]:
        """None where the session cannot be ended early (its window then closes by itself)."""
        if not policy.process_isolated:
            return None
        try:
            return cls(port)
        except Exception:  # noqa: BLE001  (no grpc module, or no connection: the window closes by itself)
            return None

    def end(self, names: list) -> bool:
        """End the session, whichever of `names` it has. The server keeps a stop mark for each name that
        ended nothing: harmless in the capture child, which records one session."""
        try:
            for name in names:
                field = name.encode()
                # TerminateRequest {string session_id = 1}: tag 0x0a, length (one byte: names are 19 long).
                self._terminate(b"\x0a" + bytes([len(field)]) + field, timeout=5)
        except self._grpc.RpcError:
            return False
        return True

    def close(self) -> None:
        self._channel.close()


class Level3(NamedTuple):
    times_us: list  # the profiled calls' wall times
    collected_meanwhile: object  # what `while_collecting()` returned
    window_ms: int  # the session's requested length
    ended_early: bool  # ended by us once the steps were done, not by the window's end
    server_note: str  # where the profiler server listened (ServerPolicy)


def trace_level3(logdir, step_fn, inputs, steps, step_time_us, device_tracer_level, policy: ServerPolicy,
                 while_collecting=None) -> Level3:
    """Record level 3 through the loopback profiler service while steps run; `while_collecting()` is
    work done while the server collects and writes the trace."""
    from xprof.convert import _pywrap_profiler_plugin as plugin
    service = _profiler_service(policy)
    ender = _SessionEnder.connect(service.port, service.policy)
    ends_early = ender is not None
    # The service starts its session a few milliseconds after the request; we wait out that start and
    # run the requested steps plus one spare first (the analysis drops the first recorded step, which
    # absorbs the profiler's start). Then we end the session, or, where we cannot, let the window close:
    # a spare last step then covers a window that closes early.
    startup_s = 0.1
    calls = steps + (1 if ends_early else 2)
    allowance = PROFILED_CALL_ALLOWANCE_ENDED_EARLY if ends_early else PROFILED_CALL_ALLOWANCE
    duration_ms = int(1000 * startup_s + allowance * calls * step_time_us / 1000 + 100)

    def trace():
        # Runs on the service thread, inside its network namespace, like the server.
        plugin.trace(f"127.0.0.1:{service.port}", str(logdir), "", True, duration_ms, 1,
                     {"host_tracer_level": 3, "device_tracer_level": device_tracer_level,
                      "python_tracer_level": 0})

    runs = Path(logdir) / "plugins" / "profile"
    earlier_runs = set(runs.iterdir()) if runs.is_dir() else set()
    with _stdout_to_stderr(), contextlib.ExitStack() as cleanup:
        if ender is not None:
            cleanup.callback(ender.close)
        requested_s = time.time()
        done = service.submit(trace)
        time.sleep(startup_s)
        times = run_steps(step_fn, inputs, calls)
        names = _session_names(requested_s, time.time()) if ender is not None and not done else []
        sent = bool(names) and ender.end(names)
        extra = while_collecting() if while_collecting is not None else None
        while not done:
            time.sleep(0.005)
    # The server answers Terminate for any name: the session was ended only if it had one of the names sent.
    ended_early = sent and any(run not in earlier_runs for run in (runs / name for name in names) if run.is_dir())
    status, value = done[0]
    if status == "error":
        raise CaptureError(f"the profiler service failed to record a trace: {value}")
    return Level3(times, extra, duration_ms, bool(ended_early), service.note)


def trace_level2(logdir, step_fn, inputs, steps):
    """Record host tracer level 2 with the in-process profiler (no server) while steps run."""
    tf = import_tf()
    tf.profiler.experimental.start(str(logdir))
    try:
        times = run_steps(step_fn, inputs, steps)
    finally:
        tf.profiler.experimental.stop()
    return times
