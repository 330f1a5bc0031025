"""Run a request in a child Python process and get its answer back: the request as JSON on its stdin,
the answer in a JSON file, and a pipe the child closes once that file is written.

The protocol, for any child (`python -c BOOTSTRAP ANSWER_FD`): the child calls
`read_request()`, does its work, and ends with `answer_and_exit(request, answer)`,
which writes the answer to the file the request names, closes ANSWER_FD (the
parent stops waiting then, not when the child has finished exiting) and exits
at once. The parent's side is `run_child`. A child can be started ahead of its
request (`prestart`), so that its imports run while the parent starts up.

This module knows nothing of what the children do (the sandboxed TensorFlow
capture, the JAX capture, the graph rebuild) and imports nothing heavy. It owns
the process-wide record of children started ahead and of children that
answered but may still be exiting; both are read and changed only through its
functions.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
from typing import NamedTuple, Optional


class _Child(NamedTuple):
    process: subprocess.Popen
    answered: int  # our end of the pipe the child closes once its answer is written
    env: dict


_prestarted: dict = {}  # bootstrap -> _Child started ahead of its request
_exiting: list = []  # children that answered and may still be returning their memory to the system


# ---------------------------------------------------------------- child side

def claim_answer_fd() -> Optional[int]:
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
    answer_fd = claim_answer_fd()
    try:
        request = json.loads(sys.stdin.read())
    except ValueError:
        os._exit(1)
    return {**request, "answer_fd": answer_fd}


def error_answer(exc: BaseException) -> dict:
    """The answer that reports a failure, raised again in the parent by `raise_answer`."""
    if isinstance(exc, KeyboardInterrupt):
        return {"error": "interrupted", "error_type": "KeyboardInterrupt"}
    return {"error": str(exc), "error_type": type(exc).__name__}


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


# ---------------------------------------------------------------- parent side

def _stderr_fd():
    """Our stderr's descriptor, where the child's stdout goes; None (inherit) in a notebook kernel,
    whose sys.stderr is no file."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def _spawn(bootstrap: str, env: dict) -> _Child:
    read_end, write_end = os.pipe()
    try:
        # The child's stdout carries its libraries' chatter: keep ours clean.
        process = subprocess.Popen([sys.executable, "-c", bootstrap, str(write_end)], stdin=subprocess.PIPE,
                                   stdout=_stderr_fd(), env=env, pass_fds=(write_end,))
    except BaseException:
        os.close(read_end)
        raise
    finally:
        os.close(write_end)
    return _Child(process, read_end, env)


def prestart(bootstrap: str, env: dict) -> None:
    """Start the child of `bootstrap` now, ahead of its request, unless one is waiting already; the next
    `run_child` of that bootstrap and environment uses it. One not used is ended by `discard_prestarted`."""
    if bootstrap not in _prestarted:
        _prestarted[bootstrap] = _spawn(bootstrap, env)


def prestarted(bootstrap: str) -> Optional[subprocess.Popen]:
    """The process `prestart` started for `bootstrap` that no request went to yet, or None."""
    child = _prestarted.get(bootstrap)
    return child.process if child is not None else None


def discard_prestarted() -> None:
    """End the children `prestart` started that no request went to."""
    while _prestarted:
        _, child = _prestarted.popitem()
        child.process.kill()
        child.process.wait()
        _close_quietly(child.process.stdin)
        os.close(child.answered)


def wait_exiting() -> None:
    """Wait until the children that answered are gone: before measuring the machine (the ceilings),
    which an exiting TensorFlow process would still share."""
    while _exiting:
        _exiting.pop().wait()


def exiting_count() -> int:
    """How many children answered and have not been waited for yet."""
    return len(_exiting)


def _reap_exited() -> None:
    _exiting[:] = [process for process in _exiting if process.poll() is None]


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
    child = _prestarted.pop(bootstrap, None)
    if child is not None and child.env != env:
        _prestarted[bootstrap] = child
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
    _exiting.append(process)
    return answer, None


_ERRORS = {"UsageError", "ModelError", "CaptureError", "TraceError"}


def raise_answer(answer: dict) -> None:
    """Raise, in the parent, the failure an `error_answer` reports (KeyboardInterrupt for an interrupted
    child; a traceflops error of the same type, else CaptureError)."""
    from .. import errors
    kind = answer.get("error_type")
    if kind == "KeyboardInterrupt":
        raise KeyboardInterrupt
    raise getattr(errors, kind if kind in _ERRORS else "CaptureError")(answer["error"])
