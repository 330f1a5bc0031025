"""Building XSpace traces by hand: one builder for the tests and the synthetic-trace generator.

    space = XSpaceBuilder(hostnames=["h"])
    host = space.plane("/host:CPU")
    thread = host.line(1, "tf_Compute/1", timestamp_ns=1000)
    thread.event("a/MatMul:MatMul", 0, 5_000, display_name="MatMul",
                 stats={"shape": Ref("(float[2,3];float[3,4])")})
    space.to_bytes()  # or space.space, the XSpace message

Event and stat metadata are interned per plane, as the profiler does: the first
use of a name gets the next id (1, 2, ...). Stat names and interned string
values (`Ref`) share the stat metadata id space, as in real traces. An explicit
`id` (`event_metadata(name, id=7)`, `stat_metadata(name, id=3)`) or a raw
integer metadata id (an event's `metadata_id=`, an int stat key) writes exactly
that id, dangling or not, for damaged and fuzzed traces.

Stat values by Python type: `int` int64, `float` double, `str` str, `bytes`
bytes, `Uint64(v)` uint64, `Ref(name)` ref_value (a stat metadata id, the name
interned; `Ref(int)` a raw id), `None` no value at all.

`synthetic.py` encodes its millions of events straight to wire format but
takes its metadata ids from `Metadata`, the same interning. The wire helpers
`varint` and `field_bytes` are here for tests that splice bytes by hand.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, NamedTuple, Optional, Union

from ..trace import xplane_schema


class Uint64(NamedTuple):
    """A stat value written as `uint64_value`."""
    value: int


class Ref(NamedTuple):
    """A stat value written as `ref_value`: a stat metadata name (interned) or a raw id."""
    target: Union[str, int]


Stats = Union[Mapping, Iterable, None]


def varint(value: int) -> bytes:
    """`value` as a protobuf varint (negative numbers as their 64-bit two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_bytes(number: int, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return varint((number << 3) | 2) + varint(len(payload)) + payload


class Metadata:
    """The event and stat metadata of one XPlane message, interned by name."""

    def __init__(self, plane):
        self.plane = plane
        self.stat_ids: dict = {}
        self.event_ids: dict = {}

    def stat(self, name: str, id: Optional[int] = None) -> int:
        """The stat metadata id of `name`, added on first use (or written at `id`)."""
        if id is None:
            if name in self.stat_ids:
                return self.stat_ids[name]
            id = len(self.plane.stat_metadata) + 1
        self.stat_ids.setdefault(name, id)
        entry = self.plane.stat_metadata[id]
        entry.id, entry.name = id, name
        return id

    def event(self, name: str, display_name: str = "", id: Optional[int] = None, stats: Stats = None) -> int:
        """The event metadata id of `name`, added on first use (or written at `id`) with its stats."""
        if id is None:
            if name in self.event_ids:
                return self.event_ids[name]
            id = len(self.plane.event_metadata) + 1
        self.event_ids.setdefault(name, id)
        entry = self.plane.event_metadata[id]
        entry.id, entry.name = id, name
        if display_name:
            entry.display_name = display_name
        self.add_stats(entry.stats, stats)
        return id

    def set_stat(self, stat, key, value) -> None:
        """Fill an XStat message: `key` a stat name (interned) or a raw metadata id."""
        stat.metadata_id = key if isinstance(key, int) else self.stat(key)
        if value is None:
            return
        if isinstance(value, Uint64):
            stat.uint64_value = value.value
        elif isinstance(value, Ref):
            stat.ref_value = value.target if isinstance(value.target, int) else self.stat(value.target)
        elif isinstance(value, bool) or not isinstance(value, (int, float, str, bytes)):
            raise TypeError(f"stat {key!r}: no XStat value type for {type(value).__name__}")
        elif isinstance(value, int):
            stat.int64_value = value
        elif isinstance(value, float):
            stat.double_value = value
        elif isinstance(value, str):
            stat.str_value = value
        else:
            stat.bytes_value = value

    def add_stats(self, repeated, stats: Stats) -> None:
        """Append `stats` (a mapping, or (key, value) pairs) to a repeated XStat field."""
        items = stats.items() if isinstance(stats, Mapping) else (stats or ())
        for key, value in items:
            self.set_stat(repeated.add(), key, value)


class LineBuilder:
    """Events of one XLine; event metadata interned in its plane."""

    def __init__(self, line, metadata: Metadata):
        self.line = line
        self.metadata = metadata

    def event(self, name: str = "", offset_ps: Optional[int] = None, duration_ps: int = 0, stats: Stats = None,
              display_name: str = "", metadata_id: Optional[int] = None, num_occurrences: Optional[int] = None):
        """Add an event named `name` (or with the raw `metadata_id`); returns the XEvent message."""
        if metadata_id is None:
            metadata_id = self.metadata.event(name, display_name)
        event = self.line.events.add(metadata_id=metadata_id, duration_ps=duration_ps)
        if offset_ps is not None:
            event.offset_ps = offset_ps
        if num_occurrences is not None:
            event.num_occurrences = num_occurrences
        self.metadata.add_stats(event.stats, stats)
        return event


class PlaneBuilder:
    """One XPlane message (inside a space, or on its own): lines, stats and interned metadata."""

    def __init__(self, plane, stats: Stats = None):
        self.plane = plane
        self.metadata = Metadata(plane)
        self.stats(stats)

    @classmethod
    def standalone(cls, name: str, id: int = 0, stats: Stats = None) -> "PlaneBuilder":
        return cls(xplane_schema.XPlane(id=id, name=name), stats)

    def stats(self, stats: Stats) -> None:
        """Add plane stats (device properties, profile times...)."""
        self.metadata.add_stats(self.plane.stats, stats)

    def stat_metadata(self, name: str, id: Optional[int] = None) -> int:
        return self.metadata.stat(name, id)

    def event_metadata(self, name: str, display_name: str = "", id: Optional[int] = None,
                       stats: Stats = None) -> int:
        return self.metadata.event(name, display_name, id, stats)

    def line(self, id: int, name: str, timestamp_ns: int = 0, **fields) -> LineBuilder:
        """A new XLine (`fields`: display_name, duration_ps, display_id)."""
        return LineBuilder(self.plane.lines.add(id=id, name=name, timestamp_ns=timestamp_ns, **fields),
                           self.metadata)


class XSpaceBuilder:
    """An XSpace message built plane by plane; `space` is the message, `to_bytes()` its wire form."""

    def __init__(self, hostnames: Iterable[str] = (), errors: Iterable[str] = (), warnings: Iterable[str] = ()):
        self.space = xplane_schema.XSpace(hostnames=list(hostnames), errors=list(errors), warnings=list(warnings))

    def plane(self, name: str, stats: Stats = None, id: Optional[int] = None) -> PlaneBuilder:
        """A new plane; its id is its position unless given."""
        plane = self.space.planes.add(id=len(self.space.planes) if id is None else id, name=name)
        return PlaneBuilder(plane, stats)

    def to_bytes(self) -> bytes:
        return self.space.SerializeToString()

    def write(self, path) -> Path:
        """Write the space to `path` (parents created); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.to_bytes())
        return path
