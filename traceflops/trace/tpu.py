"""Trace stage, TPU planes: which lines of a `/device:TPU:N` plane are the executed HLO, and what their events name.

XProf reads a TPU plane differently from a GPU one: its "XLA Ops" line is not
derived from stream events (a TPU has no streams) but is the record of what
ran, one event per executed HLO instruction, whose metadata's display name is
the instruction and whose `program_id` stat names the program. The "Async XLA
Ops" line repeats the asynchronous pairs (`copy-start` ... `copy-done`) as
overlapping spans: counting them would add up time that overlaps the
instructions' own (and each other), so it is skipped. The program's module
name comes from the metadata of the "XLA Modules" line (`jit_f(12190760917235803885)`).
"""
from __future__ import annotations

import re

TPU_PLANE_PREFIX = "/device:TPU:"
EXECUTED_LINE = "XLA Ops"
MODULES_LINE = "XLA Modules"
# Lines of a TPU plane that repeat or summarise the executed instructions.
SKIPPED_LINES = {"Async XLA Ops", "XLA Modules", "XLA TraceMe", "Steps", "Overlay", "SparseCore Ops"}
_MODULE_EVENT = re.compile(r"^(?P<name>[^\s(]+)\((?P<id>\d+)\)$")
UINT64_MASK = (1 << 64) - 1


def is_tpu_plane(plane_name: str) -> bool:
    return str(plane_name).startswith(TPU_PLANE_PREFIX)


def as_program_id(value) -> int:
    """A program id as an unsigned 64-bit integer: XLA's module ids are read signed from the metadata
    plane's map keys (-6255983156473747731) and unsigned from event stats (12190760917235803885)."""
    return int(value) & UINT64_MASK


def keeps_line(line_name: str) -> bool:
    """Whether a TPU plane's line holds executed work: "XLA Ops", and any line of a layout not known here
    (its events are kernels, as on any device), not the lines that repeat or summarise them."""
    return line_name == EXECUTED_LINE or line_name not in SKIPPED_LINES


def module_names(plane) -> dict:
    """Program id (uint64) -> module name, from the plane's event metadata named as the "XLA Modules"
    line's events are (`jit_f(12190760917235803885)`; the events themselves stay bytes here)."""
    out = {}
    for meta in plane.event_metadata.values():
        found = _MODULE_EVENT.match(meta.name or "")
        if found:
            out[as_program_id(found["id"])] = found["name"]
    return out


def instruction_stats(meta, stats: dict, modules: dict) -> dict:
    """The wanted stats of one "XLA Ops" event metadata (one with a `program_id` stat), with the instruction
    (`hlo_op`: its display name) and its module (`hlo_module`, by program id) filled in where the metadata
    does not say them; other metadata's stats as they are."""
    out = dict(stats)
    program = out.get("program_id")
    if program is None:
        return out
    if not out.get("hlo_op") and meta.display_name:
        out["hlo_op"] = meta.display_name
    if not out.get("hlo_module"):
        try:
            name = modules.get(as_program_id(program))
        except (TypeError, ValueError, OverflowError):  # a program id stat that is no integer
            name = None
        if name:
            out["hlo_module"] = name
    return out


def trace_op_flops(space) -> dict:
    """The trace's own per-instruction counts on TPU planes: {(program id (uint64), instruction): flops},
    from the `flops` stat of the "XLA Ops" line's event metadata (what XProf's hlo_stats reports), for a
    cross-check beside ours; `space` is an XSpace message (`read_xspace`)."""
    out = {}
    for plane in space.planes:
        if not is_tpu_plane(plane.name):
            continue
        names = {key: meta.name for key, meta in plane.stat_metadata.items()}
        for meta in plane.event_metadata.values():
            values = {names.get(stat.metadata_id): stat for stat in meta.stats}
            program, flops = values.get("program_id"), values.get("flops")
            if program is None or flops is None or not meta.display_name:
                continue
            pid = program.uint64_value or program.int64_value
            count = flops.uint64_value or flops.int64_value or int(flops.double_value)
            out[(as_program_id(pid), meta.display_name)] = int(count)
    return out
