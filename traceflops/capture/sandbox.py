"""Capture in a sandbox: the level-3 capture runs in a child process inside its own network namespace.

Threat model. Recording input shapes (host tracer level 3) needs TensorFlow's
profiler server, an unauthenticated gRPC service that binds `[::]:PORT` (every
interface) and cannot be stopped before its process ends. traceflops therefore
never starts it in the caller's process and never where the network can reach
it: the whole capture runs in a fresh child process that, before anything else
(a user namespace can only be entered by a single-threaded process), enters
  * a new network namespace (as root), or
  * a new user namespace and a new network namespace (`unshare -Urn`, which
    unprivileged users get on Linux),
brings up its own loopback and nothing else, then loads the model and captures
it. The server exists only on that loopback and dies with the child, from the
CLI and from the Python API alike. Where no namespace can be made, the child
captures at host tracer level 2 (the in-process profiler, no server; every
shape comes from the executed graph) and says so; a reachable server is only
started behind `allow_exposed_server=True` / `--expose-profiler-port`, which
names the risk.

The child is `python -c "from traceflops.capture import sandbox; sandbox.child_main()"`:
importing `traceflops` and `traceflops.capture` loads no numpy or TensorFlow (so
no thread exists yet when it calls unshare). It enters the namespace (netns.py),
imports TensorFlow, then reads its request (the CLI starts it ahead of its
request, `prestart`, so that the import runs while the parent starts up) and
answers through child_process.py, which runs every traceflops child process: the
model's path, the logdir and the `CaptureRequest` go in; the `CaptureResult`, or
the error, comes back. What the child may do with the profiler server travels
with the request into the capture (`profiler.ServerPolicy`), set nowhere else.
"""
from __future__ import annotations

import json
import os
from typing import Optional

from .child_process import answer_and_exit, claim_answer_fd, error_answer, prestart as prestart_child
from .child_process import raise_answer, read_request, run_child
from .names import CAPTURE_FILE
from .netns import enter_private_network
from .profiler import ServerPolicy
from .request import CaptureRequest, CaptureResult

ISOLATED_NOTE = "profiler server reachable only inside the capture's private network namespace (loopback)"
BOOTSTRAP = "from traceflops.capture import sandbox; sandbox.child_main()"


def _confined(request: CaptureRequest, reason: Optional[str]) -> tuple:
    """In the child (`reason`: why it has no private network namespace, or None): (the request as it
    runs, where its profiler server may listen, what the summary says about that)."""
    server = ServerPolicy(process_isolated=reason is None, allow_exposed=request.allow_exposed_server)
    if request.host_tracer_level != 3:  # no server
        return request, server, ""
    if reason is None:
        return request, server, ISOLATED_NOTE
    if request.allow_exposed_server:
        return request, server, (f"the profiler server listened on all interfaces, as TensorFlow binds [::] and "
                                 f"no private network namespace could be made ({reason}); allowed by "
                                 "--expose-profiler-port")
    return request.replace(host_tracer_level=2), server, (
        f"captured at host tracer level 2 (no profiler server; shapes from the executed graph): no private "
        f"network namespace could be made ({reason})")


def _run_request(message: dict, reason: Optional[str]) -> dict:
    """In the child, isolated (`reason`: why not, or None): load and capture; the answer says how it went."""
    from ..errors import TraceflopsError
    request, server, note = _confined(CaptureRequest.from_json(message["capture"]), reason)
    try:
        from .model import load_model
        from .run import run_capture, set_threading
        set_threading(request.inter_op_threads)
        model = load_model(message["model_path"], allow_unsafe=request.allow_unsafe, compile=request.train)
        result = run_capture(model, message["logdir"], request, server)
    except (TraceflopsError, KeyboardInterrupt) as exc:
        return error_answer(exc)
    return {"result": result.__dict__, "isolation": note}


def child_main() -> None:
    # First, while this process has one thread (a user namespace admits no other), the private network;
    # then TensorFlow, which the capture needs whatever it is asked: a child started ahead of its request
    # (`prestart`) imports it while the parent is still starting up. The request waits in the pipe.
    claim_answer_fd()
    interrupted = False
    try:
        reason = enter_private_network()
        try:
            from .tf import import_tf
            import_tf()
        except KeyboardInterrupt:
            interrupted = True
        except Exception:  # noqa: BLE001  (a broken install: the capture's own import says so in its answer)
            pass
        message = read_request()
    except KeyboardInterrupt:  # no request yet: the parent, interrupted too, expects no answer
        os._exit(130)
    if interrupted:
        answer_and_exit(message, error_answer(KeyboardInterrupt()))
    answer_and_exit(message, _run_request(message, reason))


def capture_env() -> dict:
    """The environment of the capture child."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}


def prestart() -> None:
    """Start the capture child now, ahead of its request (the CLI's `profile`, first thing): it enters its
    network namespace and imports TensorFlow while this process imports and checks everything else.
    One not used is ended by `child_process.discard_prestarted`."""
    prestart_child(BOOTSTRAP, capture_env())


def run_capture_in_child(model_path: str, logdir, request: CaptureRequest, answer_path: str) -> dict:
    """Run the capture in a sandboxed child (module doc); returns its answer. Ctrl-C reaches the child
    too (same process group); the parent then raises KeyboardInterrupt."""
    message = {"model_path": str(model_path), "logdir": str(logdir), "capture": request.to_json()}
    answer, status = run_child(BOOTSTRAP, message, answer_path, capture_env())
    if answer is None:
        return {"error": f"the capture process ended without an answer (exit status {status})",
                "error_type": "CaptureError"}
    return answer


def _record_isolation(run_dir: str, note: str, fallback: bool) -> None:
    """Put the isolation outcome in traceflops_capture.json, where the analysis reads it."""
    from ..files import atomic_write_text
    path = os.path.join(run_dir, CAPTURE_FILE)
    with open(path) as stream:
        info = json.load(stream)
    info["profiler_server"] = note
    if fallback:
        info["capture_warnings"] = info.get("capture_warnings", []) + [note]
    atomic_write_text(path, json.dumps(info))


def _saved_copy(model, directory: str) -> Optional[str]:
    """A `.keras` file of an in-memory model for the child to load; None when it cannot be saved or
    would not load there (custom objects only this process knows)."""
    path = os.path.join(directory, "traceflops_model.keras")
    try:
        model.save(path)
        import keras
        keras.saving.load_model(path, compile=False)  # what the child will do: fail here, not there
    except Exception:  # any failure means: capture in this process instead
        return None
    return path


def _capture_here(model, logdir, request: CaptureRequest) -> CaptureResult:
    """The capture of a model only this process can run. Level 3 where its profiler server can be
    confined to a thread's private network namespace (root); otherwise level 2, no server."""
    from ..errors import CaptureError
    from .run import run_capture
    try:
        return run_capture(model, logdir, request)
    except CaptureError as exc:
        if "no private network namespace" not in str(exc):
            raise
        reason = str(exc)
    result = run_capture(model, logdir, request.replace(host_tracer_level=2))
    _record_isolation(result.run_dir, "captured in this process at host tracer level 2 (no profiler server; "
                      "shapes from the executed graph): the model could not be saved and reloaded for the "
                      f"sandboxed capture process (custom objects?), and {reason}", True)
    return result


def capture_isolated(model, logdir, request: Optional[CaptureRequest] = None, **options) -> CaptureResult:
    """`run.capture` with the sandbox (module doc): a model path or an in-memory Keras model, and the
    `CaptureRequest` (or its fields as keyword arguments). A model that cannot be handed to the child
    is captured in this process at host tracer level 2 (no server), and the summary says why."""
    import tempfile
    from .run import run_capture
    if request is None:
        request = CaptureRequest(**options)
    elif options:
        raise TypeError(f"capture_isolated: a CaptureRequest or its fields, not both ({', '.join(options)})")
    scratch = tempfile.mkdtemp(prefix=".traceflops-sandbox-", dir=os.path.dirname(os.path.abspath(logdir)))
    try:
        if request.host_tracer_level == 2:  # no server: nothing to isolate
            if isinstance(model, (str, os.PathLike)):
                from .model import load_model
                model = load_model(model, allow_unsafe=request.allow_unsafe, compile=request.train)
            return run_capture(model, logdir, request)
        path = str(model) if isinstance(model, (str, os.PathLike)) else _saved_copy(model, scratch)
        if path is None:
            return _capture_here(model, logdir, request)
        answer = run_capture_in_child(path, logdir, request, os.path.join(scratch, "answer.json"))
        if "error" in answer:
            raise_answer(answer)
        result = CaptureResult(**answer["result"])
        if answer.get("isolation"):
            _record_isolation(result.run_dir, answer["isolation"], "level 2" in answer["isolation"]
                              or "all interfaces" in answer["isolation"])
        return result
    finally:
        import shutil
        shutil.rmtree(scratch, ignore_errors=True)
