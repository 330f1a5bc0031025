"""Scale-out: analyse a multi-host logdir one file at a time, and combine small priced tables.

Each `.xplane.pb` is parsed and priced on its own (`price_file`): what comes
back is its priced records (a few rows per distinct op, not one per event),
its chosen step rows and its planes, never its events table. So memory is
bounded by the largest file, not the logdir, and the work can run anywhere:

- locally, files are priced in worker processes, `min(files, cores)` at a
  time (forked where safe, so they start in milliseconds);
- with `scheduler=ADDRESS`, as tasks on a Dask distributed cluster
  (`pip install -e ".[dask]"`); paths may be fsspec URLs (`s3://`, `gs://`,
  `file://`) that the workers read themselves.

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
from .trace import Trace

CONNECT_TIMEOUT_S = 30  # how long to wait for the Dask scheduler
_URL_PREFIX = ("s3://", "gs://", "gcs://", "file://", "az://", "abfs://", "memory://", "http://", "https://")


def is_url(path) -> bool:
    return isinstance(path, str) and path.startswith(_URL_PREFIX)


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


def _fsspec():
    try:
        import fsspec
    except ImportError:
        raise UsageError("reading URLs needs fsspec: pip install -e \".[dask]\"") from None
    return fsspec


def _short(exc) -> str:
    return " ".join(str(exc).split())[:200]


def read_url(url: str, storage_options: Optional[dict] = None) -> bytes:
    """The bytes of one file named by an fsspec URL (read where this runs: a worker)."""
    fsspec = _fsspec()
    try:
        with fsspec.open(url, "rb", **(storage_options or {})) as handle:
            data = handle.read()
    except Exception as exc:  # fsspec backends raise their own errors (botocore's, aiohttp's...)
        raise TraceError(f"{url}: cannot read the trace ({type(exc).__name__}: {_short(exc)})") from None
    if not data:
        raise TraceError(f"{url}: the file is empty")
    return data


def find_url_files(url: str, storage_options: Optional[dict] = None) -> list:
    """`url` itself when it names a `.xplane.pb`, else every `.xplane.pb` under it (one run: the last by name)."""
    if url.endswith(".xplane.pb"):
        return [url]
    fsspec = _fsspec()
    try:
        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        found = sorted(p for p in fs.find(root) if p.endswith(".xplane.pb"))
    except Exception as exc:  # fsspec backends raise their own errors
        raise TraceError(f"{url}: cannot list the trace files ({type(exc).__name__}: {_short(exc)})") from None
    if not found:
        raise TraceError(f"{url}: no *.xplane.pb trace found under this URL")
    newest = max(p.rsplit("/", 1)[0] for p in found)
    protocol = url.split("://", 1)[0]
    return [f"{protocol}://{p}" for p in found if p.rsplit("/", 1)[0] == newest]


def price_file(path, graph_record: Optional[dict] = None, steps: Optional[int] = None,
               storage_options: Optional[dict] = None) -> PricedFile:
    """Parse and price one trace file (a path or an fsspec URL); runs in a worker."""
    from .graph import ExecutedGraph
    from .join import price_trace
    from .trace.combine import _combine
    from .trace.hlo import read_hlo_modules
    from .trace.parse import _parse_file
    from .trace.files import _read_view
    url = is_url(path)
    data = read_url(path, storage_options) if url else None
    try:
        part = _parse_file(path, data)
    except TraceError as exc:  # name the URL as given, not as a local path (`s3:/bucket/...`)
        raise TraceError(str(exc).replace(str(Path(path)), str(path)) if url else str(exc)) from None
    del data
    trace = _combine([part])
    del part
    if url:  # the property reads HLO modules from paths: read them from the URL, and only if XLA work needs them
        fields = {f: getattr(trace, f) for f in Trace.__dataclass_fields__}
        fields["paths"] = [path]
        trace = _UrlTrace(**fields, modules=lambda: read_hlo_modules(_read_view(path, read_url(path, storage_options))))
    graph = ExecutedGraph.from_record(graph_record) if graph_record else None
    records, step_rows, num_steps = price_trace(trace, graph, steps)
    events = trace.events
    device_work = bool(events["kind"].isin(("kernel", "memcpy")).any())
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
        return self._hlo_modules


def _plain(trace) -> Trace:
    """A plain Trace (picklable: no closures) with the same fields."""
    return Trace(**{f: getattr(trace, f) for f in Trace.__dataclass_fields__ if f != "_hlo_modules"})


def combine_priced(parts: list) -> tuple:
    """(records, step_rows, num_steps, trace without events, device_work) of several priced files."""
    records = pd.concat([p.records for p in parts], ignore_index=True)
    for column in ("flops", "macs", "bytes", "program_id"):
        records[column] = pd.array(records[column], dtype="Int64")
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
        return [price_file(f, graph_record, steps, storage_options) for f in files]
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
        return [price_file(f, graph_record, steps, storage_options) for f in files]
    with pool:
        futures = [pool.submit(price_file, str(f), graph_record, steps, storage_options) for f in files]
        return _results(futures)


def _results(futures) -> list:
    """Every future's result; the first TraceError is raised once all are done."""
    results, error = [], None
    for future in futures:
        try:
            results.append(future.result())
        except TraceError as exc:
            error = error or exc
    if error is not None:
        raise error
    return results


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
        return _results(futures)


def local_files(path, storage_options: Optional[dict] = None) -> list:
    """The trace files of a path, a URL, or a list of them (local files checked here, URLs listed)."""
    from .trace import find_trace_files
    items = list(path) if isinstance(path, (list, tuple)) else [path]
    files = []
    for item in items:
        if is_url(item):
            files += find_url_files(item, storage_options)
        else:
            files += [str(f) for f in find_trace_files(item)]
    return files


def run_dir_of(files: list) -> str:
    first = files[0]
    return first.rsplit("/", 1)[0] if is_url(first) else str(Path(first).parent)


def read_side_json(run_dir: str, name: str, storage_options: Optional[dict] = None) -> Optional[dict]:
    """A JSON file beside the trace (`traceflops_graph.json`...), None where absent or unreadable."""
    import json
    try:
        if is_url(run_dir):
            with _fsspec().open(f"{run_dir}/{name}", "rb", **(storage_options or {})) as handle:
                return json.loads(handle.read())
        return json.loads((Path(run_dir) / name).read_text())
    except (OSError, ValueError, ImportError, UsageError):
        return None
