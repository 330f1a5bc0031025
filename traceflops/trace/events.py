"""Trace stage: the events table's columns (the contract every trace source fills), and the `Trace` that holds it.

A trace source (source.py: the XSpace reader is the first) turns its files into
a `Trace` whose `events` DataFrame has one row per event we can use, with these
columns, in this order (EVENT_COLUMNS). The join reads only this table (and the
source's naming rules, naming.py), never a file format. Source-neutral columns
are filled by every source; the XSpace-only ones (XSPACE_ONLY_COLUMNS) name
XSpace stats and XLA ids, and a source without them leaves them missing.

| column | source | meaning |
| --- | --- | --- |
| host | neutral | host name of the file the event came from |
| plane | neutral | where it ran: XSpace's plane name, e.g. `/host:CPU`, `/device:GPU:0` (`/device:` marks a device) |
| line | neutral | the thread or GPU stream (XSpace's line name) |
| kind | neutral | one of KINDS: `op` (a framework op on a host executor thread), `xla` (an XLA instruction run on the host, e.g. inside a `jit_compile` function), `kernel` (a device kernel), `memcpy`, `step` (a step marker, or, on a host without one, a Keras step function call), `framework_step` (a Keras step function call on a host that has step markers) |
| name | neutral | the event's full name (`<node>:<Type>` for ops, the kernel's symbol for kernels) |
| op_name, op_type | neutral | the framework node and its kernel type (for kernels: of the op that launched them) |
| start_ps, duration_ps | neutral | start and duration in picoseconds, on the trace's clock (TensorFlow counts from the profile's start; a trace with timestamps since the epoch is moved there so that they fit int64) |
| self_ps | neutral | duration minus the op and xla events nested inside it on the same thread (a call op that runs a nested function keeps only its own overhead) |
| step | neutral | index of the profiled step the event falls in (-1: outside every step) |
| shape | neutral | the recorded input shapes, e.g. `(float[4,32];float[32,8])`, or missing |
| step_num | neutral | the step number of a `step` row |
| correlation_id | neutral | the id pairing a device event with the host call that launched it, where present |
| kernel_details, memcpy_details | XSpace | XSpace's device-event stats of these names, where present |
| hlo_op, hlo_module, program_id | XSpace | the XLA instruction, module and program a device event ran, where present |

Repeated strings (host, plane, line, kind, name, op_name, op_type, shape) are
pandas categoricals whose categories always include "" (so `fillna("")`
works); a missing shape is NaN. kernel_details, memcpy_details, hlo_op and
hlo_module are objects (str, None where absent; a column no event has is an
empty categorical, all NaN, to save memory). step_num, correlation_id and
program_id are float64, NaN where absent; correlation_id and program_id are
ids, so a value that is not a whole number reads as NaN.

The join prices the kinds of WORK_KINDS (HOST_WORK_KINDS on host threads,
DEVICE_WORK_KINDS on devices) and times steps by the `step` rows.

XSpace: events that are none of these kinds (executor bookkeeping, thread-pool
markers) are dropped. Derived lines that XProf adds to device planes
("TensorFlow Ops", "XLA Ops", "Steps"...) repeat the stream events and are
skipped. The table is built by `load.py`; see there for what of a damaged
trace is left out.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

EVENT_COLUMNS = ["host", "plane", "line", "kind", "name", "op_name", "op_type", "start_ps",
                 "duration_ps", "self_ps", "step", "shape", "step_num", "correlation_id", "kernel_details",
                 "memcpy_details", "hlo_op", "hlo_module", "program_id"]
# The columns only an XSpace trace fills (its stats, XLA's ids); every source fills the others.
XSPACE_ONLY_COLUMNS = ("kernel_details", "memcpy_details", "hlo_op", "hlo_module", "program_id")

# The XSpace parser's vocabulary (space.py, planes.py): the stats it reads, and how.
_STAT_COLUMNS = {"shape", "step_num", "correlation_id", "kernel_details", "memcpy_details",
                 "hlo_op", "hlo_module", "program_id"}
STRING_STATS = ("shape", "kernel_details", "memcpy_details", "hlo_op", "hlo_module")
NUMBER_STATS = ("step_num", "correlation_id", "program_id")
# Number stats that are ids: a value that is not a whole number reads as NaN.
ID_STATS = ("correlation_id", "program_id")
# Categorical columns; the device-event string stats stay plain objects (None where absent), so that
# `.map` on them returns plain values (a categorical maps one-to-one into another categorical).
CATEGORICAL_COLUMNS = ("host", "plane", "line", "kind", "name", "op_name", "op_type", "shape")
OBJECT_COLUMNS = ("kernel_details", "memcpy_details", "hlo_op", "hlo_module")
# Stats that name the TensorFlow op behind a device kernel, best first.
LAUNCHER_STATS = ("tf_op", "level 0", "annotation")
DERIVED_DEVICE_LINES = {"TensorFlow Ops", "TensorFlow Name Scope", "XLA Ops", "XLA Modules",
                        "Steps", "XLA TraceMe", "Launch Stats", "Source code", "SparseCore Ops"}
# The contract's kinds (module doc): every source's events are of these.
KINDS = ("op", "xla", "kernel", "memcpy", "step", "framework_step")
# The kinds' codes in the parser's arrays (planes.py, timeline.py): their index in KINDS.
KIND_OP, KIND_XLA, KIND_KERNEL, KIND_MEMCPY, KIND_STEP, KIND_FRAMEWORK_STEP = range(6)
# The kinds of work the join prices, by where they run, and the kind that marks steps.
HOST_WORK_KINDS = ("op", "xla")
DEVICE_WORK_KINDS = ("kernel", "memcpy")
WORK_KINDS = HOST_WORK_KINDS + DEVICE_WORK_KINDS
STEP_KIND = "step"
# The functions Keras 3 runs once per step (TF backend, python line): `fit`, `evaluate`, `predict`. A host
# with no step marker of its own (`traceflops_step`, `tf.profiler.experimental.Trace(..., step_num=)`)
# takes these as its steps; otherwise they stay `framework_step` rows, which no table reads.
FRAMEWORK_STEP_FUNCTIONS = ("multi_step_on_iterator", "one_step_on_iterator", "one_step_on_data",
                            "one_step_on_data_distributed", "multi_step_on_data")
# Event stats the parser reads: the stat columns, the launcher stats, and `_r` (a root TraceMe: steps).
WANTED_EVENT_STATS = _STAT_COLUMNS | set(LAUNCHER_STATS) | {"_r"}


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
            self.note_damaged_modules(self._hlo_modules)
        return self._hlo_modules

    def note_damaged_modules(self, modules) -> None:
        """A warning (and a damage entry) per HLO module that did not parse (`HloModules.damaged`)."""
        for warning in getattr(modules, "damaged", ()):
            if warning not in self.damage:
                self.damage.append(warning)
                self.warnings.append(warning)


def text_mask(column: "pd.Series", test: Callable[[str], bool]) -> np.ndarray:
    """`test` of every value of a text column as a boolean array, called once per distinct value, not once
    per row: the events table's text columns are categoricals of a few thousand names over millions of rows,
    and `.astype(str).str...` on them builds a Python string per row. Missing values test False."""
    import pandas as pd  # here, not above: the parsing modules load without pandas (parallel.py)
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, uniques = column.cat.codes.to_numpy(), column.cat.categories
    else:
        codes, uniques = pd.factorize(column, use_na_sentinel=True)
    hits = np.fromiter((bool(test(str(value))) for value in uniques), dtype=bool, count=len(uniques))
    return np.append(hits, False)[codes]  # code -1 (missing) reads the appended False
