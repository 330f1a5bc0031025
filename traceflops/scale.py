"""Scale-out: analyse a multi-host logdir one file at a time, and combine small priced tables.

Each `.xplane.pb` is parsed and priced on its own (`price_file`): what comes
back is its priced records (a few rows per distinct op, not one per event),
its chosen step rows and its planes, never its events table. So memory is
bounded by the largest file, not the logdir, and the work can run anywhere:

- locally, files are priced in worker processes, `min(files, cores)` at a
  time (forked where safe, so they start in milliseconds);
- with `scheduler=ADDRESS`, as tasks on a Dask distributed cluster
  (`pip install -e ".[dask]"`); paths may be fsspec URLs (`s3://`, `gs://`,
  `file://`) that the workers read themselves (trace/locate.py lists and reads
  them; each file is read by its trace source, trace/source.py).

The client concatenates the records (every record is keyed by its host, so
no group spans two files) and builds the tables and summary as for one trace
(`join.join_records`). Steps are chosen per host: the first recorded step is
skipped when more were recorded than asked for, then the next `steps`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from .errors import TraceError, UsageError
from .schema import cast_counts
from .trace import Trace
from .trace.events import DEVICE_WORK_KINDS
from .trace.locate import is_url, read_url
from .trace.source import source_of

CONNECT_TIMEOUT_S = 30  # how long to wait for the Dask scheduler


@dataclass
class PricedFile:
    """What one file contributes: small tables and the trace without its events."""
    records: pd.DataFrame
    step_rows: pd.DataFrame
    num_steps: int
    trace: Trace
    device_work: bool
    events: int = 0  # events in the file's table (for events/s)
    errors: list = field(default_factory=list)


def price_file(path, graph_record: Optional[dict] = None, steps: Optional[int] = None,
               storage_options: Optional[dict] = None) -> PricedFile:
    """Parse and price one trace file (a path or an fsspec URL); runs in a worker."""
    from .graph import ExecutedGraph
    from .join import price_trace
    url = is_url(path)
    source = source_of(path)
    data = read_url(path, storage_options) if url else None
    try:
        trace = source.read_file(path, data)
    except TraceError as exc:  # name the URL as given, not as a local path (`s3:/bucket/...`)
        raise TraceError(str(exc).replace(str(Path(path)), str(path)) if url else str(exc)) from None
    del data
    if url:  # the property reads HLO modules from paths: read them from the URL, and only if XLA work needs them
        fields = {f: getattr(trace, f) for f in Trace.__dataclass_fields__}
        fields["paths"] = [path]
        trace = _UrlTrace(**fields, modules=lambda: source.hlo_modules(path, read_url(path, storage_options)))
    graph = ExecutedGraph.from_record(graph_record) if graph_record else None
    records, step_rows, num_steps = price_trace(trace, graph, steps)
    events = trace.events
    device_work = bool(events["kind"].isin(DEVICE_WORK_KINDS).any())
    step_rows = step_rows.assign(host=step_rows["host"].astype(str)).reset_index(drop=True)
    count = len(events)
    trace.events = events.iloc[:0]
    return PricedFile(records, step_rows, num_steps, _plain(trace), device_work, count)


@dataclass
class _UrlTrace(Trace):
    modules: object = None

    @property
    def hlo_modules(self) -> list:
        if self._hlo_modules is None:
            self._hlo_modules = self.modules()
            self.note_damaged_modules(self._hlo_modules)
        return self._hlo_modules


def _plain(trace) -> Trace:
    """A plain Trace (picklable: no closures) with the same fields."""
    return Trace(**{f: getattr(trace, f) for f in Trace.__dataclass_fields__ if f != "_hlo_modules"})


def combine_priced(parts: list) -> tuple:
    """(records, step_rows, num_steps, trace without events, device_work) of several priced files."""
    records = cast_counts(pd.concat([p.records for p in parts], ignore_index=True), "records")
    step_rows = pd.concat([p.step_rows for p in parts], ignore_index=True)
    traces = [p.trace for p in parts]
    trace = Trace(events=traces[0].events, planes=[x for t in traces for x in t.planes],
                  paths=[x for t in traces for x in t.paths], hostnames=[x for t in traces for x in t.hostnames],
                  errors=[x for t in traces for x in t.errors], warnings=[x for t in traces for x in t.warnings],
                  profile_options=traces[0].profile_options, damage=[x for t in traces for x in t.damage])
    return records, step_rows, sum(p.num_steps for p in parts), trace, any(p.device_work for p in parts)


def price_local(files: list, graph_record, steps, workers: Optional[int] = None,
                storage_options: Optional[dict] = None) -> list:
    """Price files in worker processes; in this process when
    there is one file or workers cannot start."""
    workers = workers or min(len(files), os.cpu_count() or 1)
    if len(files) < 2 or workers < 2:
        return _in_process(files, graph_record, steps, storage_options)
    import multiprocessing
    import sys
    import threading
    from concurrent.futures import ProcessPoolExecutor
    fork = threading.active_count() == 1 and "tensorflow" not in sys.modules
    context = multiprocessing.get_context("fork" if fork and "fork" in multiprocessing.get_all_start_methods()
                                          else "spawn")
    try:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
    except (OSError, NotImplementedError, ImportError):
        return _in_process(files, graph_record, steps, storage_options)
    with pool:
        futures = [pool.submit(price_file, str(f), graph_record, steps, storage_options) for f in files]
        return _results(files, futures)


def _in_process(files: list, graph_record, steps, storage_options) -> list:
    """Price files one after another here; an unreadable one is skipped as `_readable` says."""
    outcomes = []
    for f in files:
        try:
            outcomes.append(price_file(f, graph_record, steps, storage_options))
        except TraceError as exc:
            outcomes.append(exc)
    return _readable(files, outcomes)


def _results(files: list, futures) -> list:
    """Every future's result; an unreadable file is skipped as `_readable` says."""
    outcomes = []
    for future in futures:
        try:
            outcomes.append(future.result())
        except TraceError as exc:
            outcomes.append(exc)
    return _readable(files, outcomes)


def skipped_file_warning(path, error: Exception) -> str:
    """The warning naming a file left out of a multi-file analysis (the error names the file itself, mostly)."""
    message = str(error)
    return f"skipped, not analysed: {message}" if str(path) in message else f"{path}: skipped, not analysed ({message})"


def _readable(files: list, outcomes: list) -> list:
    """The priced files among `outcomes` (a PricedFile or the TraceError of each of `files`), the first
    of them carrying one warning per file skipped; the first error is raised when no file was readable."""
    priced = [o for o in outcomes if isinstance(o, PricedFile)]
    errors = [(f, o) for f, o in zip(files, outcomes) if not isinstance(o, PricedFile)]
    if not priced:
        raise errors[0][1]
    for path, error in errors:
        priced[0].trace.warnings.append(skipped_file_warning(path, error))
    return priced


def price_dask(files: list, graph_record, steps, scheduler: str, storage_options=None) -> list:
    """Price files as tasks on the Dask cluster at `scheduler`; the workers read the files."""
    try:
        from distributed import Client
    except ImportError:
        raise UsageError("--scheduler needs Dask: pip install -e \".[dask]\"") from None
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise UsageError(f"{scheduler}: cannot reach the Dask scheduler ({type(exc).__name__}: {exc})") from None
    with client:
        futures = [client.submit(price_file, str(f), graph_record, steps, storage_options, pure=False)
                   for f in files]
        return _results(files, futures)
