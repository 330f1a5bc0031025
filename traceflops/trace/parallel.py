"""Trace stage: several large files parsed in parallel processes.

A worker parses one file and leaves its event columns in a temporary file
(pipes are slow for 100s of MB); the rest of its parts come back pickled.
Where workers cannot run (no process support, a worker died), the file is
parsed in this process.
"""
from __future__ import annotations

import os

import numpy as np

from .parse import FileParts, _parse_file
from .planes import _ARRAY_DTYPES, CodedEvents
from ..errors import TraceError

# Several files are parsed in parallel processes when there are at least two and
# together they hold at least this many bytes (below it, starting processes costs more).
PARALLEL_MIN_BYTES = 64 * 1024 * 1024


def _parse_parallel(files) -> list:
    """Parse files in worker processes; the first TraceError of any file is raised once all are done."""
    outcomes = _run_workers(files)
    while len(outcomes) < len(files):  # workers could not start: parse the rest here
        outcomes.append((False, None))
    parts, error = [], None
    for file, (ok, value) in zip(files, outcomes):
        try:
            if ok:
                parts.append(_read_back(*value))  # also removes the temporary file
            elif isinstance(value, TraceError):
                raise value
            else:
                parts.append(_parse_file(file))
        except TraceError as exc:
            error = error or exc
    if error is not None:
        raise error
    return parts


def _run_workers(files) -> list:
    """(True, what `_parse_file_to_disk` returned) or (False, its exception) per file parsed by a
    worker; fewer entries than files where workers could not start."""
    import multiprocessing
    import sys
    import threading
    from concurrent.futures import ProcessPoolExecutor
    workers = min(len(files), os.cpu_count() or 1)
    # fork starts a worker in milliseconds, but is unsafe in a process running other threads
    # (TensorFlow's, after `profile`): spawn there.
    methods = multiprocessing.get_all_start_methods()
    safe_to_fork = threading.active_count() == 1 and "tensorflow" not in sys.modules
    method = "fork" if safe_to_fork and "fork" in methods else "spawn"
    outcomes = []
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
            futures = [pool.submit(_parse_file_to_disk, str(file)) for file in files]
            for future in futures:
                try:
                    outcomes.append((True, future.result()))
                except Exception as exc:  # a worker's TraceError comes back as itself
                    outcomes.append((False, exc))
    except (OSError, NotImplementedError, ImportError):
        pass  # no worker processes here: parse in this process
    return outcomes


def _scratch_dir() -> str:
    """Where workers leave their arrays: $TRACEFLOPS_SCRATCH_DIR, else /dev/shm (memory), else the temp dir."""
    import tempfile
    chosen = os.environ.get("TRACEFLOPS_SCRATCH_DIR")
    if chosen:
        return chosen
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def _parse_file_to_disk(path: str):
    """In a worker: parse one file and write its arrays to a temporary file (pipes are slow for 100s of MB)."""
    import tempfile
    part = _parse_file(path)
    layout = []
    handle, scratch = tempfile.mkstemp(prefix="traceflops-", suffix=".bin", dir=_scratch_dir())
    try:
        with os.fdopen(handle, "wb") as out:
            for name in _ARRAY_DTYPES:
                values = np.ascontiguousarray(getattr(part.columns, name))
                layout.append((name, values.dtype.str, len(values)))
                out.write(memoryview(values).cast("B"))
    except BaseException:
        os.unlink(scratch)
        raise
    part.columns = None
    return part, scratch, layout


def _read_back(part: FileParts, scratch: str, layout: list) -> FileParts:
    try:
        with open(scratch, "rb") as source:
            arrays = {name: np.fromfile(source, dtype=np.dtype(dtype), count=count) for name, dtype, count in layout}
    finally:
        os.unlink(scratch)
    part.columns = CodedEvents(**arrays)
    return part
