"""Stage 2: XSpace files to a tidy table of events (see reader.py for the columns)."""
from .reader import (EVENT_COLUMNS, PlaneInfo, Trace, find_trace_files, load_trace, parse_spaces,  # noqa: F401
                     read_xspace, read_xspace_metadata)
from .hlo import HloModule, read_hlo_modules  # noqa: F401
