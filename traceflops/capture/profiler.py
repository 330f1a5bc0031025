"""Capture: recording the trace (host tracer level 3 through the profiler service, or level 2)."""
from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
from typing import Optional

from ..errors import CaptureError
from .tf import _import_tf

STEP_MARKER = "traceflops_step"


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Set by the sandboxed capture process (sandbox.py) once the whole process is in its private
# network namespace, and behind --expose-profiler-port. Nothing else may start a reachable server.
SERVER_ISOLATED = False
ALLOW_EXPOSED = False


def _enter_private_network() -> Optional[str]:
    """Move the calling thread into a new network namespace with only its loopback up (root only:
    an unprivileged user needs a user namespace, which a multi-threaded process cannot enter);
    None on success, else why not."""
    import ctypes
    from .sandbox import CLONE_NEWNET, _loopback_up
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) != 0:
            return f"unshare(CLONE_NEWNET) failed: {os.strerror(ctypes.get_errno())}"
        _loopback_up()
    except (OSError, AttributeError) as exc:  # no unshare (not Linux) or no permission
        return f"no private network namespace ({exc})"
    return None


class _ProfilerService:
    """The profiler server and its client, run from one thread in a private network namespace.

    Started once per process (TensorFlow cannot stop the server; it ends with
    the process, which is why traceflops.profile runs captures in a child process,
    sandbox.py). The server starts only where it is isolated, or behind
    ALLOW_EXPOSED; `note` says which.
    """

    def __init__(self):
        import queue
        self._tasks = queue.Queue()
        self._ready = queue.Queue()
        self.port = None
        self.isolated = False
        self.note = ""
        thread = threading.Thread(target=self._serve, name="traceflops-profiler-service", daemon=True)
        thread.start()
        failure = self._ready.get()
        if failure is not None:
            raise CaptureError(f"could not start the profiler server: {failure}")

    def _serve(self):
        try:
            reason = None if SERVER_ISOLATED else _enter_private_network()
            self.isolated = reason is None
            if not self.isolated and not ALLOW_EXPOSED:
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


_SERVICE = None


def _profiler_service() -> _ProfilerService:
    global _SERVICE
    if _SERVICE is None:
        _SERVICE = _ProfilerService()
    return _SERVICE


def _run_steps(step_fn, inputs, count, first_step=0):
    tf = _import_tf()
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
# ResNet50V2 and the example CNN on a 2-core CPU (19 runs): median 1.21, 18 of 19 at most 1.44, one 1.71
# (which no margin short of doubling the idle time would cover; the summary then says fewer steps).
PROFILED_CALL_ALLOWANCE = 1.35


def _trace_level3(logdir, step_fn, inputs, steps, step_time_us, device_tracer_level):
    """Record level 3 through the loopback profiler service while steps run."""
    from xprof.convert import _pywrap_profiler_plugin as plugin
    service = _profiler_service()
    # The service starts its session a few milliseconds after the request; we
    # wait out that start, run the requested steps plus one spare at each end
    # (the analysis drops the first recorded step), and let the window close.
    # The window is fixed now and the time after the steps is idle: it allows each
    # profiled call PROFILED_CALL_ALLOWANCE x the warm call (with the spare calls,
    # steps + 1 calls fit up to 1.47x for 10 steps).
    startup_s = 0.1
    duration_ms = int(1000 * startup_s + PROFILED_CALL_ALLOWANCE * (steps + 2) * step_time_us / 1000 + 100)

    def trace():
        # Runs on the service thread, inside its network namespace, like the server.
        plugin.trace(f"127.0.0.1:{service.port}", str(logdir), "", True, duration_ms, 1,
                     {"host_tracer_level": 3, "device_tracer_level": device_tracer_level,
                      "python_tracer_level": 0})

    with _stdout_to_stderr():
        done = service.submit(trace)
        time.sleep(startup_s)
        times = _run_steps(step_fn, inputs, steps + 2)
        while not done:
            time.sleep(0.01)
    status, value = done[0]
    if status == "error":
        raise CaptureError(f"the profiler service failed to record a trace: {value}")
    return times


def _trace_level2(logdir, step_fn, inputs, steps):
    tf = _import_tf()
    tf.profiler.experimental.start(str(logdir))
    try:
        times = _run_steps(step_fn, inputs, steps)
    finally:
        tf.profiler.experimental.stop()
    return times
