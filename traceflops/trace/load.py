"""Trace stage: an XSpace trace to a tidy table of events.

`load_trace(path)` reads one `.xplane.pb` (or every one in a logdir or run
directory) and returns a `Trace` (`events.py` describes its columns). Each
file is parsed on its own (`parse.py`: `space.py` copies the planes out of the
protobuf message, `planes.py` decodes their events with `wire.py`), several
large ones in parallel processes (`parallel.py`); `combine.py` joins them.

Damaged but usable traces are analysed as far as they go; what was left out
is said in `Trace.damage` (also appended to `Trace.warnings`): events the
profiler reported dropped (`dropped_traces` and other `dropped` counters),
events whose bytes are malformed, events with negative durations or times
out of range, events that run past the end of the capture (the Task
Environment plane's profile start/stop times), and the last step of a host
when the capture ended inside it (its marker was cut or its ops run past it).
A file that protobuf cannot read (a truncated one: XPlane writes its metadata
after its lines, so the events before the cut could not be named anyway) is a
TraceError naming the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from .combine import combine_parts
from .events import Trace
from .files import file_size, find_trace_files
from .parallel import (PARALLEL_MIN_BYTES, SPLIT_MIN_BYTES, collect_prefetched, fork_is_safe, parse_parallel,
                       parse_split)
from .parse import parse_file
from ..errors import TraceError


def parse_spaces(spaces) -> Trace:
    """Build the events table from (path, XSpace) pairs; an XSpace may also be given as its bytes."""
    parts = []
    for path, space in spaces:
        data = space if isinstance(space, (bytes, bytearray, memoryview)) else space.SerializeToString()
        parts.append(parse_file(path, bytes(data)))
    return combine_parts(parts)


def load_trace(path, parallel: Optional[bool] = None) -> Trace:
    """The trace of a logdir, run directory or `.xplane.pb` (or a list of `.xplane.pb` files).

    Two or more files holding `PARALLEL_MIN_BYTES` or more in all are parsed in
    parallel processes, and one file of `SPLIT_MIN_BYTES` or more is decoded by two
    (`parallel=True/False` forces the choice).
    """
    if isinstance(path, (list, tuple)):
        files = [Path(p) for p in path]
        for file in files:
            if not file.is_file():
                raise TraceError(f"{file}: no such file")
    else:
        files = find_trace_files(path)
    prefetched = collect_prefetched(files[0]) if len(files) == 1 and parallel is not False else None
    if prefetched is not None:
        return combine_parts([prefetched])
    cores = os.cpu_count() or 1
    if parallel is None and len(files) == 1:
        parallel = file_size(files[0]) >= SPLIT_MIN_BYTES and cores > 1
    elif parallel is None:
        parallel = sum(file_size(f) for f in files) >= PARALLEL_MIN_BYTES and cores > 1
    if parallel and len(files) >= 2:
        parts = parse_parallel(files)
    elif parallel and len(files) == 1 and fork_is_safe():
        parts = [parse_split(files[0])]
    else:
        parts = [parse_file(file) for file in files]
    return combine_parts(parts)

