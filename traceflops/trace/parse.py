"""Trace stage: one `.xplane.pb` file to its parts: coded event columns, planes, damage."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .files import read_trace_bytes, read_view
from .planes import ARRAY_DTYPES, CODED_STRING_COLUMNS, CodedEvents, ColumnPieces, decode_plane
from .space import space_contents
from .values import StringTable
from ..errors import TraceError


@dataclass
class FileParts:
    """What one file contributes; plain arrays and lists, so that it crosses process boundaries."""
    path: str
    host: str
    strings: list  # the file's string table: codes in `columns` index it
    # None while they travel apart (parallel.py); for one share of a file, its pieces not yet joined (ColumnPieces)
    columns: Optional[CodedEvents]
    planes: list
    errors: list
    warnings: list
    damage: list
    profile_options: dict
    capture_ps: Optional[int]
    # Per decoded plane, the events left out (_Skipped). Their damage lines join `damage` once every
    # share of the file is in (`merge_shares`); a whole file's are there from the start.
    skipped: list = field(default_factory=list)


WHOLE = (0, 1, 1)


def open_space(path, data: Optional[bytes] = None):
    """The parsed message (`XSpaceView`) of one `.xplane.pb` (its bytes, when given)."""
    if data is None:
        data = read_trace_bytes(path)
    elif not data:
        raise TraceError(f"{path}: the file is empty")
    return read_view(path, data)


def parse_file(path, data: Optional[bytes] = None, share: tuple = WHOLE,
                split: Optional[Callable[[], tuple]] = None, space=None) -> FileParts:
    """Parse one `.xplane.pb` (its bytes, or its message from `open_space`, when given) into arrays: the
    events of `share` (a, b, n), those from a/n to b/n of them in file order. `split`, when given, is
    called once the message is parsed and returns the share this process decodes (parallel.py forks
    there, so that two processes share it). A `space` given here must be the caller's last reference."""
    path = Path(path)
    if space is None:
        space = open_space(path, data)
    del data
    if split is not None:
        share = split()
    strings = StringTable()
    contents = space_contents(path, space, strings, share)
    # The parsed message holds a copy of every event's bytes: let it go before decoding
    # (no reference to any part of it may survive, or its whole arena stays).
    del space
    return decode_contents(path, contents, strings, share)


def decode_contents(path, contents, strings: StringTable, share: tuple = WHOLE) -> FileParts:
    """The events of `contents` (what `space_contents` copied out of the message for `share`)
    decoded into arrays, with the string table `strings` it started."""
    columns = ColumnPieces()
    skipped = [decode_plane(item, contents.host, strings, columns) for item in contents.plane_inputs]
    # (each plane's bytes are let go once its events are decoded)
    whole = tuple(share) == WHOLE  # any other share is one of several, finished by `merge_shares`
    part = FileParts(str(path), contents.host, strings.texts, columns.build() if whole else columns,
                     contents.planes, contents.errors, contents.warnings, contents.damage, contents.profile_options,
                     contents.capture_ps, skipped)
    return _with_damage(part) if whole else part


def _with_damage(part: FileParts) -> FileParts:
    """The file's damage lines, once every share of it is in: what the profiler dropped, then what was skipped."""
    part.damage = part.damage + [line for skipped in part.skipped for line in skipped.damage()]
    return part


def merge_shares(parts: list) -> FileParts:
    """One file's parts from the processes that each decoded a share of it (in share order): the later
    shares' string codes moved into the first's table and their columns put after its columns, as pieces
    joined once, where the files are combined (`ColumnPieces.take`); skips summed."""
    first = parts[0]
    codes = {text: code for code, text in enumerate(first.strings)}
    pieces = ColumnPieces()
    for part in parts:
        columns = part.columns
        part.columns = None
        remap = None if part is first else _remap(part.strings, first.strings, codes)  # first: its own table
        if isinstance(columns, ColumnPieces):
            pieces.parts.extend(_remapped(piece, remap) for piece in columns.parts)
        else:
            pieces.add(**_remapped({name: getattr(columns, name) for name in ARRAY_DTYPES}, remap))
        if part is not first:
            for mine, theirs in zip(first.skipped, part.skipped):
                mine.add(theirs)
    first.columns = pieces
    return _with_damage(first)


def _remap(texts: list, table: list, codes: dict) -> Optional[np.ndarray]:
    """Codes in `table` (extended as needed) of the strings `texts` codes, with -1 kept; None: the same."""
    remap = np.empty(len(texts) + 1, dtype=np.int32)
    for k, text in enumerate(texts):
        code = codes.get(text)
        if code is None:
            code = codes[text] = len(table)
            table.append(text)
        remap[k] = code
    remap[-1] = -1  # missing stays missing
    changed = np.flatnonzero(remap[:-1] != np.arange(len(texts)))
    return None if not changed.size else remap


def _remapped(piece: dict, remap: Optional[np.ndarray]) -> dict:
    if remap is None:
        return piece
    return {name: remap[values] if name in CODED_STRING_COLUMNS else values for name, values in piece.items()}
