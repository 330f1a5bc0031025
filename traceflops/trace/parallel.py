"""Trace stage: large traces parsed by several processes.

Several files: a worker parses each file. One large file: once its message
is parsed, the process forks, and each of the two decodes half of the
events (`parse_split`); the CLI forks earlier still, before it imports pandas,
and its child parses the message and hands over the first half's bytes
(`prefetch`, `collect_prefetched`). A worker leaves its event columns in a
temporary file (pipes are slow for 100s of MB), read back mapped; the rest of
its parts come back pickled. Where workers cannot run (no process support, a
worker died), the file is parsed in this process.
"""
from __future__ import annotations

import os
import pickle
import struct
import sys
import threading
from pathlib import Path
from typing import Optional

import numpy as np

from .parse import WHOLE, FileParts, decode_contents, merge_shares, open_space, parse_file
from .space import space_contents
from .values import StringTable
from .planes import ARRAY_DTYPES, CodedEvents
from ..errors import TraceError

# Several files are parsed in parallel processes when there are at least two and
# together they hold at least this many bytes (below it, starting processes costs more).
PARALLEL_MIN_BYTES = 64 * 1024 * 1024
# One file is decoded by two processes from this size (about 400,000 events) on.
SPLIT_MIN_BYTES = 16 * 1024 * 1024


def fork_is_safe() -> bool:
    """fork starts a worker in milliseconds, but is unsafe in a process running other threads
    (TensorFlow's, after `profile`)."""
    return hasattr(os, "fork") and threading.active_count() == 1 and "tensorflow" not in sys.modules


def parse_split(path) -> FileParts:
    """One file decoded by two processes: this one forks once the message is parsed (the child shares
    it), each decodes half of the events, and the child's half comes back through a temporary file.
    Where the child fails, its half is decoded here."""
    child = {}  # in this process: pid and the pipe's read end; in the child: the pipe's write end

    def split() -> tuple:
        try:
            read_end, write_end = os.pipe()
            pid = os.fork()
        except OSError:
            return WHOLE  # no second process: this one decodes the whole file
        if pid == 0:
            os.close(read_end)
            keep_freed_memory()
            child["pipe"] = write_end
            return (1, 2, 2)
        os.close(write_end)
        child.update(pid=pid, source=os.fdopen(read_end, "rb"))
        return (0, 1, 2)

    in_child = lambda: "pipe" in child  # noqa: E731
    try:
        part = parse_file(path, split=split)
    except BaseException:
        if in_child():
            os._exit(1)  # the child never returns into the caller's code
        if "pid" in child:
            _reap(child)
        raise
    if in_child():
        part.columns = part.columns.build()
        _child_reply(part, child["pipe"])  # exits
    if "pid" not in child:
        return part
    theirs = _reap(child)
    if theirs is None:
        theirs = parse_file(path, share=(1, 2, 2))
    return merge_shares([part, theirs])


# Files whose later events a forked child is decoding already (`prefetch`): key -> the child.
_PREFETCHED: dict = {}
# The share of a prefetched file the child decodes (this process decodes the rest once it has imported
# pandas and the pipeline, while the child parses the message): halves had both finish together on
# this project's 2-core machine (the child's two thirds or three fifths left this process waiting).
PREFETCH_SHARE = (1, 2, 2)


def _file_key(path) -> tuple:
    stat = os.stat(path)
    return os.path.realpath(path), stat.st_size, stat.st_mtime_ns


def prefetch(path, tune_allocator: bool = False) -> bool:
    """Fork a child that parses one large file's message now, hands this process the bytes of the first
    events (the first `PREFETCH_SHARE`, as `space_contents` copies them out) and decodes the rest,
    while this process goes on loading the rest of the pipeline (the CLI calls this before it imports
    pandas); the next `load_trace` of the file decodes the handed bytes here and collects the child's
    part. One process parses the message; neither waits for the other to start.
    With `tune_allocator` (a process of our own: the CLI's), `keep_freed_memory` once it is collected.
    False where nothing was started (small file, one core, fork not safe)."""
    import atexit
    try:
        if os.path.getsize(path) < SPLIT_MIN_BYTES or (os.cpu_count() or 1) < 2 or not fork_is_safe():
            return False
        key = _file_key(path)
        read_end, write_end = os.pipe()
        pid = os.fork()
    except OSError:
        return False
    if pid == 0:
        os.close(read_end)
        _prefetch_child(path, write_end)  # exits
    os.close(write_end)
    _PREFETCHED[key] = {"pid": pid, "source": os.fdopen(read_end, "rb"), "tune_allocator": tune_allocator}
    atexit.register(_discard, key)  # a run that ends before loading the trace still waits for the child
    return True


def _prefetch_child(path, pipe: int) -> None:
    """In the forked child: parse, hand over the first share's bytes (a temporary file named down the
    pipe, framed), decode the rest and reply as every decoding child does; exit 1 on any failure (the
    parent then reads the file itself, and says what is wrong with it)."""
    try:
        space = open_space(path)
        first, _, parts = PREFETCH_SHARE
        strings = StringTable()  # (the string table the handed contents started)
        handed = (space_contents(Path(path), space, strings, (0, first, parts)), strings)
        name = _scratch_file(lambda out: pickle.dump(handed, out, protocol=pickle.HIGHEST_PROTOCOL)).encode()
        os.write(pipe, struct.pack("<Q", len(name)) + name)  # under PIPE_BUF bytes: written at once
        del handed, strings
        strings = StringTable()
        contents = space_contents(Path(path), space, strings, PREFETCH_SHARE)
        del space  # its arena returned to the kernel (malloc's defaults still) before the decoding
        keep_freed_memory()
        part = decode_contents(path, contents, strings, PREFETCH_SHARE)
        part.columns = part.columns.build()
    except BaseException:
        os._exit(1)
    _child_reply(part, pipe)  # exits


def _handed_over(child: dict, load: bool = True):
    """(contents, strings) the prefetching child handed over (its temporary file removed); None where
    it failed before (or where not `load`ed)."""
    header = child["source"].read(8)
    if len(header) < 8:
        return None
    name = child["source"].read(struct.unpack("<Q", header)[0]).decode()
    try:
        if not load:
            return None
        with open(name, "rb") as handle:
            return pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError):
        return None
    finally:
        _unlink_quietly(name)


def collect_prefetched(path) -> Optional[FileParts]:
    """The whole file's parts where `prefetch` started a child on it: the first events decoded here,
    the child's merged after them (decoded here too where the child failed); else None."""
    try:
        child = _PREFETCHED.pop(_file_key(path), None)
    except OSError:
        return None
    if child is None:
        return None
    first, last, parts = PREFETCH_SHARE
    handed = _handed_over(child)
    if handed is None:  # the child failed: all here, TraceErrors included
        _reap(child)
        return parse_file(path)
    try:
        mine = decode_contents(path, *handed, share=(0, first, parts))
    except BaseException:
        _reap(child)  # also removes its temporary file
        raise
    del handed
    theirs = _reap(child) or parse_file(path, share=PREFETCH_SHARE)
    if child["tune_allocator"]:
        keep_freed_memory()
    return merge_shares([mine, theirs])


def _discard(key) -> None:
    child = _PREFETCHED.pop(key, None)
    if child is not None:
        _handed_over(child, load=False)  # removes the handed-over file
        _reap(child)  # and this its reply's


def discard_prefetched() -> None:
    """Reap every prefetching child not collected (a run that stopped before reading its trace)."""
    for key in list(_PREFETCHED):
        _discard(key)


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep freed memory for reuse rather than hand it back to the kernel.

    Decoding and tabulating a trace builds and drops columns of millions of rows many times over;
    with glibc's defaults each array above 128 KB gets fresh pages from the kernel, and on a VM their
    page faults cost as much as the work (a third of `analyze`'s time on a 2M-event trace, measured
    on this project's 2-core machine). Arrays up to 32 MB (glibc's largest allowed threshold) now come
    from the heap, whose freed top is kept up to 1 GB. Done only in processes of our own: the forked
    decoders, and the CLI's once its trace is parsed (before, the kept memory would sit beside the
    forked child's at the run's peak). False where this is not glibc."""
    import ctypes
    import ctypes.util
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    return all([mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024), mallopt(_M_TRIM_THRESHOLD, 1024 ** 3),
                mallopt(_M_TOP_PAD, 64 * 1024 * 1024)])


def _child_reply(part: FileParts, pipe: int) -> None:
    """In the forked child: leave the columns in a temporary file, send the rest down the pipe, exit."""
    status = 1
    try:
        reply = pickle.dumps(_to_disk(part), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(pipe, "wb") as out:
            out.write(reply)
        status = 0
    finally:
        os._exit(status)  # no atexit handlers, no flushing of the parent's buffered output


def _reap(child: dict):
    """The child's share (None where it failed), once it has exited."""
    with child["source"] as source:
        reply = source.read()
    _, status = os.waitpid(child["pid"], 0)
    if not reply or os.waitstatus_to_exitcode(status) != 0:
        return None
    try:
        return _read_back(*pickle.loads(reply))
    except (OSError, ValueError, pickle.UnpicklingError):
        return None


def parse_parallel(files) -> list:
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
                parts.append(parse_file(file))
        except TraceError as exc:
            error = error or exc
    if error is not None:
        raise error
    return parts


def _run_workers(files) -> list:
    """(True, what `_parse_file_to_disk` returned) or (False, its exception) per file parsed by a
    worker; fewer entries than files where workers could not start."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    workers = min(len(files), os.cpu_count() or 1)
    methods = multiprocessing.get_all_start_methods()
    method = "fork" if fork_is_safe() and "fork" in methods else "spawn"
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
    return _to_disk(parse_file(path))


def _scratch_file(write) -> str:
    """A new temporary file in `_scratch_dir()`, filled by `write(file)` (streamed: no copy in memory)."""
    import tempfile
    handle, name = tempfile.mkstemp(prefix="traceflops-", suffix=".bin", dir=_scratch_dir())
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
    except BaseException:
        _unlink_quietly(name)
        raise
    return name


def _unlink_quietly(name: str) -> None:
    try:
        os.unlink(name)
    except OSError:
        pass


def _to_disk(part: FileParts):
    """(the part without its columns, the temporary file holding them, their layout)."""
    import tempfile
    layout = []
    handle, scratch = tempfile.mkstemp(prefix="traceflops-", suffix=".bin", dir=_scratch_dir())
    try:
        with os.fdopen(handle, "wb") as out:
            for name in ARRAY_DTYPES:
                values = np.ascontiguousarray(getattr(part.columns, name))
                layout.append((name, values.dtype.str, len(values)))
                out.write(memoryview(values).cast("B"))
    except BaseException:
        os.unlink(scratch)
        raise
    part.columns = None
    return part, scratch, layout


def _read_back(part: FileParts, scratch: str, layout: list) -> FileParts:
    """The worker's part with its columns as read-only views of the temporary file, mapped (and
    unlinked: it goes with the last view): joining them with the other parts' columns
    (`joined_pieces`) is then their only copy."""
    import mmap
    try:
        with open(scratch, "rb") as source:
            mapped = mmap.mmap(source.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(
                source.fileno()).st_size else b""
    finally:
        os.unlink(scratch)
    arrays, offset = {}, 0
    for name, dtype, count in layout:
        dtype = np.dtype(dtype)
        arrays[name] = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset)
        offset += count * dtype.itemsize
    part.columns = CodedEvents(**arrays)
    return part
