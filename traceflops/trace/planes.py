"""Trace stage: the events of one plane to coded columns, a chunk of events at a time.

Each event is decoded (`wire.py`), classified (op, xla, step on host planes;
kernel, memcpy on device planes), timed, and its kept stats merged with its
metadata's; strings become codes into the file's string table. Events with
malformed bytes, negative durations, times out of range, or that run past
the end of their line are counted per plane and left out (`_Plane.damage`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Optional

import numpy as np

from .events import (FRAMEWORK_STEP_FUNCTIONS, ID_STATS, KIND_FRAMEWORK_STEP, KIND_KERNEL, KIND_MEMCPY, KIND_OP,
                     KIND_STEP, KIND_XLA, LAUNCHER_STATS, NUMBER_STATS, WANTED_EVENT_STATS)
from .space import PlaneInput
from .values import (StringTable, as_number, as_text, equals_one, last_wins, parse_launcher, raw_number,
                     stat_numbers, stat_truthy, whole_or_nan)
from .wire import DecodedEvents, Wire, decode_events, decode_stats

_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min
_CHUNK = 1 << 19  # events decoded together: bounds the temporaries of a huge plane
# Stats that feed a column, by index; an event stat's column is its index here.
_COLUMN_NAMES = sorted(WANTED_EVENT_STATS)
_COLUMN_OF = {name: k for k, name in enumerate(_COLUMN_NAMES)}
# Device events that copy memory: memcpy / memset activities by name, the copies the runtime names
# (`CopyDeviceToDevice`), and the kernels HIP implements some copies with (its fill kernels stay kernels:
# an op's own work, zeroing its outputs).
_COPY_EVENT = re.compile(r"Memcpy|Memset|^Copy(Host|Device|Peer)To(Host|Device|Peer)|^__amd_rocclr_copy")
# A stream line that carries only copies: `Stream #7(MemcpyOther)`, `Stream #3(MemcpyH2D,MemcpyD2H)`.
_COPY_LINE = re.compile(r"\((?:Memcpy|Memset)\w*(?:,\s*(?:Memcpy|Memset)\w*)*\)\s*$")


def is_copy_event(name: str) -> bool:
    """Whether a device event of this name is a memory copy or fill, not a kernel that computes."""
    return bool(_COPY_EVENT.search(name))


def is_copy_line(name: str) -> bool:
    """Whether a device line (a stream) carries only memory copies and fills."""
    return bool(_COPY_LINE.search(name))


# ---------------------------------------------------------------- coded columns

@dataclass
class CodedEvents:
    """Per-event columns: strings as codes into a string table (-1: missing), `kind` an index in KINDS.

    Plain arrays, so that they cross process boundaries. `host` is set once files are combined.
    """
    plane: np.ndarray
    line: np.ndarray
    kind: np.ndarray
    name: np.ndarray
    op_name: np.ndarray
    op_type: np.ndarray
    start_ps: np.ndarray
    duration_ps: np.ndarray
    shape: np.ndarray
    step_num: np.ndarray
    correlation_id: np.ndarray
    kernel_details: np.ndarray
    memcpy_details: np.ndarray
    hlo_op: np.ndarray
    hlo_module: np.ndarray
    program_id: np.ndarray
    host: Optional[np.ndarray] = None

    def take(self, name: str) -> np.ndarray:
        """Column `name`, no longer held here (so that its memory goes with the caller's last reference)."""
        values = getattr(self, name)
        setattr(self, name, None)
        return values

    def __len__(self) -> int:
        return len(self.start_ps)

    def select(self, rows: np.ndarray) -> None:
        """Keep only `rows` (a mask or indices) of every column."""
        for column in fields(self):
            values = getattr(self, column.name)
            if values is not None:
                setattr(self, column.name, values[rows])


# Columns of string codes (into the file's string table; -1: missing).
CODED_STRING_COLUMNS = ("plane", "line", "name", "op_name", "op_type", "shape", "kernel_details",
                         "memcpy_details", "hlo_op", "hlo_module")
# The dtype of each column of a file's CodedEvents (all but `host`), in table order.
ARRAY_DTYPES = {"plane": np.int32, "line": np.int32, "kind": np.int8, "name": np.int32, "op_name": np.int32,
                 "op_type": np.int32, "start_ps": np.int64, "duration_ps": np.int64, "shape": np.int32,
                 "step_num": np.float64, "correlation_id": np.float64, "kernel_details": np.int32,
                 "memcpy_details": np.int32, "hlo_op": np.int32, "hlo_module": np.int32,
                 "program_id": np.float64}


def joined_pieces(pieces: list, dtype) -> np.ndarray:
    """The pieces one after another, as a new writable array (a single piece read back from a worker
    is a read-only view of its file: copied)."""
    if len(pieces) == 1 and pieces[0].flags.writeable:
        return pieces[0].astype(dtype, copy=False)
    return np.concatenate(pieces).astype(dtype, copy=False) if pieces else np.zeros(0, dtype=dtype)


class ColumnPieces:
    """Per-event arrays of the kept events of one file, filled chunk by chunk."""

    def __init__(self, parts: Optional[list] = None):
        self.parts = parts if parts is not None else []  # dicts of column name -> array, in event order

    def add(self, **arrays):
        self.parts.append(arrays)

    def build(self) -> CodedEvents:
        """One array per column; each column's pieces are let go as soon as it is joined."""
        out = {name: self.take(name) for name in ARRAY_DTYPES}
        self.parts = []
        return CodedEvents(**out)

    def take(self, name: str) -> np.ndarray:
        """Column `name` joined from its pieces, which are let go (as `CodedEvents.take`): a file decoded in
        shares is joined once, column by column, where the files are combined."""
        return joined_pieces([p.pop(name) for p in self.parts], ARRAY_DTYPES[name])

    def __len__(self) -> int:
        return sum(len(p["start_ps"]) for p in self.parts if "start_ps" in p)


# ---------------------------------------------------------------- lookups of one plane

class _IdIndex:
    """Position of integer ids in a sorted key array (-1: absent), by direct table when keys are small."""

    def __init__(self, keys: np.ndarray):
        self.keys = keys
        self.table = None
        if len(keys) and keys[0] >= 0 and keys[-1] < max(1 << 16, 8 * len(keys)):
            self.table = np.full(int(keys[-1]) + 2, -1, dtype=np.int64)
            self.table[keys] = np.arange(len(keys))

    def __call__(self, ids: np.ndarray) -> np.ndarray:
        if not len(self.keys):
            return np.full(len(ids), -1, dtype=np.int64)
        if self.table is not None:
            last = len(self.table) - 1  # always -1
            return self.table[np.where((ids >= 0) & (ids < last), ids, last)]
        at = np.searchsorted(self.keys, ids)
        np.minimum(at, len(self.keys) - 1, out=at)
        return np.where(self.keys[at] == ids, at, -1)


@dataclass
class _Skipped:
    """Events of one plane left out, by reason (summed over the processes that decoded the plane)."""
    where: str
    malformed: int = 0
    negative: int = 0
    range: int = 0
    line_end: int = 0

    def add(self, other: "_Skipped") -> None:
        for reason in ("malformed", "negative", "range", "line_end"):
            setattr(self, reason, getattr(self, reason) + getattr(other, reason))

    def damage(self) -> list:
        w = self.where
        out = []
        if self.malformed:
            out.append(f"{w}: {self.malformed} events with malformed bytes were skipped")
        if self.negative:
            out.append(f"{w}: {self.negative} events with a negative duration were skipped")
        if self.range:
            out.append(f"{w}: {self.range} events with times out of range were skipped")
        if self.line_end:
            out.append(f"{w}: {self.line_end} events run past the end of their line (cut by the end of the "
                       "capture) and were left out")
        return out


class _Plane:
    """Lookups of one plane, built once and used for every chunk of its events.

    Per-metadata arrays have one more entry, for a dangling metadata id (index -1).
    """

    def __init__(self, item: PlaneInput, host: str, strings: StringTable):
        self.strings = strings
        self.where = f"{host}: {item.name}"
        self.is_host = item.is_host
        self.plane_code = strings(item.name)
        self.line_codes = item.line_codes
        self.line_is_copy = np.array([is_copy_line(strings.texts[c]) for c in item.line_codes.tolist()], dtype=bool)
        self.meta = _IdIndex(item.meta_keys)
        self._index_metadata(item.meta_name, item.meta_op)
        self.defaults = self._metadata_stats(item.meta_stats)
        self._index_stats(item.stat_names)
        self.text_cache = {}
        self._line_times(item.bases, item.line_durations)
        self.skipped = _Skipped(self.where)

    def _index_metadata(self, meta_names: list, meta_op: list) -> None:
        strings = self.strings
        self.meta_is_op = np.array([op is not None for op in meta_op] + [False], dtype=bool)
        self.meta_is_framework_step = np.array([m in FRAMEWORK_STEP_FUNCTIONS for m in meta_names] + [False],
                                               dtype=bool)
        self.meta_is_copy = np.array([is_copy_event(m) for m in meta_names] + [False], dtype=bool)
        self.meta_name = np.array([strings(m) for m in meta_names] + [0], dtype=np.int32)
        self.meta_op_name = np.array([strings(op[0]) if op else 0 for op in meta_op] + [0], dtype=np.int32)
        self.meta_op_type = np.array([strings(op[1]) if op else 0 for op in meta_op] + [0], dtype=np.int32)

    def _metadata_stats(self, meta_stats: list) -> dict:
        """Per column: each event metadata's own value of that stat (NaN or -1: none)."""
        defaults = {}
        for name in _COLUMN_NAMES:
            values = [m.get(name) for m in meta_stats] + [None]
            if name in NUMBER_STATS:
                defaults[name] = np.array([np.nan if v is None else as_number(v) for v in values])
                if name in ID_STATS:
                    defaults[name] = whole_or_nan(defaults[name])
            else:
                defaults[name] = np.array([-1 if v is None else self.strings(as_text(v)) for v in values],
                                          dtype=np.int32)
        return defaults

    def _index_stats(self, stat_names: dict) -> None:
        """Stat metadata ids to the column they feed (-1: none), and to their names (for ref values)."""
        wanted = sorted(k for k, v in stat_names.items() if v in WANTED_EVENT_STATS)
        self.stat_ids = _IdIndex(np.array(wanted, dtype=np.int64))
        self.stat_cols = np.array([_COLUMN_OF[stat_names[k]] for k in wanted] + [-1], dtype=np.int16)
        keys = np.array(sorted(stat_names), dtype=np.int64)
        self.refs = _IdIndex(keys)
        self.ref_codes = np.array([self.strings(stat_names[k]) for k in keys.tolist()] + [0], dtype=np.int32)

    def _line_times(self, bases: list, durations: list) -> None:
        """Per line: its start in ps (where that fits int64) and the time its events must end by."""
        self.base_ps = np.zeros(len(bases), dtype=np.int64)
        self.base_ok = np.ones(len(bases), dtype=bool)
        limits = []
        for k, (base, length) in enumerate(zip(bases, durations)):
            value = base * 1000
            if _INT64_MIN < value < _INT64_MAX:
                self.base_ps[k] = value
            else:
                self.base_ok[k] = False
            limits.append(min(value + length, _INT64_MAX) if length > 0 and self.base_ok[k] else _INT64_MAX)
        self.line_limit = np.array(limits, dtype=np.int64)
        self.has_limits = bool((self.line_limit != _INT64_MAX).any())

    # -- stat values

    def ref_text(self, raw: np.ndarray) -> np.ndarray:
        """String codes of ref values (names of stat metadata; a dangling reference reads as "")."""
        return self.ref_codes[self.refs(raw.view(np.int64))]

    def texts(self, wire: Wire, kind, raw, start, end) -> np.ndarray:
        """String codes of stat values (-1: no value)."""
        out = np.full(len(kind), -1, dtype=np.int32)
        refs = kind == 7
        if refs.any():
            out[refs] = self.ref_text(raw[refs])
        others = np.flatnonzero(~refs & (kind != 0))
        if others.size:
            cache, data, strings = self.text_cache, wire.padded, self.strings
            for j, k, a, b, r in zip(others.tolist(), kind[others].tolist(), start[others].tolist(),
                                     end[others].tolist(), raw[others].tolist()):
                if k in (5, 6):
                    key = data[a:b]
                    code = cache.get(key)
                    if code is None:
                        code = cache[key] = strings(key.decode("utf-8", "replace"))
                else:
                    code = strings(as_text(raw_number(k, r)))
                out[j] = code
        return out


# ---------------------------------------------------------------- events of one plane

def decode_plane(item: PlaneInput, host: str, strings: StringTable, columns: ColumnPieces) -> _Skipped:
    """Decode, classify and tabulate the events of one plane, a chunk of events at a time; what was left out."""
    plane = _Plane(item, host, strings)
    wire = Wire(item.data)
    item.data = None  # the wire holds the bytes now
    sizes, item.sizes = item.sizes, None
    ends = np.cumsum(sizes)
    starts = ends - sizes
    del sizes
    line_of = item.line_of
    for a in range(0, len(starts), _CHUNK):
        b = a + _CHUNK
        _chunk_events(plane, wire, starts[a:b], ends[a:b], line_of[a:b], columns)
    return plane.skipped


@dataclass
class _ChunkStats:
    """The stats of a chunk's events, in decode order (a later stat of the same name wins)."""
    event: np.ndarray  # the index of the event each stat belongs to
    column: np.ndarray  # the index in _COLUMN_NAMES of the column it feeds; -1: none, or malformed
    kind: np.ndarray  # its value, as in DecodedStats
    raw: np.ndarray
    start: np.ndarray
    end: np.ndarray
    round: np.ndarray  # the decode round its event's stat came in

    def of_column(self, name: str, among: Optional[np.ndarray] = None) -> np.ndarray:
        """Indices of the stats that feed column `name` (of those in `among`, when given)."""
        if among is None:
            return np.flatnonzero(self.column == _COLUMN_OF[name])
        return among[self.column[among] == _COLUMN_OF[name]]


def _chunk_events(plane: _Plane, wire: Wire, starts, ends, line_of, columns: ColumnPieces):
    """Decode, classify and tabulate one chunk of a plane's events into `columns`."""
    events = decode_events(wire, starts, ends)
    stats = _chunk_stats(plane, wire, events)
    meta_index = plane.meta(events.meta_id)
    if plane.is_host:
        kind = _host_kinds(plane, meta_index, stats)
    else:
        copy = plane.meta_is_copy[meta_index] | plane.line_is_copy[line_of]
        kind = np.where(copy, KIND_MEMCPY, KIND_KERNEL).astype(np.int8)
    plane.skipped.malformed += int(events.bad.sum())
    keep = (kind >= 0) & ~events.bad
    start, keep = _start_times(plane, events, line_of, keep)
    kept = np.flatnonzero(keep)
    if not kept.size:
        return
    m = meta_index[kept]
    merged = _stat_columns(plane, wire, stats, keep, kept, m)
    kinds = kind[kept]
    name = plane.meta_name[m]
    if plane.is_host:
        op_name, op_type, shape = _host_op_names(plane, kinds, name, m, merged)
    else:
        op_name, op_type, shape = _launcher_op_names(plane, merged)
    columns.add(plane=np.full(kept.size, plane.plane_code, dtype=np.int32), line=plane.line_codes[line_of[kept]],
                kind=kinds, name=name, op_name=op_name, op_type=op_type, start_ps=start[kept],
                duration_ps=events.duration_ps[kept], shape=shape, step_num=merged["step_num"],
                correlation_id=merged["correlation_id"], kernel_details=merged["kernel_details"],
                memcpy_details=merged["memcpy_details"], hlo_op=merged["hlo_op"], hlo_module=merged["hlo_module"],
                program_id=merged["program_id"])


def _chunk_stats(plane: _Plane, wire: Wire, events: DecodedEvents) -> _ChunkStats:
    """Decode the stats of a chunk's events; an event with a malformed stat is marked bad."""
    decoded = decode_stats(wire, events.stat_start, events.stat_end)
    if decoded.bad.any():
        events.bad[events.stat_event[decoded.bad]] = True
    column = plane.stat_cols[plane.stat_ids(decoded.meta_id)]
    column[decoded.bad] = -1
    return _ChunkStats(events.stat_event, column, decoded.kind, decoded.raw, decoded.start, decoded.end,
                       events.stat_round)


def _host_kinds(plane: _Plane, meta_index: np.ndarray, stats: _ChunkStats) -> np.ndarray:
    """Kind of each event of a host plane; -1 for those we do not keep (executor bookkeeping...).

    Ops: metadata named `node:Type`. Steps: a step_num stat and `_r` == 1. XLA: a
    non-empty hlo_op. Steps and XLA are judged by the event's own stats.
    """
    n = len(meta_index)
    kind = np.full(n, -1, dtype=np.int8)
    is_op = plane.meta_is_op[meta_index]
    kind[is_op] = KIND_OP
    kind[plane.meta_is_framework_step[meta_index]] = KIND_FRAMEWORK_STEP
    rest = np.zeros(n, dtype=bool)
    rest[stats.event] = True  # events with stats
    rest &= ~is_op
    if not rest.any():
        return kind
    has_step_num = np.zeros(n, dtype=bool)
    has_step_num[stats.event[stats.of_column("step_num")]] = True
    root = np.zeros(n, dtype=bool)
    sel = stats.of_column("_r")
    if sel.size:
        test = equals_one(stats.kind[sel], stats.raw[sel])
        root[stats.event[sel]] = last_wins(stats.event[sel], test, stats.round[sel])
    hlo = np.zeros(n, dtype=bool)
    sel = stats.of_column("hlo_op")
    if sel.size:
        test = stat_truthy(plane.ref_text, stats.kind[sel], stats.raw[sel], stats.start[sel], stats.end[sel])
        hlo[stats.event[sel]] = last_wins(stats.event[sel], test, stats.round[sel])
    kind[rest & has_step_num & root] = KIND_STEP
    kind[rest & (kind < 0) & hlo] = KIND_XLA
    return kind


def _start_times(plane: _Plane, events: DecodedEvents, line_of: np.ndarray, keep: np.ndarray):
    """(start of every event in ps, `keep` less the events whose times are out of range or cut).

    A start is its line's timestamp (ns) plus its offset (ps), guarded against int64 overflow.
    """
    offset, duration = events.offset_ps, events.duration_ps
    event_base = plane.base_ps[line_of]
    in_range = plane.base_ok[line_of] & np.where(event_base >= 0, offset <= _INT64_MAX - event_base,
                                                 offset >= _INT64_MIN - event_base)
    start = event_base
    start += np.where(in_range, offset, 0)
    negative = duration < 0
    in_range &= ~negative
    in_range &= duration <= _INT64_MAX - np.maximum(start, 0)
    out = keep & ~in_range
    if out.any():
        count_negative = int((keep & negative).sum())
        plane.skipped.negative += count_negative
        plane.skipped.range += int(out.sum()) - count_negative
        keep = keep & in_range
    if plane.has_limits:
        # A line that says how long it lasted: events running past its end were cut.
        cut = keep & (start + np.where(keep, duration, 0) > plane.line_limit[line_of])
        plane.skipped.line_end += int(cut.sum())
        keep = keep & ~cut
    return start, keep


def _stat_columns(plane: _Plane, wire: Wire, stats: _ChunkStats, keep: np.ndarray, kept: np.ndarray,
                  meta_index: np.ndarray) -> dict:
    """Per stat column, its value for every kept event: the event's own stat, else its metadata's.

    `meta_index` is the metadata of each kept event; a stat without a value reads as
    missing, as protobuf's None would.
    """
    row_of_event = np.full(len(keep), -1, dtype=np.int64)
    row_of_event[kept] = np.arange(kept.size)
    useful = np.flatnonzero((stats.column >= 0) & keep[stats.event])
    merged = {}
    for name in _COLUMN_NAMES:
        if name == "_r":
            continue
        col = plane.defaults[name][meta_index]
        sel = stats.of_column(name, among=useful)
        if sel.size:
            if name in NUMBER_STATS:
                got = stat_numbers(stats.kind[sel], stats.raw[sel])
                if name in ID_STATS:
                    got = whole_or_nan(got)
            else:
                got = plane.texts(wire, stats.kind[sel], stats.raw[sel], stats.start[sel], stats.end[sel])
            rows = row_of_event[stats.event[sel]]
            col[rows] = last_wins(rows, got, stats.round[sel])
        merged[name] = col
    return merged


def _host_op_names(plane: _Plane, kinds: np.ndarray, name: np.ndarray, meta_index: np.ndarray, merged: dict):
    """(op_name, op_type, shape) codes of kept host events: an op's node and type; a step's
    name; an XLA instruction's hlo_op. Steps and XLA events have no shape."""
    op_name = np.zeros(len(kinds), dtype=np.int32)
    op_type = np.zeros(len(kinds), dtype=np.int32)
    is_op = kinds == KIND_OP
    op_name[is_op] = plane.meta_op_name[meta_index[is_op]]
    op_type[is_op] = plane.meta_op_type[meta_index[is_op]]
    is_step = kinds == KIND_STEP
    op_name[is_step] = name[is_step]
    is_xla = kinds == KIND_XLA
    op_name[is_xla] = merged["hlo_op"][is_xla]
    shape = np.where(is_step | is_xla, -1, merged["shape"])
    return op_name, op_type, shape


def _launcher_op_names(plane: _Plane, merged: dict):
    """(op_name, op_type, shape) codes of kept device events, from the op that launched each
    (the first launcher stat that is set); the shape stat, or where it is missing or "", the annotation's."""
    size = len(merged["shape"])
    op_name = np.zeros(size, dtype=np.int32)
    op_type = np.zeros(size, dtype=np.int32)
    launcher = np.full(size, -1, dtype=np.int32)
    for key in LAUNCHER_STATS:
        code = merged[key]
        take = (launcher < 0) & (code > 0)  # code 0 is "": not a launcher
        launcher[take] = code[take]
    from_launcher = np.full(size, -1, dtype=np.int32)
    has = launcher >= 0
    if has.any():
        # Each distinct launcher text is parsed once.
        uniq = np.unique(launcher[has])
        strings = plane.strings
        parsed = [parse_launcher(strings.texts[c]) for c in uniq.tolist()]
        at = np.searchsorted(uniq, launcher[has])
        op_name[has] = np.array([strings(p[0]) for p in parsed], dtype=np.int32)[at]
        op_type[has] = np.array([strings(p[1]) for p in parsed], dtype=np.int32)[at]
        from_launcher[has] = np.array([strings(p[2]) if p[2] is not None else -1 for p in parsed],
                                      dtype=np.int32)[at]
    shape = merged["shape"]
    return op_name, op_type, np.where(shape <= 0, from_launcher, shape)
