"""Stage 2: XSpace files to a tidy table of events (see events.py for the columns, load.py for the rest)."""
from .events import EVENT_COLUMNS, PlaneInfo, Trace
from .files import find_trace_files, read_xspace, read_xspace_metadata
from .load import load_trace, parse_spaces
from .hlo import HloModule, read_hlo_modules

__all__ = ["EVENT_COLUMNS", "PlaneInfo", "Trace", "find_trace_files", "load_trace", "parse_spaces", "read_xspace",
           "read_xspace_metadata", "HloModule", "read_hlo_modules"]
