"""Where a trace's files are: listing a local path or an fsspec URL, reading a URL, and the JSON files beside a trace.

The one place that `api.analyze` (one local trace, or the list it hands on) and
the scale-out path (`scale.py`: worker processes, Dask workers reading URLs
themselves) find and read files. Which file names are trace files is the trace
sources' business (`source.py`: each says the suffixes it reads); this module
only walks paths and URLs for them.

A logdir may hold several runs (one directory each, as TensorBoard writes
them); the newest is taken, which is what TensorBoard opens first.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from ..errors import TraceError, UsageError

URL_PREFIXES = ("s3://", "gs://", "gcs://", "file://", "az://", "abfs://", "memory://", "http://", "https://")


def is_url(path) -> bool:
    return isinstance(path, str) and path.startswith(URL_PREFIXES)


def _patterns(suffixes: tuple) -> str:
    return " or ".join(f"*{suffix}" for suffix in suffixes)


def find_local_files(path, suffixes: tuple) -> list:
    """The trace files for a local `path` (Paths): the file itself, or the newest run's files in a logdir."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    files = sorted(f for suffix in suffixes for f in path.rglob(f"*{suffix}"))
    if not files:
        raise TraceError(f"{path}: no {_patterns(suffixes)} trace found under this directory")
    runs = {}
    for file in files:
        runs.setdefault(file.parent, []).append(file)
    newest = max(runs, key=lambda run: (run.name, max(os.path.getmtime(f) for f in runs[run])))
    return sorted(runs[newest])


def fsspec_module():
    try:
        import fsspec
    except ImportError:
        raise UsageError("reading URLs needs fsspec: pip install -e \".[dask]\"") from None
    return fsspec


def _short(exc) -> str:
    return " ".join(str(exc).split())[:200]


def read_url(url: str, storage_options: Optional[dict] = None) -> bytes:
    """The bytes of one file named by an fsspec URL (read where this runs: a worker)."""
    fsspec = fsspec_module()
    try:
        with fsspec.open(url, "rb", **(storage_options or {})) as handle:
            data = handle.read()
    except Exception as exc:  # fsspec backends raise their own errors (botocore's, aiohttp's...)
        raise TraceError(f"{url}: cannot read the trace ({type(exc).__name__}: {_short(exc)})") from None
    if not data:
        raise TraceError(f"{url}: the file is empty")
    return data


def find_url_files(url: str, suffixes: tuple, storage_options: Optional[dict] = None) -> list:
    """`url` itself when it names a trace file, else every trace file under it (one run: the last by name)."""
    if url.endswith(suffixes):
        return [url]
    fsspec = fsspec_module()
    try:
        fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
        found = sorted(p for p in fs.find(root) if p.endswith(suffixes))
    except Exception as exc:  # fsspec backends raise their own errors
        raise TraceError(f"{url}: cannot list the trace files ({type(exc).__name__}: {_short(exc)})") from None
    if not found:
        raise TraceError(f"{url}: no {_patterns(suffixes)} trace found under this URL")
    newest = max(p.rsplit("/", 1)[0] for p in found)
    protocol = url.split("://", 1)[0]
    return [f"{protocol}://{p}" for p in found if p.rsplit("/", 1)[0] == newest]


def find_files(path, suffixes: tuple, storage_options: Optional[dict] = None) -> list:
    """The trace files (as strings) of a path, a URL, or a list of them (local files checked here, URLs listed)."""
    items = list(path) if isinstance(path, (list, tuple)) else [path]
    files = []
    for item in items:
        if is_url(item):
            files += find_url_files(item, suffixes, storage_options)
        else:
            files += [str(f) for f in find_local_files(item, suffixes)]
    return files


def run_dir_of(files: list) -> str:
    """The directory of the first file: where the JSON files beside the trace are."""
    first = files[0]
    return first.rsplit("/", 1)[0] if is_url(first) else str(Path(first).parent)


def read_side_json(run_dir: str, name: str, storage_options: Optional[dict] = None) -> Optional[dict]:
    """A JSON file beside the trace (`traceflops_graph.json`...), None where absent or unreadable."""
    try:
        if is_url(run_dir):
            with fsspec_module().open(f"{run_dir}/{name}", "rb", **(storage_options or {})) as handle:
                return json.loads(handle.read())
        return json.loads((Path(run_dir) / name).read_text())
    except (OSError, ValueError, ImportError, UsageError):
        return None
