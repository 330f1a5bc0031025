"""Trace stage: protobuf wire format, decoded with numpy for many messages at once.

How it is fast: protobuf (upb) parses the file with the events of each line
declared as opaque `bytes`, so the millions of XEvent messages are never
turned into Python objects; their bytes are joined into one buffer and
decoded with numpy, field by field for all events at once (a varint is read
as one unaligned 64-bit word and its 7-bit groups are compacted with masks).
Stats are decoded the same way and only those we keep are turned into
strings, once per distinct value (`planes.py`). Several large files are
parsed in parallel processes (`parallel.py`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class _Bad(Exception):
    """Malformed protobuf bytes inside one message."""


_HI = np.uint64(0x8080808080808080)
_LO7 = np.uint64(0x7F7F7F7F7F7F7F7F)
_M1, _K1 = np.uint64(0x7F007F007F007F00), np.uint64(0x007F007F007F007F)
_M2, _K2 = np.uint64(0x3FFF00003FFF0000), np.uint64(0x00003FFF00003FFF)
_M3, _K3 = np.uint64(0x0FFFFFFF00000000), np.uint64(0x000000000FFFFFFF)
_ONE = np.uint64(1)


class Wire:
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



def _lockstep(wire: Wire, starts: np.ndarray, ends: np.ndarray, handle, finish_one, straggle: int = 48):
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
            # A few long messages left: numpy's per-call cost outweighs the work, finish them in Python.
            for i, a, b in zip(index.tolist(), pos.tolist(), end.tolist()):
                try:
                    finish_one(i, _py_fields(wire.padded, a, b), round_)
                except _Bad:
                    bad[i] = True
            break
        new = _one_field(wire, index, pos, end, handle, round_)
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


def _one_field(wire: Wire, index: np.ndarray, pos: np.ndarray, end: np.ndarray, handle, round_: int):
    """One round of `_lockstep`: read the field at `pos` of every message; positions after it."""
    first = wire.u8[pos]
    ok = None
    if (first >= 0x80).any():
        tags, after, ok = wire.varint(pos)
        values = np.unique(tags)
    else:
        tags, after = first, pos + 1
        values = np.flatnonzero(np.bincount(tags, minlength=256))
    if len(values) == 1:  # every message at the same field: no grouping needed
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
        if number == 0 or wire_type in (3, 4, 6, 7):  # field 0 and groups are malformed here
            moved = e + 1
        else:
            moved = handle(number, wire_type, which, q, e, round_)
        if hit is None:
            new = moved
        else:
            new[hit] = moved
    if ok is not None:
        new = np.where(ok, new, end + 1)
    return new


def _skip(wire: Wire, wire_type: int, q: np.ndarray, ends: np.ndarray):
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

@dataclass
class DecodedEvents:
    """The XEvent fields of many messages (int64, one entry per message), and the spans of their stats.

    Stats come in decode order: rounds ascending, so that where an event has a
    stat twice, the later one comes later; within one round an event appears once.
    """
    meta_id: np.ndarray
    offset_ps: np.ndarray
    duration_ps: np.ndarray
    bad: np.ndarray  # malformed bytes
    stat_event: np.ndarray  # per stat: the index of its event
    stat_start: np.ndarray  # per stat: its message's span in the buffer
    stat_end: np.ndarray
    stat_round: np.ndarray  # per stat: the decode round it was found in


@dataclass
class DecodedStats:
    """The XStat fields of many messages: metadata_id, and the value as its field number (`kind`:
    0 none, 2 double, 3 uint64, 4 int64, 5 str, 6 bytes, 7 ref), its raw 64 bits, or its span."""
    meta_id: np.ndarray
    kind: np.ndarray
    raw: np.ndarray
    start: np.ndarray
    end: np.ndarray
    bad: np.ndarray


def decode_events(wire: Wire, starts: np.ndarray, ends: np.ndarray) -> DecodedEvents:
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
    return DecodedEvents(meta.view(np.int64), offset.view(np.int64), duration.view(np.int64), bad,
                         *_joined_stat_parts(stat_parts))


def _joined_stat_parts(stat_parts: list):
    """(event, start, end, round) arrays of every stat, in decode order."""
    if not stat_parts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty, np.zeros(0, dtype=np.int32)
    stat_parts.sort(key=lambda part: part[3])  # stable: rounds in order, so later stats win
    return (np.concatenate([p[0] for p in stat_parts]), np.concatenate([p[1] for p in stat_parts]),
            np.concatenate([p[2] for p in stat_parts]),
            np.concatenate([np.full(len(p[0]), p[3], dtype=np.int32) for p in stat_parts]))


def decode_stats(wire: Wire, starts: np.ndarray, ends: np.ndarray) -> DecodedStats:
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
    return DecodedStats(meta.view(np.int64), kind, raw, span_start, span_end, bad)
