"""Join, step 1: every execution in the chosen steps becomes one kind of priced record.

Whatever its source, an execution group is described (graph/shapes stage or
HLO index), priced by `costs.price.price`, and lands in one `records` frame;
the ops, kernels and memcpy tables are all built from it (ops_table.py,
kernels.py), the way XProf's converters turn every source into one
op-metrics database.

Its columns are the schema's `records` table (`traceflops/schema.py`, rendered
in docs/design.md). Which kinds of event become records, and how, is `SOURCES`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import pandas as pd

from ..costs import UNKNOWN, ZERO, Cost
from ..costs.price import HloIndex, price
from ..graph import LayerIndex
from ..graph.phases import FORWARD, is_jax_name, phase_of
from ..graph.resolve import describe_tf_op, describe_tf_ops
from ..schema import cast_counts, columns, cost_columns, record_defaults
from ..trace.events import HOST_WORK_KINDS, text_mask

RECORD_COLUMNS = columns("records")
_COST_FIELDS = cost_columns()
_DEFAULTS = record_defaults()
# Runtime copy / fill kernels (HIP implements some memcpys and memsets as kernels).
_RUNTIME_COPY_KERNEL = re.compile(r"^__amd_rocclr_(copy|fill)", re.IGNORECASE)
_SIZE = re.compile(r"(?:^|\s)size:(\d+)")
_NO_HLO_INSTRUCTION = {
    "xla": "no HLO instruction of this name in the trace's modules",
    "kernel": "HLO instruction not found in the trace's HLO modules",
}


def short_device(device: str, plane: str) -> str:
    """`/job:.../device:CPU:0` or `/device:GPU:4` to `CPU:0` / `GPU:4`; host planes are CPU:0."""
    text = device or plane
    if "device:" in text:
        return text.split("device:")[-1]
    if text.startswith("/host:CPU"):
        return "CPU:0"
    return text


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _format(specs) -> str:
    return ";".join("" if s is None else str(s) for s in specs)


def _key_codes(values: pd.Series):
    """(codes, texts) of one key column: int64 codes into distinct texts, with anything missing or not a
    string as "" (program_id keeps its numbers, NaN as a group of its own)."""
    if values.name == "program_id":
        codes, uniques = pd.factorize(values.to_numpy(), use_na_sentinel=False)
        return codes.astype(np.int64, copy=False), np.asarray(uniques, dtype=float)
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes, categories = values.cat.codes.to_numpy(), values.cat.categories
    else:
        codes, categories = pd.factorize(values.to_numpy(dtype=object), use_na_sentinel=True)
    # Texts equal once decoded ("" and NaN, a category "" and a missing value) share one code.
    canon, uniques = pd.factorize(np.array([_text(c) for c in categories] + [""], dtype=object).astype(str),
                                  sort=False)
    codes = codes.astype(np.int64)  # a copy: changed in place below
    if not np.array_equal(canon[:-1], np.arange(len(categories))):
        codes = canon[codes]  # (code -1 reads canon[-1], the code of "")
    else:
        codes[codes < 0] = canon[-1]
    return codes, np.asarray(uniques, dtype=object)


def _group_ids(frame: pd.DataFrame, keys: list):
    """Group id of every row (in order of first appearance) and the key values of every group."""
    combined = np.zeros(len(frame), dtype=np.int64)
    size = 1
    decoded = []
    for key in keys:
        codes, texts = _key_codes(frame[key])
        if size * (len(texts) + 1) >= 2 ** 62:  # keep the mixed-radix key in int64
            combined, uniques = pd.factorize(combined, sort=False)
            size = len(uniques)
        combined *= len(texts) + 1  # in place: millions of rows, no temporaries
        combined += codes
        size *= len(texts) + 1
        decoded.append((key, codes, texts))
    ids, uniques = pd.factorize(combined, sort=False)
    return ids, len(uniques), decoded


def _first_rows(ids: np.ndarray, count: int) -> np.ndarray:
    """The first row of each group (ids number groups in order of first appearance)."""
    first = np.empty(count, dtype=np.int64)
    positions = np.arange(len(ids), dtype=np.int64)
    first[ids[::-1]] = positions[::-1]  # the last write of a repeated index wins: the earliest row
    return first


def _timed_groups(events: pd.DataFrame, keys: list, time_column: str, first: tuple = (),
                  sums: tuple = ()) -> pd.DataFrame:
    """Group events by `keys`: occurrences and total/min/max time in picoseconds, the first value
    of each `first` column, and the sum of each `sums` column (NaN when any value is missing).
    Groups come in order of first appearance; text keys are strings ("" where missing)."""
    ids, count, decoded = _group_ids(events, keys)
    times = events[time_column].to_numpy(dtype=np.int64)
    first_rows = _first_rows(ids, count)
    table = {key: texts[codes[first_rows]] if len(first_rows) else texts[:0] for key, codes, texts in decoded}
    # Dense group ids: numpy's counting and `at` reductions, not a pandas groupby (a third of the time).
    table.update(occurrences=np.bincount(ids, minlength=count), total_ps=_at(np.add, ids, times, count, 0),
                 min_ps=_at(np.minimum, ids, times, count, np.iinfo(np.int64).max),
                 max_ps=_at(np.maximum, ids, times, count, np.iinfo(np.int64).min))
    for column in first:
        table[column] = events[column].to_numpy()[first_rows]
    for column in sums:
        values = events[column].to_numpy(dtype=np.float64)
        missing = np.isnan(values)
        total = np.bincount(ids, weights=np.where(missing, 0.0, values), minlength=count).astype(np.float64)
        total[np.bincount(ids, weights=missing, minlength=count) > 0] = np.nan  # any missing: unknown
        table[column] = total
    return pd.DataFrame(table)


def _at(ufunc, ids: np.ndarray, values: np.ndarray, count: int, start: int) -> np.ndarray:
    """Per group, `ufunc` reduced over its rows' int64 `values` (exact: no float on the way)."""
    out = np.full(count, start, dtype=np.int64)
    ufunc.at(out, ids, values)
    return out


def _cost_fields(cost: Cost) -> dict:
    """The record columns a `Cost` fills (the schema's `cost` fields)."""
    return {name: getattr(cost, field) for name, field in _COST_FIELDS.items()}


def _base(source: str, group) -> dict:
    """A record of one execution group: the schema's defaults, its source, host and times."""
    return {**_DEFAULTS, "source": source, "host": group.get("host", ""), "occurrences": int(group["occurrences"]),
            "total_ps": group["total_ps"], "min_ps": group["min_ps"], "max_ps": group["max_ps"]}


def _layers(graph) -> LayerIndex:
    return graph.layers if graph is not None else LayerIndex()


_TF_KEYS = ["host", "op_name", "op_type", "plane", "shape"]
_XLA_KEYS = ["host", "hlo_module", "op_name", "plane"]
_MEMCPY_KEYS = ["host", "plane", "line", "name", "op_name", "op_type", "hlo_module", "program_id", "hlo_op"]


def tf_records(ops: pd.DataFrame, graph) -> list:
    """Host TF op executions grouped by (host, op, type, plane, recorded shapes), priced."""
    groups = _timed_groups(ops, _TF_KEYS, "self_ps")
    keys = [(g.op_name, g.op_type, g.shape or None) for g in groups.itertuples(index=False)]
    descriptions = describe_tf_ops(keys, graph)
    records = []
    for group, description in zip(groups.to_dict("records"), descriptions):
        info = description.info
        records.append({**_base("tf", group), "device": short_device(description.device, group["plane"]),
                        "op_name": group["op_name"], "op_type": group["op_type"], "shape": group["shape"],
                        "input_shapes": _format(info.inputs), "output_shapes": _format(info.outputs),
                        "layer": description.layer, **_cost_fields(price(info))})
    return records


def xla_records(xla: pd.DataFrame, index: HloIndex, layers: LayerIndex) -> list:
    """HLO instructions run on the host (XLA:CPU, a `jit_compile` function), priced from their HLO."""
    groups = _timed_groups(xla, _XLA_KEYS, "self_ps")
    records = []
    for group in groups.to_dict("records"):
        op = index.describe(None, group["hlo_module"], group["op_name"])
        cost = price(op, _NO_HLO_INSTRUCTION["xla"])
        records.append({**_base("xla", group), "device": short_device("", group["plane"]),
                        "op_name": group["op_name"], "op_type": op.op_type if op else "",
                        "hlo_module": group["hlo_module"], "framework_op": op.framework_op if op else "",
                        "output_shapes": op.shape if op else "",
                        "layer": (layers.layer_of(op.framework_op) if layers else op.layer) if op else "",
                        **_cost_fields(cost), "source_line": op.source_line if op else ""})
    return records


_KERNEL_KEYS = ["host", "plane", "line", "name", "op_name", "op_type", "shape", "hlo_module", "program_id",
                "hlo_op"]


def _kernel_description(group: dict, index: HloIndex, graph):
    """(unit, op_name, op_type, framework_op, layer, cost) of one kernel group, by what launched it."""
    host, plane = group["host"], group["plane"]
    if group["hlo_op"]:
        program = group["program_id"]
        op = index.describe(program, group["hlo_module"], group["hlo_op"])
        name = group["hlo_op"]
        if op is None:  # a kernel of a CUDA graph (command buffer): its own instruction, by kernel name
            op = index.by_kernel(program, group["hlo_module"], group["name"])
            name = op.instruction.name if op is not None else name
        unit = ("xla", host, plane, group["hlo_module"], program, name)
        cost = price(op, _NO_HLO_INSTRUCTION["kernel"])
        framework = op.framework_op if op else ""
        layer = (_layers(graph).layer_of(framework) if _layers(graph) else op.layer) if op else ""
        return unit, name, op.op_type if op else "", framework, layer, cost
    if not group["op_type"]:  # no launching op: a row of its own, under its kernel's name
        unit = ("none", host, plane, group["name"])
        name = group["op_name"] or group["name"]
        layer = _layers(graph).layer_of(group["op_name"])
        if _RUNTIME_COPY_KERNEL.match(group["name"]):
            return unit, name, "", "", layer, Cost(0, None, None, ZERO, "", "runtime copy/fill kernel")
        return (unit, name, "", "", layer, Cost(None, None, None, UNKNOWN, "", "no launching op recorded"))
    unit = ("tf", host, plane, group["op_name"], group["op_type"])
    description = describe_tf_op(group["op_name"], group["op_type"], group["shape"] or None, graph)
    return unit, group["op_name"], group["op_type"], "", description.layer, price(description.info)


def kernel_records(kernels: pd.DataFrame, index: HloIndex, graph) -> list:
    """Device kernels grouped by (host, device, stream, kernel, launching op, shapes), each priced as
    one execution of its launching op (the split rule in kernels.py then spreads an op over its kernels)."""
    groups = _timed_groups(kernels, _KERNEL_KEYS, "duration_ps", first=("kernel_details",))
    records = []
    for group in groups.to_dict("records"):
        if group["program_id"] is not None and np.isnan(group["program_id"]):
            group["program_id"] = None
        unit, op_name, op_type, framework, layer, cost = _kernel_description(group, index, graph)
        records.append({**_base("kernel", group), "device": short_device("", group["plane"]),
                        "stream": group["line"], "kernel_name": group["name"], "op_name": op_name,
                        "op_type": op_type, "hlo_module": group["hlo_module"], "program_id": group["program_id"],
                        "hlo_op": group["hlo_op"], "framework_op": framework, "shape": group["shape"],
                        "input_shapes": group["shape"], "layer": layer,
                        "kernel_details": group["kernel_details"], "unit": unit, **_cost_fields(cost),
                        "source_line": _source_line(index, group)})
    return records


def _source_line(index: HloIndex, group: dict) -> str:
    if not group["hlo_op"]:
        return ""
    op = (index.describe(group["program_id"], group["hlo_module"], group["hlo_op"])
          or index.by_kernel(group["program_id"], group["hlo_module"], group["name"]))
    return op.source_line if op else ""


def _memcpy_size(text) -> Optional[float]:
    match = _SIZE.search(text) if isinstance(text, str) else None
    return float(match.group(1)) if match else np.nan


def memcpy_records(memcpys: pd.DataFrame, index: Optional[HloIndex] = None) -> list:
    """Memory copies by (host, device, stream, kind, launching op); `total_bytes` sums the sizes in
    each event's `memcpy_details` (NaN when one is missing; then, for a copy an XLA instruction ran as a
    runtime copy kernel, its result's bytes per launch, from the HLO)."""
    missing = {column: np.nan for column in ("hlo_module", "program_id", "hlo_op") if column not in memcpys}
    memcpys = memcpys.assign(total_bytes=memcpys["memcpy_details"].map(_memcpy_size).astype("float64"), **missing)
    groups = _timed_groups(memcpys, _MEMCPY_KEYS, "duration_ps", sums=("total_bytes",))
    records = []
    for group in groups.to_dict("records"):
        program = group["program_id"]
        program = None if program is None or np.isnan(program) else program
        if np.isnan(group["total_bytes"]) and group["hlo_op"] and index is not None:
            op = index.describe(program, group["hlo_module"], group["hlo_op"])
            if op is not None and op.instruction.opcode == "copy":
                group["total_bytes"] = float(op.result_bytes * group["occurrences"])
        records.append({**_base("memcpy", group), "device": short_device("", group["plane"]),
                        "stream": group["line"], "kernel_name": group["name"],
                        "op_name": group["hlo_op"] or group["op_name"],  # an XLA copy: its instruction
                        "op_type": group["op_type"], "hlo_module": group["hlo_module"], "program_id": program,
                        "hlo_op": group["hlo_op"], "total_bytes": group["total_bytes"],
                        **_cost_fields(Cost(0, None, None, ZERO, "", "memory copy"))})
    return records


@dataclass(frozen=True)
class RecordSource:
    """How events of one kind become priced records (where the kind runs is the trace contract's:
    HOST_WORK_KINDS are chosen by their step, device work is kept whole when it has no step marks)."""
    compute: bool  # computation (a trace of nothing but copies has nothing to price)
    columns: list  # the event columns its builder reads
    build: Callable  # (its events, graph, HloIndex) -> record dicts
    needs_hlo: Callable = lambda events, mask: False  # whether its events are priced from the HLO modules


SOURCES = {
    "op": RecordSource(True, _TF_KEYS + ["self_ps"], lambda rows, graph, index: tf_records(rows, graph)),
    "xla": RecordSource(True, _XLA_KEYS + ["self_ps"],
                        lambda rows, graph, index: xla_records(rows, index, _layers(graph)),
                        needs_hlo=lambda events, mask: bool(mask.any())),
    "kernel": RecordSource(True, _KERNEL_KEYS + ["duration_ps", "kernel_details"],
                           lambda rows, graph, index: kernel_records(rows, index, graph),
                           needs_hlo=lambda events, mask: bool((mask & events["hlo_op"].notna().to_numpy()).any())),
    "memcpy": RecordSource(False, list(dict.fromkeys(_MEMCPY_KEYS + ["duration_ps", "memcpy_details"])),
                           lambda rows, graph, index: memcpy_records(rows, index),
                           needs_hlo=lambda events, mask: bool((mask & events["hlo_op"].notna().to_numpy()).any())),
}
COMPUTE_KINDS = tuple(kind for kind, source in SOURCES.items() if source.compute)


def _kind_masks(kind: pd.Series) -> dict:
    """{kind: boolean row mask} for the kinds of work in SOURCES (compared on codes where categorical)."""
    if isinstance(kind.dtype, pd.CategoricalDtype):
        codes, categories = kind.cat.codes.to_numpy(), list(kind.cat.categories)
        return {name: codes == (categories.index(name) if name in categories else -2) for name in SOURCES}
    values = kind.to_numpy()
    return {name: values == name for name in SOURCES}


def build_records(events: pd.DataFrame, graph, hlo_modules, chosen: Optional[list]) -> pd.DataFrame:
    """All priced records of the events inside the chosen steps (all events when no steps).

    `hlo_modules`: the trace's HLO modules, or a callable giving them (read only when XLA work is present).
    """
    is_kind = _kind_masks(events["kind"])
    work = np.logical_or.reduce(list(is_kind.values()))
    if chosen:
        host_work = np.logical_or.reduce([is_kind[kind] for kind in SOURCES if kind in HOST_WORK_KINDS])
        # Device events are kept whole when the trace has no step marks on them.
        step = events["step"].to_numpy()
        device_stepped = bool((step[work & ~host_work] >= 0).any())
        work &= np.isin(step, chosen) | (~host_work & (not device_stepped))
    masks = {name: work & is_kind[name] for name in SOURCES}
    needs_hlo = any(source.needs_hlo(events, masks[kind]) for kind, source in SOURCES.items())
    if needs_hlo and callable(hlo_modules):
        hlo_modules = hlo_modules()
    index = HloIndex(hlo_modules if needs_hlo else [])
    records = []
    for kind, source in SOURCES.items():  # each reads only the columns it groups and times
        records += source.build(events.loc[masks[kind], source.columns], graph, index)
    return tell_programs_apart(cast_counts(pd.DataFrame(records, columns=RECORD_COLUMNS), "records"))


def tell_programs_apart(records: pd.DataFrame) -> pd.DataFrame:
    """Programs that share a module name (five compilations of `jit_dot`) named `jit_dot#49` in
    `hlo_module`, so that each has its own rows and notes; a name held by one program stays as it is."""
    program = records["program_id"]
    named = program.notna() & (records["hlo_module"].fillna("").astype(str) != "")
    if not named.any():
        return records
    counts = records.loc[named].groupby("hlo_module", observed=True)["program_id"].nunique()
    shared = named & records["hlo_module"].isin(set(counts.index[counts > 1]))
    if shared.any():
        records = records.copy()
        records.loc[shared, "hlo_module"] = [f"{name}#{int(pid)}" for name, pid in
                                             zip(records.loc[shared, "hlo_module"], program[shared])]
    return records


def assign_phases(records: pd.DataFrame, training: bool) -> pd.Series:
    """The training phase of each record (graph/phases.py) when the trace is of training steps
    (captured with --train, or holding gradient ops); `forward` for every op of an inference trace."""
    # XLA work is placed by the framework op it came from (its HLO metadata: a TF op, a JAX name stack).
    names = records["framework_op"].where(records["framework_op"].fillna("").astype(str) != "", records["op_name"])
    gradients = ("gradient_tape/", "transpose(jvp(")
    if not training and not text_mask(names, lambda name: any(mark in name for mark in gradients)).any():
        return pd.Series(FORWARD, index=records.index, dtype=object)
    keys = list(zip(names.astype(str), records["op_type"].astype(str)))
    phases = {key: phase_of(*key) for key in set(keys)}
    if any(is_jax_name(name) for name, _ in phases):  # a JAX step: its XLA work without a name stack
        phases.update({key: FORWARD for key in phases if not is_jax_name(key[0])})  # (parameter layouts)
    return pd.Series([phases[key] for key in keys], index=records.index, dtype=object)
