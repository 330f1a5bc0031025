"""Trace sources: what turns one kind of trace file into the events table the join reads, and their registry.

A source (`TraceSource`) says which files it reads (`suffixes`), turns them into
a `Trace` whose `events` table has the columns of events.py (every source fills
the source-neutral ones; the XSpace-only ones stay missing elsewhere), and
carries the naming rules of the frameworks whose op names its traces hold
(`namings`, naming.py). The XSpace reader (`*.xplane.pb`: TensorFlow and JAX
host planes, GPU device planes) is the first and the default. Another format
(a Kineto trace's JSON, say) plugs in with `register_source(MySource())`: the
listing (`find_files`), the loading (`load_files`, `source_of(path).read_file`)
and the join then take its files as they take XSpace's.

    class KinetoSource:
        name = "kineto"
        suffixes = (".pt.trace.json",)
        namings = (TORCH_NAMING,)
        def load(self, files, parallel=None): ...      # local files -> one Trace
        def read_file(self, path, data=None): ...      # one file (its bytes, when given: a URL's) -> Trace
        def hlo_modules(self, path, data): return []   # no XLA modules in such a trace

Listing walks paths and fsspec URLs in one place (locate.py) for the suffixes
of every registered source; a local file that no source claims by its name is
read by the default source. Worker processes (scale.py) look a file's source up
in their own registry: register a source when a module is imported that the
workers import too (spawned processes and Dask workers do not inherit a
registration made at run time; forked ones do).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Protocol, runtime_checkable

from . import locate
from .files import XSPACE_SUFFIX
from .naming import JAX_NAMING, TF_NAMING
from ..errors import TraceError

if TYPE_CHECKING:
    from .events import Trace


@runtime_checkable
class TraceSource(Protocol):
    """One trace format (module doc)."""
    name: str
    suffixes: tuple  # file name endings of its files, e.g. (".xplane.pb",)
    namings: tuple  # the naming rules (naming.py) of the frameworks whose op names its traces hold

    def load(self, files: list, parallel: Optional[bool] = None) -> "Trace":
        """One `Trace` of these local files (`parallel` as `load_trace`'s: a hint a source may ignore)."""

    def read_file(self, path: str, data: Optional[bytes] = None) -> "Trace":
        """The `Trace` of one file, from `data` when given (a URL's bytes, read by the caller)."""

    def hlo_modules(self, path: str, data: bytes) -> list:
        """The optimized HLO modules a file's bytes hold (trace/hlo.py's `HloModule`s; [] where none)."""


class XSpaceSource:
    """The XSpace reader: `*.xplane.pb` files, parsed by load.py (parse.py, parallel.py, combine.py)."""
    name = "xspace"
    suffixes = (XSPACE_SUFFIX,)
    namings = (TF_NAMING, JAX_NAMING)

    def load(self, files: list, parallel: Optional[bool] = None) -> "Trace":
        from .load import load_trace
        return load_trace(list(files), parallel)

    def read_file(self, path: str, data: Optional[bytes] = None) -> "Trace":
        from .combine import combine_parts
        from .parse import parse_file
        return combine_parts([parse_file(path, data)])

    def hlo_modules(self, path: str, data: bytes) -> list:
        from .files import read_view
        from .hlo import read_hlo_modules
        return read_hlo_modules(read_view(path, data))


XSPACE = XSpaceSource()
_SOURCES = {XSPACE.name: XSPACE}  # the first is the default


def register_source(source: TraceSource) -> TraceSource:
    """Add a source (or replace the one of its name); its files are then listed, loaded and joined."""
    if not isinstance(source, TraceSource):
        raise TypeError(f"{source!r} is not a trace source: it needs name, suffixes, namings, load, read_file "
                        "and hlo_modules")
    _SOURCES[source.name] = source
    return source


def unregister_source(name: str) -> None:
    """Remove a registered source (the default XSpace source stays)."""
    if name != XSPACE.name:
        _SOURCES.pop(name, None)


def registered_sources() -> tuple:
    return tuple(_SOURCES.values())


def trace_suffixes() -> tuple:
    """The file name endings of every registered source's files."""
    return tuple(suffix for source in _SOURCES.values() for suffix in source.suffixes)


def source_of(path) -> TraceSource:
    """The source whose files end like `path` (the longest suffix wins); the default source otherwise."""
    text = str(path)
    claims = [(len(suffix), source) for source in _SOURCES.values() for suffix in source.suffixes
              if text.endswith(suffix)]
    return max(claims, key=lambda claim: claim[0])[1] if claims else XSPACE


def find_files(path, storage_options: Optional[dict] = None) -> list:
    """The trace files (strings) of a path, an fsspec URL, or a list of them: the file itself, or the newest
    run's files of every registered source under a directory (locate.py)."""
    return locate.find_files(path, trace_suffixes(), storage_options)


def load_files(files: list, parallel: Optional[bool] = None) -> "Trace":
    """One `Trace` of local files, all of one source (a mix of formats is a TraceError)."""
    if not files:
        raise TraceError("no trace files given")
    sources = {source_of(file).name: source_of(file) for file in files}
    if len(sources) > 1:
        raise TraceError(f"{', '.join(map(str, files))}: these files are of several trace formats "
                         f"({', '.join(sorted(sources))}); analyse each format apart")
    return next(iter(sources.values())).load(files, parallel)


def namings_of(files: list) -> tuple:
    """The naming rules of the sources of `files` (each once, in registration order)."""
    names = {source_of(file).name for file in files}
    return tuple(dict.fromkeys(n for s in _SOURCES.values() if s.name in names for n in s.namings))
