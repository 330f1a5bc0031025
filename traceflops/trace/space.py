"""Trace stage: what the parser needs from one XSpace message, copied out of it.

The parsed message holds a copy of every event's bytes; once its planes are
copied into plain Python and numpy values (`SpaceContents`), it can be let go
before the events are decoded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from . import tpu
from .events import DERIVED_DEVICE_LINES, WANTED_EVENT_STATS, PlaneInfo
from .values import StringTable, as_number, split_op_event, stats_dict

_INT64_MAX = np.iinfo(np.int64).max
# Events of a line are joined into pieces of this many, so that no one bytes join is huge.
_JOIN_EVENTS = 1 << 16


@dataclass
class PlaneInput:
    """Everything of one plane that the vectorised pass needs, taken out of the protobuf message."""
    name: str
    is_host: bool
    stat_names: dict  # stat metadata id -> name
    meta_keys: np.ndarray  # event metadata ids, sorted
    meta_name: list  # per event metadata (in `meta_keys` order): its name,
    meta_op: list  # (op name, op type) where it names a TensorFlow op on a host plane, else None,
    meta_stats: list  # and its wanted stats as a dict
    data: Optional[bytes]  # every event's bytes, one after another, then 16 zero bytes
    sizes: Optional[np.ndarray]  # per event: the length of its bytes
    line_of: np.ndarray  # per event: the index of its line
    bases: list  # per line: its timestamp (ns)
    line_codes: np.ndarray  # per line: the string code of its name
    line_durations: list  # per line: its duration (ps)


@dataclass
class SpaceContents:
    """Plain Python/numpy copies of what the parser needs from one XSpace message."""
    host: str
    errors: list
    warnings: list
    damage: list = field(default_factory=list)
    planes: list = field(default_factory=list)  # PlaneInfo of every plane
    profile_options: dict = field(default_factory=dict)
    capture_ps: Optional[int] = None  # how long the capture ran, from the profile's start/stop times
    plane_inputs: list = field(default_factory=list)  # PlaneInput of host and device planes with events


def _host_name(path: Path, space) -> str:
    if space.hostnames:
        return space.hostnames[0]
    return path.name.split(".xplane.pb")[0]


def space_contents(path: Path, space, strings: StringTable, share: tuple = (0, 1, 1)) -> SpaceContents:
    """Plain Python/numpy copies of what the parser needs from the XSpace message.

    `share` (a, b, n): the plane inputs hold the bytes of the events from a/n to b/n of them, in file
    order (and every plane's and line's lookups whatever the share), so that processes can split a file."""
    host = _host_name(path, space)
    profile_start = None
    out = SpaceContents(host, [f"{host}: {e}" for e in space.errors], [f"{host}: {w}" for w in space.warnings])
    with_events = []  # (plane, stat_names, kept lines, is_host) of the planes whose events are decoded
    for plane in space.planes:
        stat_names = {key: meta.name for key, meta in plane.stat_metadata.items()}
        plane_stats = stats_dict(plane.stats, stat_names)
        if "profile_options" in plane_stats:
            out.profile_options[host] = plane_stats["profile_options"]
        start, stop = plane_stats.get("profile_start_time"), plane_stats.get("profile_stop_time")
        if isinstance(start, int) and isinstance(stop, int) and 0 <= start < stop:
            out.capture_ps = (stop - start) * 1000
            profile_start = start
        out.damage.extend(_dropped_events(host, plane.name, plane_stats))
        is_device = plane.name.startswith("/device:")
        is_host = plane.name.startswith("/host:CPU")
        kept_lines, num_events = [], 0
        for line in plane.lines:
            if tpu.is_tpu_plane(plane.name):
                if not tpu.keeps_line(line.name):  # a TPU's "XLA Ops" line is what ran (tpu.py)
                    continue
            elif is_device and (line.name in DERIVED_DEVICE_LINES or line.display_name in DERIVED_DEVICE_LINES):
                continue
            num_events += len(line.events)
            if (is_device or is_host) and len(line.events):
                kept_lines.append(line)
        out.planes.append(PlaneInfo(host, plane.name, plane_stats, num_events))
        if kept_lines:
            with_events.append((plane, stat_names, kept_lines, is_host))
    total = sum(len(line.events) for *_, lines, _ in with_events for line in lines)
    first, last, parts = share
    window, offset = (total * first // parts, total * last // parts), 0
    # A trace JAX recorded (its metadata plane says `jax_version`) runs no TensorFlow op: its host events
    # named `a:B` are runtime TraceMes (PJRT's `ThenExecuteCallback:GetEventForComputeStreamSyncPoint`).
    tf_ops = not any("jax_version" in info.stats for info in out.planes)
    for plane, stat_names, kept_lines, is_host in with_events:
        out.plane_inputs.append(_plane_input(plane, stat_names, kept_lines, is_host, strings, window, offset,
                                             tf_ops))
        offset += sum(len(line.events) for line in kept_lines)
    _rebase(out.plane_inputs, profile_start)
    return out


def _dropped_events(host: str, plane_name: str, plane_stats: dict) -> list:
    """Damage: the events the profiler says it dropped (`dropped_traces` and other `dropped` counters)."""
    out = []
    for name, value in plane_stats.items():
        count = as_number(value)
        if "dropped" in str(name).lower() and count > 0:
            said = f"{count:.0f}" if np.isfinite(count) else str(count)
            out.append(f"{host}: {plane_name or 'a plane'}: the profiler dropped {said} events "
                       f"({name}); the trace is incomplete")
    return out


def _rebase(items: list, profile_start: Optional[int]) -> None:
    """Line timestamps since the epoch (ns) overflow int64 picoseconds: count from the profile's start.

    TensorFlow writes times relative to the profile's start; a trace with absolute
    timestamps is moved there (or to its first line), so that its times fit.
    """
    bases = [b for item in items for b in item.bases]
    if not bases or max(abs(b) for b in bases) <= _INT64_MAX // 4000:
        return
    first = min(bases)
    reference = profile_start if profile_start is not None and 0 <= first - profile_start <= _INT64_MAX // 4000 \
        else first
    for item in items:
        item.bases = [b - reference for b in item.bases]


def _plane_input(plane, stat_names: dict, lines: list, is_host: bool, strings: StringTable, window: tuple,
                 offset: int, tf_ops: bool = True) -> PlaneInput:
    """Everything of one plane that the vectorised pass needs, taken out of the protobuf message: the
    bytes of its events inside `window` (positions among all decoded events; the plane's first is `offset`)."""
    meta_keys = np.array(sorted(plane.event_metadata.keys()), dtype=np.int64)
    meta_name, meta_op, meta_stats = [], [], []
    modules = tpu.module_names(plane) if tpu.is_tpu_plane(plane.name) else None
    for key in meta_keys.tolist():
        meta = plane.event_metadata[key]
        meta_name.append(meta.name)
        meta_op.append(split_op_event(meta.name, meta.display_name) if is_host and tf_ops else None)
        stats = stats_dict(meta.stats, stat_names, WANTED_EVENT_STATS) if meta.stats else {}
        meta_stats.append(tpu.instruction_stats(meta, stats, modules) if modules is not None else stats)
    chunks, sizes, line_of, bases, line_codes, line_ends = [], [], [], [], [], []
    for k, line in enumerate(lines):
        events = line.events
        first, last = max(window[0] - offset, 0), min(window[1] - offset, len(events))
        offset += len(events)
        for i in range(first, last, _JOIN_EVENTS):
            chunk = events[i:min(i + _JOIN_EVENTS, last)]
            sizes.append(np.fromiter(map(len, chunk), dtype=np.int64, count=len(chunk)))
            chunks.append(b"".join(chunk))
        line_of.append(np.full(max(last - first, 0), k, dtype=np.int32))
        bases.append(line.timestamp_ns)
        line_codes.append(strings(line.display_name or line.name))
        line_ends.append(line.duration_ps)
    chunks.append(bytes(16))  # padding for the 64-bit reads near the end
    sizes = np.concatenate(sizes) if sizes else np.zeros(0, dtype=np.int64)  # a share may hold none of a plane
    return PlaneInput(name=plane.name, is_host=is_host, stat_names=stat_names, meta_keys=meta_keys,
                      meta_name=meta_name, meta_op=meta_op, meta_stats=meta_stats, data=b"".join(chunks),
                      sizes=sizes, line_of=np.concatenate(line_of), bases=bases,
                      line_codes=np.array(line_codes, dtype=np.int32), line_durations=line_ends)
