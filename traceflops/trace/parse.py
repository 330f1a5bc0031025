"""Trace stage: one `.xplane.pb` file to its parts: coded event columns, planes, damage."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .files import _read_bytes, _read_view
from .planes import CodedEvents, _Columns, _plane_events
from .space import _space_contents
from .values import _Strings
from ..errors import TraceError


@dataclass
class FileParts:
    """What one file contributes; plain arrays and lists, so that it crosses process boundaries."""
    path: str
    host: str
    strings: list  # the file's string table: codes in `columns` index it
    columns: Optional[CodedEvents]  # None while they travel apart (parallel.py)
    planes: list
    errors: list
    warnings: list
    damage: list
    profile_options: dict
    capture_ps: Optional[int]


def _parse_file(path, data: Optional[bytes] = None) -> FileParts:
    """Parse one `.xplane.pb` (its bytes, when given) into arrays."""
    path = Path(path)
    if data is None:
        data = _read_bytes(path)
    elif not data:
        raise TraceError(f"{path}: the file is empty")
    space = _read_view(path, data)
    del data
    strings = _Strings()
    contents = _space_contents(path, space, strings)
    # The parsed message holds a copy of every event's bytes: let it go before decoding
    # (no reference to any part of it may survive, or its whole arena stays).
    del space
    columns = _Columns()
    for item in contents.plane_inputs:  # each plane's bytes are let go once its events are decoded
        _plane_events(item, contents.host, strings, columns, contents.damage)
    return FileParts(str(path), contents.host, strings.texts, columns.build(), contents.planes, contents.errors,
                     contents.warnings, contents.damage, contents.profile_options, contents.capture_ps)
