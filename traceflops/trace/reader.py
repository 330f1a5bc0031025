"""Stage 2: an XSpace trace to a tidy table of events.

`load_trace(path)` reads one `.xplane.pb` (or every one in a logdir or run
directory) and returns a `Trace` whose `events` DataFrame has one row per
event we can use:

| column | meaning |
| --- | --- |
| host | host name of the file the event came from |
| plane | plane name, e.g. `/host:CPU`, `/device:GPU:0` |
| line | line (thread or GPU stream) name |
| kind | `op` (a TensorFlow op on a host executor thread), `xla` (an XLA instruction run on the host, e.g. inside a `jit_compile` function), `kernel` (a device kernel), `memcpy`, `step` (a step marker) |
| name | the event's full name (`<node>:<Type>` for ops, the kernel's symbol for kernels) |
| op_name, op_type | the TensorFlow node and its kernel type (for kernels: of the op that launched them) |
| start_ps, duration_ps | start and duration in picoseconds, on the trace's clock (TensorFlow counts from the profile's start; a trace with timestamps since the epoch is moved there so that they fit int64) |
| self_ps | duration minus the op and xla events nested inside it on the same thread (a call op that runs a nested function keeps only its own overhead) |
| step | index of the profiled step the event falls in (-1: outside every step) |
| shape | the recorded input shapes, e.g. `(float[4,32];float[32,8])`, or missing |
| step_num | the step number of a `step` row |
| correlation_id, kernel_details, memcpy_details, hlo_op, hlo_module, program_id | device-event stats, where present |

Repeated strings (host, plane, line, kind, name, op_name, op_type, shape) are
pandas categoricals whose categories always include "" (so `fillna("")`
works); a missing shape is NaN. kernel_details, memcpy_details, hlo_op and
hlo_module are objects (str, None where absent; a column no event has is an
empty categorical, all NaN, to save memory). step_num, correlation_id and
program_id are float64, NaN where absent; correlation_id and program_id are
ids, so a value that is not a whole number reads as NaN.

Events that are none of these (executor bookkeeping, thread-pool markers)
are dropped. Derived lines that XProf adds to device planes ("TensorFlow
Ops", "XLA Ops", "Steps"...) repeat the stream events and are skipped.

Damaged but usable traces are analysed as far as they go; what was left out
is said in `Trace.damage` (also appended to `Trace.warnings`): events the
profiler reported dropped (`dropped_traces` and other `dropped` counters),
events whose bytes are malformed, events with negative durations or times
out of range, events that run past the end of the capture (the Task
Environment plane's profile start/stop times), and the last step of a host
when the capture ended inside it (its marker was cut or its ops run past it).
A file that protobuf cannot read (a truncated one: XPlane writes its metadata
after its lines, so the events before the cut could not be named anyway) is a
TraceError naming the file.

How it is fast: protobuf (upb) parses the file with the events of each line
declared as opaque `bytes`, so the millions of XEvent messages are never
turned into Python objects; their bytes are joined into one buffer and
decoded with numpy, field by field for all events at once (a varint is read
as one unaligned 64-bit word and its 7-bit groups are compacted with masks).
Stats are decoded the same way and only those we keep are turned into
strings, once per distinct value. Several large files are parsed in parallel
processes.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from . import xplane_schema
from ..errors import TraceError

EVENT_COLUMNS = ["host", "plane", "line", "kind", "name", "op_name", "op_type", "start_ps",
                 "duration_ps", "self_ps", "step", "shape", "step_num", "correlation_id", "kernel_details",
                 "memcpy_details", "hlo_op", "hlo_module", "program_id"]

_STAT_COLUMNS = {"shape", "step_num", "correlation_id", "kernel_details", "memcpy_details",
                 "hlo_op", "hlo_module", "program_id"}
_STRING_STATS = ("shape", "kernel_details", "memcpy_details", "hlo_op", "hlo_module")
_NUMBER_STATS = ("step_num", "correlation_id", "program_id")
# Categorical columns; the device-event string stats stay plain objects (None where absent), so that
# `.map` on them returns plain values (a categorical maps one-to-one into another categorical).
_CATEGORICAL_COLUMNS = ("host", "plane", "line", "kind", "name", "op_name", "op_type", "shape")
_OBJECT_COLUMNS = ("kernel_details", "memcpy_details", "hlo_op", "hlo_module")
# Stats that name the TensorFlow op behind a device kernel, best first.
_LAUNCHER_STATS = ("tf_op", "level 0", "annotation")
_DERIVED_DEVICE_LINES = {"TensorFlow Ops", "TensorFlow Name Scope", "XLA Ops", "XLA Modules",
                         "Steps", "XLA TraceMe", "Launch Stats", "Source code", "SparseCore Ops"}
_OP_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KINDS = ("op", "xla", "kernel", "memcpy", "step")
_OP, _XLA, _KERNEL, _MEMCPY, _STEP = range(5)
_WANTED_EVENT_STATS = _STAT_COLUMNS | set(_LAUNCHER_STATS) | {"_r"}

# Several files are parsed in parallel processes when there are at least two and
# together they hold at least this many bytes (below it, starting processes costs more).
PARALLEL_MIN_BYTES = 64 * 1024 * 1024
_INT64_MAX = np.iinfo(np.int64).max
_INT64_MIN = np.iinfo(np.int64).min


@dataclass
class PlaneInfo:
    host: str
    name: str
    stats: dict
    num_events: int


@dataclass
class Trace:
    """A parsed trace: the events table plus what the planes and the space say.

    `errors` and `warnings` are the XSpace's own lists (prefixed with the host);
    `damage` says what of a damaged trace was left out, and is also appended to
    `warnings`, so that every consumer of warnings shows it.
    """
    events: pd.DataFrame
    planes: list
    paths: list
    hostnames: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    profile_options: dict = field(default_factory=dict)
    damage: list = field(default_factory=list)
    _hlo_modules: Optional[list] = field(default=None, repr=False)

    def device_planes(self) -> list:
        return [p for p in self.planes if p.name.startswith("/device:")]

    @property
    def hlo_modules(self) -> list:
        """The optimized HLO modules in the files' `/host:metadata` planes (read once, on first use)."""
        if self._hlo_modules is None:
            from .hlo import read_hlo_modules
            self._hlo_modules = read_hlo_modules(list(self.paths))
        return self._hlo_modules


def find_trace_files(path) -> list:
    """Every `*.xplane.pb` for `path`: the file itself, or the newest run in a logdir."""
    path = Path(path)
    if not path.exists():
        raise TraceError(f"{path}: no such file or directory")
    if path.is_file():
        return [path]
    files = sorted(path.rglob("*.xplane.pb"))
    if not files:
        raise TraceError(f"{path}: no *.xplane.pb trace found under this directory")
    # A logdir may hold several runs (one directory each); take the newest run,
    # which is what TensorBoard opens first.
    runs = {}
    for file in files:
        runs.setdefault(file.parent, []).append(file)
    newest = max(runs, key=lambda run: (run.name, max(os.path.getmtime(f) for f in runs[run])))
    return sorted(runs[newest])


def _read_bytes(path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TraceError(f"{path}: cannot read the trace ({exc.strerror or exc})") from None
    if not data:
        raise TraceError(f"{path}: the file is empty")
    return data


def read_xspace(path):
    """The whole XSpace message of one file (every event a Python object: for small traces and tools)."""
    data = _read_bytes(path)
    space = xplane_schema.XSpace()
    try:
        space.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError or others on damaged bytes
        raise TraceError(f"{path}: not a readable XSpace trace ({type(exc).__name__}: {exc})") from None
    if not space.planes:
        raise TraceError(f"{path}: not an XSpace trace (it has no planes)")
    return space


# ---------------------------------------------------------------- a view of the schema with opaque events

def _view_classes():
    """XSpace classes in which XLine.events is `repeated bytes`: the parser keeps each event's bytes."""
    proto = descriptor_pb2.FileDescriptorProto()
    xplane_schema.XSpace.DESCRIPTOR.file.CopyToProto(proto)
    old, new = f".{proto.package}.", ".traceflops.xplane_view."
    proto.name, proto.package = "traceflops/xplane_view.proto", "traceflops.xplane_view"
    for message in proto.message_type:
        for fld in list(message.field) + [f for nested in message.nested_type for f in nested.field]:
            if fld.type_name.startswith(old):
                fld.type_name = new + fld.type_name[len(old):]
        if message.name == "XLine":
            for fld in message.field:
                if fld.name == "events":
                    fld.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                    fld.ClearField("type_name")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("traceflops.xplane_view.XSpace"))


_XSpaceView = _view_classes()


def read_xspace_metadata(path):
    """One file's XSpace with every line's events left as opaque bytes: planes, their stats
    and their event/stat metadata (where the HLO modules live) without an object per event."""
    space = _XSpaceView()
    try:
        space.ParseFromString(_read_bytes(path))
    except Exception as exc:  # protobuf raises DecodeError or others on damaged bytes
        raise TraceError(f"{path}: not a readable XSpace trace ({type(exc).__name__}: {exc})") from None
    return space


# ---------------------------------------------------------------- wire format, vectorised

class _Bad(Exception):
    """Malformed protobuf bytes inside one message."""


_HI = np.uint64(0x8080808080808080)
_LO7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_M1, _K1 = np.uint64(0x7F007F007F007F00), np.uint64(0x007F007F007F007F)
_M2, _K2 = np.uint64(0x3FFF00003FFF0000), np.uint64(0x00003FFF00003FFF)
_M3, _K3 = np.uint64(0x0FFFFFFF00000000), np.uint64(0x000000000FFFFFFF)
_ONE = np.uint64(1)


class _Wire:
    """A byte buffer read at many positions at once (`data` must end with 16 zero bytes)."""

    def __init__(self, padded: bytes):
        self.size = len(padded) - 16
        self.padded = padded
        self.u8 = np.frombuffer(padded, dtype=np.uint8)
        # Every position as the start of a little-endian 64-bit word (stride 1: no copy).
        self.w64 = np.ndarray((self.size + 8,), dtype="<u8", buffer=padded, offset=0, strides=(1,))

    def varint(self, pos: np.ndarray):
        """(value as uint64, position after it, ok or None) of the varints at `pos`."""
        first = self.u8[pos]
        big = np.flatnonzero(first >= 0x80)
        if not big.size:  # every value below 128: one byte each
            return first.astype(np.uint64), pos + 1, None
        if big.size * 2 > len(pos):
            return self._words(pos)
        value = first.astype(np.uint64)
        after = pos + 1
        more, more_after, ok_more = self._words(pos[big])
        value[big] = more
        after[big] = more_after
        ok = None
        if ok_more is not None:
            ok = np.ones(len(pos), dtype=bool)
            ok[big] = ok_more
        return value, after, ok

    def _words(self, pos: np.ndarray):
        word = self.w64[pos]
        stops = np.invert(word)
        stops &= _HI
        mask = np.negative(stops)  # two's complement: keeps the lowest stop bit and above
        mask &= stops  # the lowest stop bit
        mask <<= _ONE
        mask -= _ONE  # every bit up to it: the varint's bytes
        value = word
        value &= mask
        value &= _LO7
        length = np.bitwise_count(mask)
        longest = int(length.max(initial=0))
        if longest > 8:  # compact 7-bit groups: bytes 0-1, then 0-3, then 0-7
            value = ((value & _M1) >> np.uint64(1)) | (value & _K1)
        if longest > 16:
            value = ((value & _M2) >> np.uint64(2)) | (value & _K2)
        if longest > 32:
            value = ((value & _M3) >> np.uint64(4)) | (value & _K3)
        length >>= 3
        after = pos + length
        ok = None
        if longest == 64 or longest == 0:
            long = np.flatnonzero(stops == 0)
            if long.size:  # 9 or 10 bytes (negative int64, values of 2**56 or more)
                at = pos[long]
                b8 = self.u8[at + 8].astype(np.uint64)
                b9 = self.u8[at + 9].astype(np.uint64)
                tenth = b8 >= 0x80
                value[long] |= (b8 & np.uint64(0x7F)) << np.uint64(56)
                value[long] |= np.where(tenth, (b9 & _ONE) << np.uint64(63), np.uint64(0))
                after[long] = at + np.where(tenth, 10, 9)
                ok = np.ones(len(pos), dtype=bool)
                ok[long] = ~(tenth & (b9 >= 0x80))
        return value, after, ok

    def fixed64(self, pos: np.ndarray) -> np.ndarray:
        return self.w64[pos]


def _py_varint(data, pos: int, end: int):
    result = shift = 0
    for _ in range(10):
        if pos >= end:
            raise _Bad
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
    raise _Bad


def _py_fields(data, pos: int, end: int):
    """(field, wire type, a, b) of one message: a varint/fixed64 value, or a LEN field's span [a, b)."""
    while pos < end:
        tag, pos = _py_varint(data, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _Bad
        if wire == 0:
            value, pos = _py_varint(data, pos, end)
            yield number, 0, value, 0
        elif wire == 1:
            if end - pos < 8:
                raise _Bad
            yield number, 1, int.from_bytes(bytes(data[pos:pos + 8]), "little"), 0
            pos += 8
        elif wire == 5:
            if end - pos < 4:
                raise _Bad
            pos += 4
        elif wire == 2:
            size, pos = _py_varint(data, pos, end)
            if size > end - pos:
                raise _Bad
            yield number, 2, pos, pos + size
            pos += size
        else:
            raise _Bad


def _lockstep(wire: _Wire, starts: np.ndarray, ends: np.ndarray, handle, finish_one, straggle: int = 48):
    """Decode many messages of one type together, one field of every message per round.

    `handle(number, wire_type, index, pos, end, round)` reads one field (at `pos`, just
    after its tag) of the messages `index` (that end at `end`) and returns the positions
    after it, end+1 where malformed; `finish_one(i, fields, round)` decodes the rest of
    message `i` from `_py_fields` output, when few messages remain. Returns a bad mask:
    messages with malformed bytes.
    """
    bad = np.zeros(len(starts), dtype=bool)
    live = starts < ends
    if live.all():
        index, pos, end = np.arange(len(starts)), starts, ends
    else:
        index = np.flatnonzero(live)
        pos, end = starts[index], ends[index]
    round_ = 0
    while index.size:
        if index.size < straggle and round_ > 4:
            for i, a, b in zip(index.tolist(), pos.tolist(), end.tolist()):
                try:
                    finish_one(i, _py_fields(wire.padded, a, b), round_)
                except _Bad:
                    bad[i] = True
            break
        first = wire.u8[pos]
        ok = None
        if (first >= 0x80).any():
            tags, after, ok = wire.varint(pos)
            values = np.unique(tags)
        else:
            tags, after = first, pos + 1
            values = np.flatnonzero(np.bincount(tags, minlength=256))
        if len(values) == 1:
            groups = [(int(values[0]), None)]
        else:
            groups = [(tag, np.flatnonzero(tags == tag)) for tag in values.tolist()]
        new = np.empty_like(pos) if len(groups) > 1 else None
        for tag, hit in groups:
            number, wire_type = tag >> 3, tag & 7
            if hit is None:
                which, q, e = index, after, end
            else:
                which, q, e = index[hit], after[hit], end[hit]
            if number == 0 or wire_type in (3, 4, 6, 7):
                moved = e + 1
            else:
                moved = handle(number, wire_type, which, q, e, round_)
            if hit is None:
                new = moved
            else:
                new[hit] = moved
        if ok is not None:
            new = np.where(ok, new, end + 1)
        over = new > end
        if over.any():
            bad[index[over]] = True
        go_on = new < end
        if go_on.all():
            pos = new
        else:
            index, pos, end = index[go_on], new[go_on], end[go_on]
        round_ += 1
    return bad


def _skip(wire: _Wire, wire_type: int, q: np.ndarray, ends: np.ndarray):
    """Positions after a field's value that we do not keep (ends+1 where malformed)."""
    if wire_type == 0:
        _, after, ok = wire.varint(q)
    elif wire_type == 1:
        return q + 8
    elif wire_type == 5:
        return q + 4
    else:
        size, body, ok = wire.varint(q)
        after = _span_end(body, size, ends)
    if ok is not None:
        after = np.where(ok, after, ends + 1)
    return after


def _span_end(body: np.ndarray, size: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """End of a LEN field's content, or ends+1 where it would run past the message."""
    room = np.maximum(ends - body, 0).astype(np.uint64)
    fits = (body <= ends) & (size <= room)
    return np.where(fits, body + np.minimum(size, room).astype(np.int64), ends + 1)


# ---------------------------------------------------------------- decoding events and stats

def _decode_events(wire: _Wire, starts: np.ndarray, ends: np.ndarray):
    """XEvent fields of every message: metadata_id, offset_ps, duration_ps, and the stats' spans."""
    n = len(starts)
    meta = np.zeros(n, dtype=np.uint64)
    offset = np.zeros(n, dtype=np.uint64)
    duration = np.zeros(n, dtype=np.uint64)
    columns = {1: meta, 2: offset, 3: duration}
    stat_parts = []  # (event index, start, end, round)

    def handle(number, wire_type, index, q, end, round_):
        if wire_type == 0 and number in columns:
            value, after, ok = wire.varint(q)
            columns[number][index] = value
            return after if ok is None else np.where(ok, after, end + 1)
        if wire_type == 2 and number == 4:
            size, body, ok = wire.varint(q)
            after = _span_end(body, size, end)
            if ok is not None:
                after = np.where(ok, after, end + 1)
            good = after <= end
            if good.all():
                stat_parts.append((index, body, after, round_))
            else:
                stat_parts.append((index[good], body[good], after[good], round_))
            return after
        return _skip(wire, wire_type, q, end)

    def finish_one(i, fields, round_):
        extra = []
        for number, wire_type, a, b in fields:
            if wire_type == 0 and number in columns:
                columns[number][i] = a
            elif wire_type == 2 and number == 4:
                extra.append((a, b))
        for k, (a, b) in enumerate(extra):
            stat_parts.append((np.array([i]), np.array([a]), np.array([b]), round_ + k))

    bad = _lockstep(wire, starts, ends, handle, finish_one)
    if stat_parts:
        stat_parts.sort(key=lambda part: part[3])  # stable: rounds in order, so later stats win
        stat_event = np.concatenate([p[0] for p in stat_parts])
        stat_start = np.concatenate([p[1] for p in stat_parts])
        stat_end = np.concatenate([p[2] for p in stat_parts])
        stat_round = np.concatenate([np.full(len(p[0]), p[3], dtype=np.int32) for p in stat_parts])
    else:
        stat_event = stat_start = stat_end = np.zeros(0, dtype=np.int64)
        stat_round = np.zeros(0, dtype=np.int32)
    return (meta.view(np.int64), offset.view(np.int64), duration.view(np.int64), bad,
            (stat_event, stat_start, stat_end, stat_round))


def _decode_stats(wire: _Wire, starts: np.ndarray, ends: np.ndarray):
    """XStat fields: metadata_id, and the value: its field number (kind), raw 64 bits, or a span."""
    n = len(starts)
    meta = np.zeros(n, dtype=np.uint64)
    kind = np.zeros(n, dtype=np.int8)  # 0 none, 2 double, 3 uint64, 4 int64, 5 str, 6 bytes, 7 ref
    raw = np.zeros(n, dtype=np.uint64)
    span_start = np.zeros(n, dtype=np.int64)
    span_end = np.zeros(n, dtype=np.int64)

    def handle(number, wire_type, index, q, end, round_):
        if number == 1 and wire_type == 0:
            value, after, ok = wire.varint(q)
            meta[index] = value
        elif number in (3, 4, 7) and wire_type == 0:
            value, after, ok = wire.varint(q)
            raw[index] = value
            kind[index] = number
        elif number == 2 and wire_type == 1:
            raw[index] = wire.fixed64(q)
            kind[index] = 2
            return q + 8
        elif number in (5, 6) and wire_type == 2:
            size, body, ok = wire.varint(q)
            after = _span_end(body, size, end)
            span_start[index], span_end[index] = body, after
            kind[index] = number
        else:
            return _skip(wire, wire_type, q, end)
        return after if ok is None else np.where(ok, after, end + 1)

    def finish_one(i, fields, round_):
        for number, wire_type, a, b in fields:
            if number == 1 and wire_type == 0:
                meta[i] = a
            elif (number in (3, 4, 7) and wire_type == 0) or (number == 2 and wire_type == 1):
                raw[i], kind[i] = a, number
            elif number in (5, 6) and wire_type == 2:
                span_start[i], span_end[i], kind[i] = a, b, number

    bad = _lockstep(wire, starts, ends, handle, finish_one)
    return meta.view(np.int64), kind, raw, span_start, span_end, bad


# ---------------------------------------------------------------- python-side values

class _Strings:
    """Interned strings of one file: code <-> text."""

    def __init__(self):
        self.codes = {"": 0}
        self.texts = [""]

    def __call__(self, text) -> int:
        code = self.codes.get(text)
        if code is None:
            code = self.codes[text] = len(self.texts)
            self.texts.append(text)
        return code


def _stat_value(stat, stat_names):
    which = stat.WhichOneof("value")
    if which is None:
        return None
    value = getattr(stat, which)
    if which == "ref_value":
        return stat_names.get(value, "")
    return value


def _stats_dict(stats, stat_names, wanted=None) -> dict:
    out = {}
    for stat in stats:
        name = stat_names.get(stat.metadata_id)
        if name is None or (wanted is not None and name not in wanted):
            continue
        out[name] = _stat_value(stat, stat_names)
    return out


def _as_text(value) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_number(value) -> float:
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return np.nan


def _split_op_event(name: str, display_name: str):
    """`node:Type` with display name `Type` is a TensorFlow op event."""
    if display_name and _OP_TYPE.match(display_name) and name.endswith(":" + display_name):
        return name[: -len(display_name) - 1], display_name
    return None


_SHAPE_IN_ANNOTATION = re.compile(r"#shape=(\([^#]*\))#")


def _parse_launcher(text: str):
    """The TensorFlow op a device event was launched by: `node:Type#shape=(...)#...`."""
    head = text.split("#", 1)[0]
    # Nested annotations are joined with "::"; the innermost names the op.
    head = head.split("::")[-1]
    if ":" in head:
        op_name, op_type = head.rsplit(":", 1)
        match = _SHAPE_IN_ANNOTATION.search(text)
        return op_name, op_type, match.group(1) if match else None
    return head, "", None


# ---------------------------------------------------------------- one file

@dataclass
class _FileParts:
    """What one file contributes; plain arrays and lists, so that it crosses process boundaries."""
    path: str
    host: str
    strings: list
    columns: dict
    planes: list
    errors: list
    warnings: list
    damage: list
    profile_options: dict
    capture_ps: Optional[int]


class _Columns:
    """Per-event arrays of the kept events of one file, filled plane by plane."""

    def __init__(self):
        self.parts = []

    def add(self, **arrays):
        self.parts.append(arrays)

    def build(self) -> dict:
        """One array per column; each column's pieces are let go as soon as it is joined."""
        out = {}
        for name, dtype in _ARRAY_DTYPES.items():
            pieces = [p.pop(name) for p in self.parts]
            out[name] = (np.concatenate(pieces) if len(pieces) > 1 else pieces[0] if pieces
                         else np.zeros(0)).astype(dtype, copy=False)
            del pieces
        self.parts = []
        return out


_ARRAY_DTYPES = {"plane": np.int32, "line": np.int32, "kind": np.int8, "name": np.int32, "op_name": np.int32,
                 "op_type": np.int32, "start_ps": np.int64, "duration_ps": np.int64, "shape": np.int32,
                 "step_num": np.float64, "correlation_id": np.float64, "kernel_details": np.int32,
                 "memcpy_details": np.int32, "hlo_op": np.int32, "hlo_module": np.int32,
                 "program_id": np.float64}


def _host_name(path: Path, space) -> str:
    if space.hostnames:
        return space.hostnames[0]
    return path.name.split(".xplane.pb")[0]


def _parse_file(path, data: Optional[bytes] = None) -> _FileParts:
    """Parse one `.xplane.pb` (its bytes, when given) into arrays."""
    path = Path(path)
    if data is None:
        data = _read_bytes(path)
    elif not data:
        raise TraceError(f"{path}: the file is empty")
    space = _XSpaceView()
    try:
        space.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError or others on damaged bytes
        text = str(exc).replace("traceflops.xplane_view.", "tensorflow.profiler.")
        raise TraceError(f"{path}: not a readable XSpace trace ({type(exc).__name__}: {text})") from None
    del data
    if not space.planes:
        raise TraceError(f"{path}: not an XSpace trace (it has no planes)")
    strings = _Strings()
    info = _space_contents(path, space, strings)
    # The parsed message holds a copy of every event's bytes: let it go before decoding
    # (no reference to any part of it may survive, or its whole arena stays).
    del space
    columns = _Columns()
    for item in info.pop("plane_inputs"):
        _plane_events(item, info["host"], strings, columns, info["damage"])
    return _FileParts(str(path), info["host"], strings.texts, columns.build(), info["planes"], info["errors"],
                      info["warnings"], info["damage"], info["options"], info["capture"])


def _space_contents(path: Path, space, strings: _Strings) -> dict:
    """Plain Python/numpy copies of what the parser needs from the XSpace message."""
    host = _host_name(path, space)
    profile_start = None
    out = {"host": host, "errors": [f"{host}: {e}" for e in space.errors],
           "warnings": [f"{host}: {w}" for w in space.warnings], "damage": [], "planes": [], "options": {},
           "capture": None, "plane_inputs": []}
    for plane in space.planes:
        stat_names = {key: meta.name for key, meta in plane.stat_metadata.items()}
        plane_stats = _stats_dict(plane.stats, stat_names)
        if "profile_options" in plane_stats:
            out["options"][host] = plane_stats["profile_options"]
        start, stop = plane_stats.get("profile_start_time"), plane_stats.get("profile_stop_time")
        if isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop:
            out["capture"] = (stop - start) * 1000
            profile_start = start
        for name, value in plane_stats.items():
            count = _as_number(value)
            if "dropped" in str(name).lower() and count > 0:
                said = f"{count:.0f}" if np.isfinite(count) else str(count)
                out["damage"].append(f"{host}: {plane.name or 'a plane'}: the profiler dropped {said} events "
                                     f"({name}); the trace is incomplete")
        is_device = plane.name.startswith("/device:")
        is_host = plane.name.startswith("/host:CPU")
        kept_lines, num_events = [], 0
        for line in plane.lines:
            if is_device and (line.name in _DERIVED_DEVICE_LINES or line.display_name in _DERIVED_DEVICE_LINES):
                continue
            num_events += len(line.events)
            if (is_device or is_host) and len(line.events):
                kept_lines.append(line)
        out["planes"].append(PlaneInfo(host, plane.name, plane_stats, num_events))
        if kept_lines:
            out["plane_inputs"].append(_plane_input(plane, stat_names, kept_lines, is_host, strings))
    _rebase(out["plane_inputs"], profile_start)
    return out


def _rebase(items: list, profile_start: Optional[int]) -> None:
    """Line timestamps since the epoch (ns) overflow int64 picoseconds: count from the profile's start.

    TensorFlow writes times relative to the profile's start; a trace with absolute
    timestamps is moved there (or to its first line), so that its times fit.
    """
    bases = [b for item in items for b in item["bases"]]
    if not bases or max(abs(b) for b in bases) <= _INT64_MAX // 4000:
        return
    first = min(bases)
    reference = profile_start if profile_start is not None and 0 <= first - profile_start <= _INT64_MAX // 4000 \
        else first
    for item in items:
        item["bases"] = [b - reference for b in item["bases"]]


def _plane_input(plane, stat_names: dict, lines: list, is_host: bool, strings: _Strings) -> dict:
    """Everything of one plane that the vectorised pass needs, taken out of the protobuf message."""
    meta_keys = np.array(sorted(plane.event_metadata.keys()), dtype=np.int64)
    meta_name, meta_op, meta_stats = [], [], []
    for key in meta_keys.tolist():
        meta = plane.event_metadata[key]
        meta_name.append(meta.name)
        meta_op.append(_split_op_event(meta.name, meta.display_name) if is_host else None)
        meta_stats.append(_stats_dict(meta.stats, stat_names, _WANTED_EVENT_STATS) if meta.stats else {})
    chunks, sizes, line_of, bases, line_codes, line_ends = [], [], [], [], [], []
    step = 1 << 16
    for k, line in enumerate(lines):
        events = line.events
        count = len(events)
        for i in range(0, count, step):
            chunk = events[i:i + step]
            sizes.append(np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk)))
            chunks.append(b"".join(chunk))
        line_of.append(np.full(count, k, dtype=np.int32))
        bases.append(line.timestamp_ns)
        line_codes.append(strings(line.display_name or line.name))
        line_ends.append(line.duration_ps)
    chunks.append(bytes(16))  # padding for the 64-bit reads near the end
    return {"name": plane.name, "is_host": is_host, "stat_names": stat_names, "meta_keys": meta_keys,
            "meta_name": meta_name, "meta_op": meta_op, "meta_stats": meta_stats, "data": b"".join(chunks),
            "sizes": np.concatenate(sizes), "line_of": np.concatenate(line_of), "bases": bases,
            "line_codes": np.array(line_codes, dtype=np.int32), "line_durations": line_ends}


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


_CHUNK = 1 << 19  # events decoded together: bounds the temporaries of a huge plane
_COLUMN_NAMES = sorted(_WANTED_EVENT_STATS)
_COLUMN_OF = {name: k for k, name in enumerate(_COLUMN_NAMES)}


class _Plane:
    """Lookups of one plane, built once and used for every chunk of its events."""

    def __init__(self, item: dict, host: str, strings: _Strings):
        self.item, self.strings = item, strings
        self.where = f"{host}: {item['name']}"
        self.is_host = item["is_host"]
        self.plane_code = strings(item["name"])
        self.meta = _IdIndex(item["meta_keys"])
        meta_names, meta_op = item["meta_name"], item["meta_op"]
        # Per event metadata, with one more entry for a dangling id (index -1).
        self.meta_is_op = np.array([op is not None for op in meta_op] + [False], dtype=bool)
        self.meta_is_copy = np.array([("Memcpy" in m or "Memset" in m) for m in meta_names] + [False], dtype=bool)
        self.meta_name = np.array([strings(m) for m in meta_names] + [0], dtype=np.int32)
        self.meta_op_name = np.array([strings(op[0]) if op else 0 for op in meta_op] + [0], dtype=np.int32)
        self.meta_op_type = np.array([strings(op[1]) if op else 0 for op in meta_op] + [0], dtype=np.int32)
        self.defaults = {}
        for name in _COLUMN_NAMES:
            values = [m.get(name) for m in item["meta_stats"]] + [None]
            if name in _NUMBER_STATS:
                self.defaults[name] = np.array([np.nan if v is None else _as_number(v) for v in values])
                if name in _ID_STATS:
                    self.defaults[name] = _whole(self.defaults[name])
            else:
                self.defaults[name] = np.array([-1 if v is None else strings(_as_text(v)) for v in values],
                                               dtype=np.int32)
        stat_names = item["stat_names"]
        wanted = sorted(k for k, v in stat_names.items() if v in _WANTED_EVENT_STATS)
        self.stat_ids = _IdIndex(np.array(wanted, dtype=np.int64))
        self.stat_cols = np.array([_COLUMN_OF[stat_names[k]] for k in wanted] + [-1], dtype=np.int16)
        keys = np.array(sorted(stat_names), dtype=np.int64)
        self.refs = _IdIndex(keys)
        self.ref_codes = np.array([strings(stat_names[k]) for k in keys.tolist()] + [0], dtype=np.int32)
        self.text_cache = {}
        bases = item["bases"]
        self.base_ps = np.zeros(len(bases), dtype=np.int64)
        self.base_ok = np.ones(len(bases), dtype=bool)
        limits = []
        for k, (base, length) in enumerate(zip(bases, item["line_durations"])):
            value = base * 1000
            if _INT64_MIN < value < _INT64_MAX:
                self.base_ps[k] = value
            else:
                self.base_ok[k] = False
            limits.append(min(value + length, _INT64_MAX) if length > 0 and self.base_ok[k] else _INT64_MAX)
        self.line_limit = np.array(limits, dtype=np.int64)
        self.has_limits = bool((self.line_limit != _INT64_MAX).any())
        self.counts = {"malformed": 0, "negative": 0, "range": 0, "line_end": 0}

    def damage(self) -> list:
        c, w = self.counts, self.where
        out = []
        if c["malformed"]:
            out.append(f"{w}: {c['malformed']} events with malformed bytes were skipped")
        if c["negative"]:
            out.append(f"{w}: {c['negative']} events with a negative duration were skipped")
        if c["range"]:
            out.append(f"{w}: {c['range']} events with times out of range were skipped")
        if c["line_end"]:
            out.append(f"{w}: {c['line_end']} events run past the end of their line (cut by the end of the "
                       "capture) and were left out")
        return out

    # -- stat values

    def ref_text(self, raw: np.ndarray) -> np.ndarray:
        """String codes of ref values (names of stat metadata; a dangling reference reads as "")."""
        return self.ref_codes[self.refs(raw.view(np.int64))]

    def texts(self, wire: _Wire, kind, raw, start, end) -> np.ndarray:
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
                    code = strings(_as_text(_raw_number(k, r)))
                out[j] = code
        return out


def _raw_number(kind: int, raw: int):
    word = np.array([raw], dtype=np.uint64)
    if kind == 2:
        return float(word.view(np.float64)[0])
    if kind == 4:
        return int(word.view(np.int64)[0])
    return int(raw)


_ID_STATS = ("correlation_id", "program_id")


def _whole(values: np.ndarray) -> np.ndarray:
    """Ids: NaN where a value is not a whole number that fits int64."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2.0**63)
    return np.where(ok, values, np.nan)


def _numbers(kind, raw) -> np.ndarray:
    out = np.full(len(kind), np.nan)
    double = kind == 2
    out[double] = raw[double].view(np.float64)
    unsigned = kind == 3
    out[unsigned] = raw[unsigned].astype(np.float64)
    signed = kind == 4
    out[signed] = raw[signed].view(np.int64).astype(np.float64)
    return out


def _truthy(plane: _Plane, kind, raw, start, end) -> np.ndarray:
    out = np.zeros(len(kind), dtype=bool)
    numeric = (kind == 3) | (kind == 4)
    out[numeric] = raw[numeric] != 0
    double = kind == 2
    out[double] = raw[double].view(np.float64) != 0
    spans = (kind == 5) | (kind == 6)
    out[spans] = end[spans] > start[spans]
    refs = kind == 7
    if refs.any():
        out[refs] = plane.ref_text(raw[refs]) != 0
    return out


def _equals_one(kind, raw) -> np.ndarray:
    return (((kind == 3) | (kind == 4)) & (raw == _ONE)) | ((kind == 2) & (raw.view(np.float64) == 1.0))


def _last_wins(events: np.ndarray, values: np.ndarray, rounds: np.ndarray) -> np.ndarray:
    """`values` rewritten so that a fancy assignment to `events` keeps each event's last value.

    Values come in decode order (rounds ascending); within one round an event appears once.
    """
    if len(events) < 2 or rounds[0] == rounds[-1]:
        return values
    order = np.argsort(events, kind="stable")
    sorted_events = events[order]
    starts = np.r_[True, sorted_events[1:] != sorted_events[:-1]]
    if starts.all():
        return values
    last_of_run = np.r_[starts[1:], True]
    run_id = np.cumsum(starts) - 1
    out = np.empty_like(values)
    out[order] = values[order][last_of_run][run_id]
    return out


def _plane_events(item: dict, host: str, strings: _Strings, columns: _Columns, damage: list):
    """Decode, classify and tabulate the events of one plane, a chunk of events at a time."""
    plane = _Plane(item, host, strings)
    wire = _Wire(item.pop("data"))
    sizes = item.pop("sizes")
    ends = np.cumsum(sizes)
    starts = ends - sizes
    del sizes
    line_of = item["line_of"]
    for a in range(0, len(starts), _CHUNK):
        b = a + _CHUNK
        _chunk_events(plane, wire, starts[a:b], ends[a:b], line_of[a:b], columns)
    damage.extend(plane.damage())


def _chunk_events(plane: _Plane, wire: _Wire, starts, ends, line_of, columns: _Columns):
    n = len(starts)
    meta_id, offset, duration, bad, (stat_event, stat_start, stat_end, stat_round) = \
        _decode_events(wire, starts, ends)
    smeta, skind, sraw, sstart, send, sbad = _decode_stats(wire, stat_start, stat_end)
    del stat_start, stat_end
    if sbad.any():
        bad[stat_event[sbad]] = True
    meta_index = plane.meta(meta_id)
    del meta_id
    stat_column = plane.stat_cols[plane.stat_ids(smeta)]
    stat_column[sbad] = -1
    del smeta

    kind = np.full(n, -1, dtype=np.int8)
    if plane.is_host:
        is_op = plane.meta_is_op[meta_index]
        kind[is_op] = _OP
        rest = np.zeros(n, dtype=bool)
        rest[stat_event] = True  # events with stats
        rest &= ~is_op
        if rest.any():
            # Steps: a step_num stat and _r == 1; XLA: a non-empty hlo_op (the event's own stats).
            has_step_num = np.zeros(n, dtype=bool)
            has_step_num[stat_event[stat_column == _COLUMN_OF["step_num"]]] = True
            root = np.zeros(n, dtype=bool)
            hlo = np.zeros(n, dtype=bool)
            for target, name in ((root, "_r"), (hlo, "hlo_op")):
                sel = np.flatnonzero(stat_column == _COLUMN_OF[name])
                if sel.size:
                    if name == "_r":
                        test = _equals_one(skind[sel], sraw[sel])
                    else:
                        test = _truthy(plane, skind[sel], sraw[sel], sstart[sel], send[sel])
                    target[stat_event[sel]] = _last_wins(stat_event[sel], test, stat_round[sel])
            kind[rest & has_step_num & root] = _STEP
            kind[rest & (kind < 0) & hlo] = _XLA
    else:
        kind[:] = np.where(plane.meta_is_copy[meta_index], _MEMCPY, _KERNEL)

    plane.counts["malformed"] += int(bad.sum())
    keep = (kind >= 0) & ~bad

    # Times: line timestamp (ns) + offset (ps), guarded against int64 overflow.
    event_base = plane.base_ps[line_of]
    in_range = plane.base_ok[line_of] & np.where(event_base >= 0, offset <= _INT64_MAX - event_base,
                                                 offset >= _INT64_MIN - event_base)
    start = event_base
    start += np.where(in_range, offset, 0)
    del offset
    negative = duration < 0
    in_range &= ~negative
    in_range &= duration <= _INT64_MAX - np.maximum(start, 0)
    out = keep & ~in_range
    if out.any():
        count_negative = int((keep & negative).sum())
        plane.counts["negative"] += count_negative
        plane.counts["range"] += int(out.sum()) - count_negative
        keep &= in_range
    if plane.has_limits:
        # A line that says how long it lasted: events running past its end were cut.
        cut = keep & (start + np.where(keep, duration, 0) > plane.line_limit[line_of])
        plane.counts["line_end"] += int(cut.sum())
        keep &= ~cut

    kept = np.flatnonzero(keep)
    if not kept.size:
        return
    # Stats of kept events that feed a column, in decode order (a later stat of the same name wins).
    row_of_event = np.full(n, -1, dtype=np.int64)
    row_of_event[kept] = np.arange(kept.size)
    useful = np.flatnonzero((stat_column >= 0) & keep[stat_event])
    m = meta_index[kept]
    merged = {}
    for name in _COLUMN_NAMES:
        if name == "_r":
            continue
        col = plane.defaults[name][m]  # the event metadata's own stat, if any
        sel = useful[stat_column[useful] == _COLUMN_OF[name]]
        if sel.size:
            # A stat without a value reads as missing, as protobuf's None would.
            if name in _NUMBER_STATS:
                got = _numbers(skind[sel], sraw[sel])
                if name in _ID_STATS:
                    got = _whole(got)
            else:
                got = plane.texts(wire, skind[sel], sraw[sel], sstart[sel], send[sel])
            rows = row_of_event[stat_event[sel]]
            col[rows] = _last_wins(rows, got, stat_round[sel])
        merged[name] = col

    kinds = kind[kept]
    name = plane.meta_name[m]
    op_name = np.zeros(kept.size, dtype=np.int32)
    op_type = np.zeros(kept.size, dtype=np.int32)
    shape = merged["shape"]
    if plane.is_host:
        is_op = kinds == _OP
        op_name[is_op] = plane.meta_op_name[m[is_op]]
        op_type[is_op] = plane.meta_op_type[m[is_op]]
        is_step = kinds == _STEP
        op_name[is_step] = name[is_step]
        is_xla = kinds == _XLA
        op_name[is_xla] = merged["hlo_op"][is_xla]
        shape = np.where(is_step | is_xla, -1, shape)
    else:
        launcher = np.full(kept.size, -1, dtype=np.int32)
        for key in _LAUNCHER_STATS:
            code = merged[key]
            take = (launcher < 0) & (code > 0)  # code 0 is "": not a launcher
            launcher[take] = code[take]
        from_launcher = np.full(kept.size, -1, dtype=np.int32)
        has = launcher >= 0
        if has.any():
            uniq = np.unique(launcher[has])
            parsed = [_parse_launcher(plane.strings.texts[c]) for c in uniq.tolist()]
            strings = plane.strings
            at = np.searchsorted(uniq, launcher[has])
            op_name[has] = np.array([strings(p[0]) for p in parsed], dtype=np.int32)[at]
            op_type[has] = np.array([strings(p[1]) for p in parsed], dtype=np.int32)[at]
            from_launcher[has] = np.array([strings(p[2]) if p[2] is not None else -1 for p in parsed],
                                          dtype=np.int32)[at]
        # The shape stat, or where it is missing or "", the annotation's.
        shape = np.where(shape <= 0, from_launcher, shape)
    columns.add(plane=np.full(kept.size, plane.plane_code, dtype=np.int32),
                line=plane.item["line_codes"][line_of[kept]], kind=kinds, name=name, op_name=op_name,
                op_type=op_type, start_ps=start[kept], duration_ps=duration[kept], shape=shape,
                step_num=merged["step_num"], correlation_id=merged["correlation_id"],
                kernel_details=merged["kernel_details"], memcpy_details=merged["memcpy_details"],
                hlo_op=merged["hlo_op"], hlo_module=merged["hlo_module"], program_id=merged["program_id"])


# ---------------------------------------------------------------- all files

def parse_spaces(spaces) -> Trace:
    """Build the events table from (path, XSpace) pairs; an XSpace may also be given as its bytes."""
    parts = []
    for path, space in spaces:
        data = space if isinstance(space, (bytes, bytearray, memoryview)) else space.SerializeToString()
        parts.append(_parse_file(path, bytes(data)))
    return _combine(parts)


def load_trace(path, parallel: Optional[bool] = None) -> Trace:
    """The trace of a logdir, run directory or `.xplane.pb` (or a list of `.xplane.pb` files).

    Two or more files holding `PARALLEL_MIN_BYTES` or more in all are parsed in
    parallel processes (`parallel=True/False` forces the choice).
    """
    if isinstance(path, (list, tuple)):
        files = [Path(p) for p in path]
        for file in files:
            if not file.is_file():
                raise TraceError(f"{file}: no such file")
    else:
        files = find_trace_files(path)
    if parallel is None:
        total = sum(_size(f) for f in files)
        parallel = len(files) >= 2 and total >= PARALLEL_MIN_BYTES and (os.cpu_count() or 1) > 1
    if parallel and len(files) >= 2:
        parts = _parse_parallel(files)
    else:
        parts = [_parse_file(file) for file in files]
    return _combine(parts)


def _size(path) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _parse_parallel(files) -> list:
    """Parse files in worker processes; their arrays come back through a temporary file, not a pipe.

    Where workers cannot run (no process support, a worker died), the file is parsed here.
    """
    import multiprocessing
    import sys
    import threading
    from concurrent.futures import ProcessPoolExecutor
    workers = min(len(files), os.cpu_count() or 1)
    # fork starts a worker in milliseconds, but is unsafe in a process running other threads
    # (TensorFlow's, after `profile`): spawn there.
    methods = multiprocessing.get_all_start_methods()
    safe_to_fork = threading.active_count() == 1 and "tensorflow" not in sys.modules
    method = "fork" if safe_to_fork and "fork" in methods else "spawn"
    outcomes = []
    try:
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method)) as pool:
            futures = [pool.submit(_parse_file_to_disk, str(file)) for file in files]
            for future in futures:
                try:
                    outcomes.append((True, future.result()))
                except Exception as exc:  # a worker's TraceError comes back as itself
                    outcomes.append((False, exc))
    except (OSError, NotImplementedError, ImportError):
        pass  # no worker processes here: parse in this process
    while len(outcomes) < len(files):
        outcomes.append((False, None))
    parts, error = [], None
    for file, (ok, value) in zip(files, outcomes):
        try:
            if ok:
                parts.append(_read_back(*value))  # also removes the temporary file
            elif isinstance(value, TraceError):
                raise value
            else:
                parts.append(_parse_file(file))
        except TraceError as exc:
            error = error or exc
    if error is not None:
        raise error
    return parts


def _scratch_dir() -> str:
    """Where workers leave their arrays: $TRACEFLOPS_SCRATCH_DIR, else /dev/shm (memory), else the temp dir."""
    import tempfile
    chosen = os.environ.get("TRACEFLOPS_SCRATCH_DIR")
    if chosen:
        return chosen
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else tempfile.gettempdir()


def _parse_file_to_disk(path: str):
    """In a worker: parse one file and write its arrays to a temporary file (pipes are slow for 100s of MB)."""
    import tempfile
    part = _parse_file(path)
    layout = []
    handle, scratch = tempfile.mkstemp(prefix="traceflops-", suffix=".bin", dir=_scratch_dir())
    try:
        with os.fdopen(handle, "wb") as out:
            for name, values in part.columns.items():
                values = np.ascontiguousarray(values)
                layout.append((name, values.dtype.str, len(values)))
                out.write(memoryview(values).cast("B"))
    except BaseException:
        os.unlink(scratch)
        raise
    part.columns = {}
    return part, scratch, layout


def _read_back(part: _FileParts, scratch: str, layout: list) -> _FileParts:
    try:
        with open(scratch, "rb") as source:
            for name, dtype, count in layout:
                part.columns[name] = np.fromfile(source, dtype=np.dtype(dtype), count=count)
    finally:
        os.unlink(scratch)
    return part


def _combine(parts: list) -> Trace:
    """One Trace from the files' parts: shared string table, categoricals, self times, steps, damage."""
    texts, codes = [""], {"": 0}
    remaps = []
    for part in parts:
        remap = np.empty(len(part.strings) + 1, dtype=np.int32)
        for k, text in enumerate(part.strings):
            code = codes.get(text)
            if code is None:
                code = codes[text] = len(texts)
                texts.append(text)
            remap[k] = code
        remap[-1] = -1  # code -1 (missing) stays missing
        remaps.append(remap)
    host_codes = []
    for part in parts:
        code = codes.get(part.host)
        if code is None:
            code = codes[part.host] = len(texts)
            texts.append(part.host)
        host_codes.append(code)
    sizes = [len(p.columns["start_ps"]) for p in parts]
    part_rows = np.cumsum([0] + sizes)
    arrays = {"host": np.concatenate([np.full(size, c, dtype=np.int32) for size, c in zip(sizes, host_codes)])
              if parts else np.zeros(0, np.int32)}
    identity = [np.array_equal(remap[:-1], np.arange(len(remap) - 1)) for remap in remaps]
    for name, dtype in _ARRAY_DTYPES.items():
        pieces = []
        for part, remap, same in zip(parts, remaps, identity):
            values = part.columns.pop(name)  # let each part's column go once it is joined
            if name in ("plane", "line", "name", "op_name", "op_type") + _STRING_STATS and not same:
                values = remap[values]
            pieces.append(values)
        arrays[name] = (np.concatenate(pieces) if len(pieces) > 1 else pieces[0] if pieces
                        else np.zeros(0)).astype(dtype, copy=False)
        del pieces
    damage = [d for part in parts for d in part.damage]
    line_key = _line_keys(arrays)
    self_ps = _self_times(line_key, np.isin(arrays["kind"], (_OP, _XLA)), arrays["start_ps"],
                          arrays["duration_ps"])
    keep, step = _steps_and_damage(arrays, parts, part_rows, host_codes, damage)
    if keep is not None:
        for name in list(arrays):
            arrays[name] = arrays[name][keep]
        self_ps = self_ps[keep]
    del line_key
    events = _frame(arrays, self_ps, step, texts)
    warnings = [w for part in parts for w in part.warnings] + damage
    return Trace(events=events, planes=[p for part in parts for p in part.planes], paths=[p.path for p in parts],
                 hostnames=[p.host for p in parts], errors=[e for part in parts for e in part.errors],
                 warnings=warnings, profile_options={k: v for p in parts for k, v in p.profile_options.items()},
                 damage=damage)


def _line_keys(arrays: dict) -> np.ndarray:
    """One integer per (host, plane, line)."""
    host, plane, line = (arrays[k].astype(np.int64) + 1 for k in ("host", "plane", "line"))
    size = int(max(host.max(initial=0), plane.max(initial=0), line.max(initial=0))) + 1
    if size < 2_000_000:
        return (host * size + plane) * size + line
    _, key = np.unique(np.stack([host, plane, line], axis=1), axis=0, return_inverse=True)
    return key.reshape(-1).astype(np.int64)


def _frame(arrays: dict, self_ps: np.ndarray, step: np.ndarray, texts: list) -> pd.DataFrame:
    data = {}
    table = np.array(texts, dtype=object)
    for name in EVENT_COLUMNS:
        if name == "self_ps":
            data[name] = self_ps
        elif name == "step":
            data[name] = step
        elif name == "kind":
            data[name] = pd.Categorical.from_codes(
                _remap_kinds(arrays.pop("kind")), categories=pd.Index(sorted(_KINDS), dtype=object))
        elif name in _CATEGORICAL_COLUMNS:
            data[name] = _categorical(arrays.pop(name), table)
        elif name in _OBJECT_COLUMNS:
            codes = arrays.pop(name)
            present = codes >= 0
            if present.any():
                values = np.full(len(codes), None, dtype=object)
                values[present] = table[codes[present]]
                data[name] = values
            else:  # no event has it (host traces): 1 byte a row, and `.map` still gives plain values
                data[name] = pd.Categorical.from_codes(np.full(len(codes), -1, dtype=np.int8),
                                                       categories=pd.Index([], dtype=object))
        else:
            data[name] = arrays.pop(name)
    # copy=False: no consolidation of the numeric columns into one block (a copy of each).
    return pd.DataFrame(data, columns=EVENT_COLUMNS, copy=False)


def _remap_kinds(kinds: np.ndarray) -> np.ndarray:
    order = sorted(_KINDS)
    remap = np.array([order.index(k) for k in _KINDS], dtype=np.int8)
    return remap[kinds] if len(kinds) else kinds


def _categorical(codes: np.ndarray, table: np.ndarray) -> pd.Categorical:
    """A categorical of the strings `codes` name in `table` (-1: missing), with sorted categories and ""."""
    codes = codes.astype(np.int64, copy=False)
    present = codes >= 0
    used = np.zeros(len(table), dtype=bool)
    used[codes[present]] = True
    used[0] = True  # "" is always a category, so fillna("") works
    chosen = np.flatnonzero(used)
    order = np.argsort(table[chosen].astype(str), kind="stable")
    chosen = chosen[order]
    remap = np.full(len(table), -1, dtype=np.int64)
    remap[chosen] = np.arange(len(chosen))
    new_codes = np.where(present, remap[np.where(present, codes, 0)], -1)
    small = np.int8 if len(chosen) < 127 else np.int16 if len(chosen) < 32767 else np.int32
    return pd.Categorical.from_codes(new_codes.astype(small), categories=pd.Index(table[chosen], dtype=object))


# ---------------------------------------------------------------- self times and steps

def self_times(events: pd.DataFrame) -> np.ndarray:
    """Each op's duration minus that of op/xla events nested in it on the same line."""
    if events.empty:
        return events["duration_ps"].to_numpy().astype(np.int64, copy=True)
    line_key = events.groupby(["host", "plane", "line"], sort=False, observed=True, dropna=False).ngroup()
    return _self_times(line_key.to_numpy(), events["kind"].isin(("op", "xla")).to_numpy(), events["start_ps"].to_numpy(),
                       events["duration_ps"].to_numpy())


def _self_times(line_key, compute, starts, durations) -> np.ndarray:
    """Self time of every event; nested op/xla events are subtracted from their innermost enclosing one.

    Events of one line are taken by start (longer first on ties). Most lines have
    no nesting, which a running maximum of end times shows at once. Properly nested
    lines (every event inside all events open when it starts) get their parents
    from nesting depths, vectorised; anything else takes the stack walk.
    """
    durations = np.asarray(durations, dtype=np.int64)
    self_ps = durations.copy()
    idx = np.flatnonzero(compute)
    if idx.size < 2:
        return self_ps
    starts = np.asarray(starts, dtype=np.int64)
    keys = np.asarray(line_key)[idx]
    if np.any(keys[1:] < keys[:-1]):
        order = np.argsort(keys, kind="stable")
        idx, keys = idx[order], keys[order]
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        if b - a < 2:
            continue
        rows = idx[a:b]
        s = starts[rows]
        if np.any(s[1:] < s[:-1]):
            order = np.argsort(s, kind="stable")
            rows, s = rows[order], s[order]
        e = s + durations[rows]
        if np.any(s[1:] == s[:-1]):  # equal starts: the longer event encloses the shorter
            order = np.lexsort((-e, s))
            rows, s, e = rows[order], s[order], e[order]
        if np.all(s[1:] >= np.maximum.accumulate(e)[:-1]):
            continue
        parent = _nested_parents(s, e)
        if parent is None:
            parent = _stack_parents(s, e)
        child = np.flatnonzero(parent >= 0)
        np.subtract.at(self_ps, rows[parent[child]], e[child] - s[child])
    return self_ps


def _nested_parents(s: np.ndarray, e: np.ndarray) -> Optional[np.ndarray]:
    """Innermost enclosing event of each (sorted) event, when the line is properly nested; else None."""
    n = len(s)
    position = np.arange(n)
    # Events still open when event i starts: earlier ones ending after s[i].
    closed_before = np.searchsorted(np.sort(e), s, side="right")
    # Zero-length events at s[i] that sort at or after i also "end by s[i]"; they are not earlier.
    zero = e == s
    if zero.any():
        same_start = np.r_[True, s[1:] != s[:-1]]
        group = np.cumsum(same_start) - 1
        group_last = np.r_[np.flatnonzero(same_start)[1:], n] - 1
        zeros_upto = np.cumsum(zero)
        closed_before -= zeros_upto[group_last[group]] - zeros_upto + zero
    depth = position - closed_before
    if (depth < 0).any():
        return None
    parent = np.full(n, -1, dtype=np.int64)
    deepest = int(depth.max())
    if deepest == 0:
        return parent
    # Parent: the nearest earlier event one level up.
    if deepest <= 16:
        for level in range(1, deepest + 1):
            latest = np.maximum.accumulate(np.where(depth == level - 1, position, -1))
            child = np.flatnonzero(depth == level)
            parent[child] = latest[child]
        nested = np.flatnonzero(depth > 0)
        candidate = parent[nested]
        if (candidate < 0).any():
            return None
    else:
        nested = np.flatnonzero(depth > 0)
        key = depth * (n + 1) + position
        order = np.argsort(key, kind="stable")
        at = np.searchsorted(key[order], (depth[nested] - 1) * (n + 1) + position[nested]) - 1
        if (at < 0).any():
            return None
        candidate = order[at]
        if np.any(depth[candidate] != depth[nested] - 1):
            return None
        parent[nested] = candidate
    if np.any(e[nested] > e[candidate]) or np.any(s[nested] < s[candidate]):
        return None
    return parent


def _stack_parents(s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The enclosing event on top of the open-events stack, for lines that do not nest properly."""
    parent = np.full(len(s), -1, dtype=np.int64)
    stack = []  # (end, position) of the open enclosing events
    for position, (start, end) in enumerate(zip(s.tolist(), e.tolist())):
        while stack and stack[-1][0] <= start:
            stack.pop()
        if stack and end <= stack[-1][0]:
            parent[position] = stack[-1][1]
        stack.append((end, position))
    return parent


def assign_steps(events: pd.DataFrame) -> np.ndarray:
    """Index of the step marker each event starts in, per host; -1 where none.

    Steps are the `step` rows (root TraceMe events with a `step_num`); they do
    not overlap, so a sorted search of start times finds each event's step.
    Device events run after their host step, so for them the window is from a
    step's start to the next step's start.
    """
    if events.empty:
        return np.zeros(0, dtype=np.int64)
    hosts = pd.factorize(events["host"].astype(object))[0]
    kinds = events["kind"].astype(object).to_numpy()
    codes = np.array([_KINDS.index(k) if k in _KINDS else -1 for k in kinds], dtype=np.int8)
    return _assign_steps(hosts, codes, events["start_ps"].to_numpy(), events["duration_ps"].to_numpy())


def _assign_steps(hosts, kinds, starts, durations) -> np.ndarray:
    step_index = np.full(len(kinds), -1, dtype=np.int64)
    if not len(kinds):
        return step_index
    ends = starts + durations
    single = hosts.min() == hosts.max()
    for host in np.flatnonzero(np.bincount(hosts)).tolist():
        on = hosts == host if not single else np.ones(len(kinds), dtype=bool)
        is_step = on & (kinds == _STEP)
        if not is_step.any():
            continue
        step_rows = np.flatnonzero(is_step)
        order = np.argsort(starts[step_rows], kind="stable")
        step_starts = starts[step_rows][order]
        step_ends = ends[step_rows][order]
        others = np.flatnonzero(on & ~is_step)
        position = np.searchsorted(step_starts, starts[others], side="right") - 1
        valid = position >= 0
        inside = valid.copy()
        # Host ops must lie inside their step; device work may trail it.
        host_ok = starts[others][valid] < step_ends[position[valid]]
        inside[valid] = np.where(kinds[others][valid] == _OP, host_ok, True)
        step_index[others] = np.where(inside, position, -1)
        step_index[step_rows[order]] = np.arange(len(order))
    return step_index


def _steps_and_damage(arrays: dict, parts: list, part_rows: np.ndarray, host_codes: list, damage: list):
    """Step of every event, leaving out events cut by the capture's end and a last step the end cut.

    Returns (rows to keep, or None for all; step index per kept row).
    """
    kinds, hosts = arrays["kind"], arrays["host"]
    starts, durations = arrays["start_ps"], arrays["duration_ps"]
    ends = starts + durations
    keep = np.ones(len(kinds), dtype=bool)
    for k, part in enumerate(parts):
        on = np.zeros(len(kinds), dtype=bool)
        on[part_rows[k]:part_rows[k + 1]] = True  # this file's rows (files come one after another)
        if part.capture_ps is None or not on.any():
            continue
        # Times are relative to the profile's start when the trace begins inside its window.
        capture = part.capture_ps
        if not 0 <= int(starts[on].min()) <= capture:
            continue
        tolerance = max(1_000_000_000, capture // 100)  # 1 ms, or 1% of the capture
        cut = on & (ends > capture + tolerance)
        if cut.any():
            said = ", ".join(f"{int((cut & (kinds == i)).sum())} {k}" for i, k in enumerate(_KINDS)
                             if (cut & (kinds == i)).any())
            damage.append(f"{part.host}: events that end after the capture stopped were cut and left out "
                          f"({said})")
            keep &= ~cut
    step = _assign_steps(hosts, kinds, starts, durations)
    dropped_steps = []
    for host in sorted(set(host_codes)):  # steps are per host name (files of one host share them)
        part = parts[host_codes.index(host)]
        on = hosts == host
        step_rows = np.flatnonzero(on & (kinds == _STEP))
        if not step_rows.size:
            continue
        last_row = step_rows[np.argmax(starts[step_rows])]
        last = step[last_row]
        ops = on & (kinds == _OP)
        over = ops & keep & (step == last) & (ends > ends[last_row])
        lost = on & ~keep & (step == last) & (kinds != _STEP)
        if over.any() or lost.any() or not keep[last_row]:
            if not keep[last_row]:
                why = "its step marker was cut"
            else:
                why = f"{int(over.sum() + lost.sum())} of its events run past its end or the capture's"
            damage.append(f"{part.host}: the capture ended inside the last step (step_num "
                          f"{_step_num_text(arrays['step_num'][last_row])}): {why}; that step was left out")
            keep[last_row] = False
            dropped_steps.append((host, last))
            continue
        after = ops & keep & (step < 0) & (starts >= ends[last_row])
        if after.any():
            damage.append(f"{part.host}: {int(after.sum())} op events after the last step marker lie outside "
                          "every step (the capture cut a step before its marker was recorded); they are not "
                          "counted in any step")
    if keep.all():
        return None, step
    # Events of a left-out step belong to no step; later steps of its host move down one.
    for host, gone in dropped_steps:
        on = hosts == host
        step = np.where(on & (step == gone), -1, np.where(on & (step > gone), step - 1, step))
    return keep, step[keep]


def _step_num_text(value) -> str:
    return str(int(value)) if np.isfinite(value) else "?"
