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
no thread exists yet when it calls unshare). It enters the namespace, imports
TensorFlow, then reads a JSON request on stdin (the CLI starts it ahead of its
request, `prestart`, so that the import runs while the parent starts up), writes
a JSON answer to the file the request names and closes the pipe the parent
waits on (its number is the child's first argument) before it exits.
"""
from __future__ import annotations

import json
import os
import socket
import select
import subprocess
import sys
from typing import NamedTuple, Optional

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
ISOLATED_NOTE = "profiler server reachable only inside the capture's private network namespace (loopback)"


def _write(path: str, text: str) -> None:
    with open(path, "w") as stream:
        stream.write(text)


def _loopback_up() -> None:
    import fcntl
    import struct
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(sock, _SIOCGIFFLAGS, request)[:18])[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP))


def enter_private_network() -> Optional[str]:
    """Move this (single-threaded) process into a private network namespace with its loopback up;
    None on success, else why not. Tries a network namespace alone (root), then a user namespace
    with one (unprivileged users), mapping this user to root inside it so loopback can be raised."""
    import ctypes
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError as exc:
        return f"no C library to call unshare ({exc})"
    uid, gid = os.getuid(), os.getgid()
    if libc.unshare(CLONE_NEWNET) != 0:
        first = os.strerror(ctypes.get_errno())
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            return (f"unshare(CLONE_NEWNET) failed: {first}; unshare(CLONE_NEWUSER|CLONE_NEWNET) failed: "
                    f"{os.strerror(ctypes.get_errno())}")
        try:
            _write("/proc/self/setgroups", "deny")
            _write("/proc/self/uid_map", f"0 {uid} 1")
            _write("/proc/self/gid_map", f"0 {gid} 1")
        except OSError as exc:
            return f"user namespace made but its id maps could not be written ({exc})"
    try:
        _loopback_up()
    except OSError as exc:
        return f"private network namespace made but its loopback could not be raised ({exc})"
    return None


def _run_request(request: dict, reason: Optional[str]) -> dict:
    """In the child, isolated (`reason`: why not, or None): load and capture; the answer says how it went."""
    from ..errors import TraceflopsError
    kwargs = dict(request["capture"])
    reason = reason if kwargs.get("host_tracer_level") == 3 else None
    note = ISOLATED_NOTE if kwargs.get("host_tracer_level") == 3 and reason is None else ""
    if reason is not None:
        if request.get("allow_exposed_server"):
            note = (f"the profiler server listened on all interfaces, as TensorFlow binds [::] and no private "
                    f"network namespace could be made ({reason}); allowed by --expose-profiler-port")
        else:
            kwargs["host_tracer_level"] = 2
            note = (f"captured at host tracer level 2 (no profiler server; shapes from the executed graph): "
                    f"no private network namespace could be made ({reason})")
    try:
        from . import profiler
        from .model import load_model
        from .run import capture, set_threading
        profiler.SERVER_ISOLATED = reason is None
        profiler.ALLOW_EXPOSED = bool(request.get("allow_exposed_server"))
        set_threading(kwargs.get("inter_op_threads"))
        model = load_model(request["model_path"], allow_unsafe=request.get("allow_unsafe", False),
                           compile=bool(kwargs.get("train")))
        logdir = kwargs.pop("logdir")
        result = capture(model, logdir, **kwargs)
    except TraceflopsError as exc:
        return {"error": str(exc), "error_type": type(exc).__name__}
    except KeyboardInterrupt:
        return {"error": "interrupted", "error_type": "KeyboardInterrupt"}
    return {"result": result.__dict__, "isolation": note}


def child_main() -> None:
    # First, while this process has one thread (a user namespace admits no other), the private network;
    # then TensorFlow, which the capture needs whatever it is asked: a child started ahead of its request
    # (`prestart`) imports it while the parent is still starting up. The request waits in the pipe.
    _claim_answer_fd()
    interrupted = False
    try:
        reason = enter_private_network()
        try:
            from .tf import _import_tf
            _import_tf()
        except KeyboardInterrupt:
            interrupted = True
        except Exception:  # noqa: BLE001  (a broken install: the capture's own import says so in its answer)
            pass
        request = read_request()
    except KeyboardInterrupt:  # no request yet: the parent, interrupted too, expects no answer
        os._exit(130)
    if interrupted:
        answer_and_exit(request, {"error": "interrupted", "error_type": "KeyboardInterrupt"})
    answer_and_exit(request, _run_request(request, reason))


def _claim_answer_fd() -> Optional[int]:
    """In a child of `run_child`: the pipe it closes once its answer is written (its number is the
    child's first argument), kept from any process it starts, first thing (one holding it open would
    hold up the parent)."""
    if len(sys.argv) > 1 and sys.argv[1].isdigit():
        fd = int(sys.argv[1])
        os.set_inheritable(fd, False)
        return fd
    return None


def read_request() -> dict:
    """In a child of `run_child`: its request, from stdin (none, or a cut one: the parent let it go or
    was interrupted; the child exits quietly)."""
    answer_fd = _claim_answer_fd()
    try:
        request = json.loads(sys.stdin.read())
    except ValueError:
        os._exit(1)
    return {**request, "answer_fd": answer_fd}


def answer_and_exit(request: dict, answer: dict) -> None:
    """End a child process (of `run_child`): write its answer, tell the parent (close `answer_fd`), flush,
    and exit at once. Tearing down an interpreter that loaded TensorFlow takes over a second (measured:
    1.5 s after ResNet50V2 on a 2-core machine), and even `os._exit` frees the process's memory for a
    tenth of a second, which the parent need not wait for; the trace and every file are written by then."""
    from ..files import atomic_write_text
    atomic_write_text(request["answer_path"], json.dumps(answer))
    sys.stdout.flush()
    sys.stderr.flush()
    if request.get("answer_fd") is not None:
        os.close(request["answer_fd"])
    os._exit(0)


_BOOTSTRAP = "from traceflops.capture import sandbox; sandbox.child_main()"


def _stderr_fd():
    """Our stderr's descriptor, where the child's stdout goes; None (inherit) in a notebook kernel,
    whose sys.stderr is no file."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def capture_env() -> dict:
    """The environment of the capture child."""
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}


def run_capture_in_child(model_path: str, capture_kwargs: dict, answer_path: str,
                         allow_unsafe: bool = False, allow_exposed_server: bool = False) -> dict:
    """Run the capture in a sandboxed child (module doc); returns its answer. Ctrl-C reaches the child
    too (same process group); the parent then raises KeyboardInterrupt."""
    request = {"model_path": str(model_path), "capture": capture_kwargs,
               "allow_unsafe": allow_unsafe, "allow_exposed_server": allow_exposed_server}
    answer, status = run_child(_BOOTSTRAP, request, answer_path, capture_env())
    if answer is None:
        return {"error": f"the capture process ended without an answer (exit status {status})",
                "error_type": "CaptureError"}
    return answer


class _Child(NamedTuple):
    process: subprocess.Popen
    answered: int  # our end of the pipe the child closes once its answer is written
    env: dict


def _spawn(bootstrap: str, env: dict) -> _Child:
    read_end, write_end = os.pipe()
    try:
        # The child's stdout carries TensorFlow's and the profiler client's chatter: keep ours clean.
        process = subprocess.Popen([sys.executable, "-c", bootstrap, str(write_end)], stdin=subprocess.PIPE,
                                   stdout=_stderr_fd(), env=env, pass_fds=(write_end,))
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return _Child(process, read_end, env)


_PRESTARTED: dict = {}  # bootstrap -> _Child started ahead of its request
_EXITING: list = []  # children that answered and may still be returning their memory to the system


def prestart() -> None:
    """Start the capture child now, ahead of its request (the CLI's `profile`, first thing): it enters its
    network namespace and imports TensorFlow while this process imports and checks everything else.
    One not used is ended by `discard_prestarted`."""
    if _BOOTSTRAP not in _PRESTARTED:
        _PRESTARTED[_BOOTSTRAP] = _spawn(_BOOTSTRAP, capture_env())


def discard_prestarted() -> None:
    """End the children `prestart` started that no request went to."""
    while _PRESTARTED:
        _, child = _PRESTARTED.popitem()
        child.process.kill()
        child.process.wait()
        _close_quietly(child.process.stdin)
        os.close(child.answered)


def wait_exiting() -> None:
    """Wait until the children that answered are gone: before measuring the machine (the ceilings),
    which an exiting TensorFlow process would still share."""
    while _EXITING:
        _EXITING.pop().wait()


def _reap_exited() -> None:
    _EXITING[:] = [process for process in _EXITING if process.poll() is None]


def _close_quietly(stream) -> None:
    try:
        stream.close()
    except OSError:  # a pipe whose reader is gone
        pass


def _wait_for_answer(child: _Child) -> None:
    """Until the child closes its end of the pipe (its answer is written) or is gone: a process it
    started could hold the pipe open after it."""
    with os.fdopen(child.answered, "rb", buffering=0) as answered:
        while True:
            if select.select([answered], [], [], 0.5)[0]:
                if not answered.read(4096):
                    return
            elif child.process.poll() is not None:
                return


def run_child(bootstrap: str, request: dict, answer_path: str, env: dict):
    """(the answer the child wrote to `answer_path`, or None; its exit status, None while it still runs)
    of `python -c bootstrap ANSWER_FD` fed `request` as JSON on stdin (a prestarted child, when there is
    one for this bootstrap and environment). The child closes ANSWER_FD once its answer is written; it is
    then left to exit (`wait_exiting`) while the caller goes on. Ctrl-C reaches the child too (same
    process group)."""
    _reap_exited()
    child = _PRESTARTED.pop(bootstrap, None)
    if child is not None and child.env != env:
        _PRESTARTED[bootstrap] = child
        discard_prestarted()
        child = None
    child = child or _spawn(bootstrap, env)
    process = child.process
    try:
        try:
            process.stdin.write(json.dumps({**request, "answer_path": answer_path}).encode())
        except BrokenPipeError:  # the child ended at once: its exit status says why
            pass
        _close_quietly(process.stdin)
        _wait_for_answer(child)
    except KeyboardInterrupt:
        _close_quietly(process.stdin)
        process.wait()
        raise
    try:
        with open(answer_path) as stream:
            answer = json.load(stream)
    except (OSError, ValueError):
        return None, process.wait()
    _EXITING.append(process)
    return answer, None


_ERRORS = {"UsageError", "ModelError", "CaptureError", "TraceError"}


def _raise_answer(answer: dict) -> None:
    from .. import errors
    kind = answer.get("error_type")
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    raise getattr(errors, kind if kind in _ERRORS else "CaptureError")(answer["error"])


def _record_isolation(run_dir: str, note: str, fallback: bool) -> None:
    """Put the isolation outcome in traceflops_capture.json, where the analysis reads it."""
    from ..files import atomic_write_text
    path = os.path.join(run_dir, "traceflops_capture.json")
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


def _capture_here(model, logdir, capture_kwargs: dict):
    """The capture of a model only this process can run. Level 3 where its profiler server can be
    confined to a thread's private network namespace (root); otherwise level 2, no server."""
    from ..errors import CaptureError
    from .run import capture
    try:
        return capture(model, logdir, **capture_kwargs)
    except CaptureError as exc:
        if "no private network namespace" not in str(exc):
            raise
        reason = str(exc)
    result = capture(model, logdir, **{**capture_kwargs, "host_tracer_level": 2})
    _record_isolation(result.run_dir, "captured in this process at host tracer level 2 (no profiler server; "
                      "shapes from the executed graph): the model could not be saved and reloaded for the "
                      f"sandboxed capture process (custom objects?), and {reason}", True)
    return result


def capture_isolated(model, logdir, allow_unsafe: bool = False, allow_exposed_server: bool = False,
                     **capture_kwargs):
    """`run.capture` with the sandbox (module doc): a model path or an in-memory Keras model. A model
    that cannot be handed to the child is captured in this process at host tracer level 2 (no
    server), and the summary says why."""
    import tempfile
    from .run import CaptureResult, capture
    scratch = tempfile.mkdtemp(prefix=".traceflops-sandbox-", dir=os.path.dirname(os.path.abspath(logdir)))
    try:
        if capture_kwargs.get("host_tracer_level", 3) == 2:  # no server: nothing to isolate
            if isinstance(model, (str, os.PathLike)):
                from .model import load_model
                model = load_model(model, allow_unsafe=allow_unsafe, compile=bool(capture_kwargs.get("train")))
            return capture(model, logdir, **capture_kwargs)
        path = str(model) if isinstance(model, (str, os.PathLike)) else _saved_copy(model, scratch)
        if path is None:
            return _capture_here(model, logdir, capture_kwargs)
        answer = run_capture_in_child(path, {**capture_kwargs, "logdir": str(logdir)},
                                      os.path.join(scratch, "answer.json"), allow_unsafe, allow_exposed_server)
        if "error" in answer:
            _raise_answer(answer)
        result = CaptureResult(**answer["result"])
        if answer.get("isolation"):
            _record_isolation(result.run_dir, answer["isolation"], "level 2" in answer["isolation"]
                              or "all interfaces" in answer["isolation"])
        return result
    finally:
        import shutil
        shutil.rmtree(scratch, ignore_errors=True)
