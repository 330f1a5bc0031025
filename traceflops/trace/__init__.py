"""Stage 2: trace files to a tidy table of events (events.py: the columns every source fills).

A trace source (source.py) reads one format: XSpace (`*.xplane.pb`, load.py for
the rest) is the first; another registers with `register_source`. Listing paths
and fsspec URLs is locate.py's; framework naming rules are naming.py's.

`load_trace` and `parse_spaces` (which build pandas tables) are loaded on first use, so that the
parsing modules can run before pandas is imported (the CLI imports it while a trace is parsed).
"""
from .events import EVENT_COLUMNS, PlaneInfo, Trace, text_mask
from .files import find_trace_files, read_xspace, read_xspace_metadata
from .hlo import HloModule, read_hlo_modules
from .source import TraceSource, register_source

__all__ = ["EVENT_COLUMNS", "PlaneInfo", "Trace", "TraceSource", "find_trace_files", "load_trace", "parse_spaces",
           "read_xspace", "read_xspace_metadata", "HloModule", "read_hlo_modules", "register_source", "text_mask"]


def __getattr__(name):
    if name in ("load_trace", "parse_spaces"):
        from . import load
        return getattr(load, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
