"""Trace stage: the optimized HLO modules an XLA trace carries in its `/host:metadata` plane.

Only the metadata plane is parsed (events stay bytes), so reading modules does
not parse a large trace a second time.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import DecodeError

from . import hlo_schema
from .files import find_trace_files, read_xspace_metadata

METADATA_PLANE = "/host:metadata"
HLO_PROTO_STAT = "Hlo Proto"


@dataclass
class HloModule:
    program_id: int
    name: str
    proto: object  # hlo_schema.HloModuleProto
    host: str = ""


class HloModules(list):
    """The HLO modules read (a list), and `damaged`: one warning per module whose proto did not parse."""
    def __init__(self, modules=(), damaged=()):
        super().__init__(modules)
        self.damaged = list(damaged)


def damaged_module_warning(host: str, name: str, error: Exception) -> str:
    where = f"{host}: " if host else ""
    return (f"{where}HLO module {name} is damaged and was not read ({type(error).__name__}: {error}): "
            "its instructions are unknown, the rest is priced")


def _spaces(source):
    """(host, XSpace) pairs from a path, a list of paths, a Trace or an XSpace message."""
    if hasattr(source, "events") and hasattr(source, "paths"):  # a traceflops Trace
        for path in source.paths:
            yield from _spaces(path)
        return
    if hasattr(source, "planes") and hasattr(source, "SerializeToString"):  # an XSpace message
        yield (source.hostnames[0] if source.hostnames else ""), source
        return
    if isinstance(source, (list, tuple)):
        for item in source:
            yield from _spaces(item)
        return
    for path in find_trace_files(source):
        # Only the metadata plane is read: events stay bytes, so a large trace is not parsed twice over.
        space = read_xspace_metadata(path)
        yield (space.hostnames[0] if space.hostnames else Path(path).name.split(".xplane.pb")[0]), space


def read_hlo_modules(source) -> HloModules:
    """Every HLO module in the `/host:metadata` planes of `source`, once per (program id, name); a module
    whose proto does not parse is left out and named in `.damaged` (its instructions stay unknown)."""
    modules, seen = HloModules(), set()
    for host, space in _spaces(source):
        for plane in space.planes:
            if plane.name != METADATA_PLANE:
                continue
            stat_names = {key: meta.name for key, meta in plane.stat_metadata.items()}
            for key, meta in plane.event_metadata.items():
                for stat in meta.stats:
                    if stat_names.get(stat.metadata_id) != HLO_PROTO_STAT or not stat.bytes_value:
                        continue
                    module = _parse_module(stat.bytes_value, host, meta.name or str(key), modules.damaged)
                    if module is None:
                        continue
                    program_id = int(key) if key else int(module.id)
                    ident = (program_id, module.name)
                    if ident in seen:
                        continue
                    seen.add(ident)
                    modules.append(HloModule(program_id, module.name, module, host))
    return modules


def _parse_module(data: bytes, host: str, name: str, damaged: list):
    """The HloModuleProto in an `Hlo Proto` stat, or None (and a warning in `damaged`) when it does not parse."""
    proto = hlo_schema.HloProto()
    try:
        proto.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        warning = damaged_module_warning(host, name, exc)
        if warning not in damaged:
            damaged.append(warning)
        return None
    return proto.hlo_module
