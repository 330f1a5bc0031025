"""Trace stage, XLA on the host: per-instruction time of an XLA:CPU cluster from its execution events.

What a `jit_compile` step looks like in a TensorFlow 2.21 CPU trace (checked on
real runs, `tests/test_xla_cpu.py::test_jit_compile_*`): the call op
(`__inference_step_N`) is an `op` event on the caller's thread; the cluster's
instructions (thunks: fusions, `dot`, `convolution`...) are `xla` events, some
nested under the call op on its own thread, most on Eigen worker threads
(`tf_numa_-1_Eigen/...`) while the caller waits. Two things follow:

* the reader's self time removes only events nested on the *same* thread, so
  the call op kept the whole time its instructions ran on other threads (op
  time per step came out above the step time);
* XLA:CPU runs convolutions asynchronously: a convolution's event covers its
  dispatch, and the work completes in the gap after it, when no instruction
  event is open (ResNet50V2's convolutions read 1,000-10,000 GFLOP/s in the
  issue; up to 292 GFLOP/s against a theoretical 156.5 here).

`attribute_xla_time(events)` rewrites `self_ps` of the cluster's events, per
call op window (from the call's first instruction start to its last
instruction end, on any thread of the same host):

* a convolution runs until the next instruction starts on its thread (its
  asynchronous completion);
* time when k instructions are running at once (on different threads) is
  split evenly among them;
* time when none is running is charged to the instruction that ended last;
* the call op keeps only its own time: before its first instruction and after
  its last one, less any other op nested in it.

So a cluster's instruction times add up to its window and op time per step
never exceeds the step time. Only leaf instruction events are rewritten
(an instruction enclosing others, a `while` thunk, keeps the reader's self
time). A call op that ran an XLA module but holds no instruction event is left
alone (`untimed_calls`); the join names it in a warning and prices the whole
cluster on its row.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .events import text_mask

CALL_PREFIXES = ("__inference_", "__forward_", "__backward_")
# XLA:CPU instructions whose event covers only the dispatch (Eigen convolutions run asynchronously).
ASYNC_INSTRUCTION = r"(?:convolution|conv)"
CALL_TYPES = ("StatefulPartitionedCall", "PartitionedCall", "XlaLaunch", "_XlaRun")


def _is_call(op_type: pd.Series) -> np.ndarray:
    return text_mask(op_type, lambda text: text.startswith(CALL_PREFIXES) or text in CALL_TYPES)


def _leaf(starts: np.ndarray, ends: np.ndarray, lines: np.ndarray) -> np.ndarray:
    """Events that enclose no other event of the set on their own line."""
    leaf = np.ones(len(starts), dtype=bool)
    for line in np.unique(lines):
        rows = np.flatnonzero(lines == line)
        order = rows[np.lexsort((-ends[rows], starts[rows]))]
        for a, b in zip(order[:-1], order[1:]):
            if starts[b] < ends[a] and ends[b] <= ends[a]:
                leaf[a] = False
    return leaf


def _shares(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Each interval's share of the window [min start, max end]: time where k are open is split
    evenly among them, gaps go to the interval that ended last before them. The shares sum to the
    window's length."""
    points = np.unique(np.concatenate([starts, ends]))
    left, length = points[:-1], np.diff(points).astype(float)
    first, last = np.searchsorted(points, starts), np.searchsorted(points, ends)
    count = np.zeros(len(points), dtype=np.int64)
    np.add.at(count, first, 1)
    np.add.at(count, last, -1)
    open_count = np.cumsum(count)[:-1]
    per_segment = np.where(open_count > 0, length / np.maximum(open_count, 1), 0.0)
    prefix = np.concatenate([[0.0], np.cumsum(per_segment)])
    share = prefix[last] - prefix[first]
    gaps = np.flatnonzero(open_count == 0)
    if len(gaps):
        by_end = np.argsort(ends, kind="stable")
        before = np.searchsorted(ends[by_end], left[gaps], side="right") - 1
        np.add.at(share, by_end[before[before >= 0]], length[gaps[before >= 0]])
    return share


def _until_next_on_line(starts: np.ndarray, ends: np.ndarray, lines: np.ndarray,
                        asynchronous: np.ndarray) -> np.ndarray:
    """The end of each asynchronous event moved to the start of the next event on its own thread
    (its completion); other events, and the last of a thread, keep their ends."""
    extended = ends.copy()
    for line in np.unique(lines):
        rows = np.flatnonzero(lines == line)
        order = rows[np.argsort(starts[rows], kind="stable")]
        later = np.maximum(ends[order[:-1]], starts[order[1:]])
        extended[order[:-1]] = np.where(asynchronous[order[:-1]], later, ends[order[:-1]])
    return extended


def untimed_calls(events: pd.DataFrame, module_names) -> list:
    """Names of call ops that ran an XLA module (one of `module_names`: its name holds the function's)
    while the trace holds no instruction event inside them."""
    op_mask = (events["kind"] == "op").to_numpy()
    if not op_mask.any():
        return []
    calls = events[op_mask & _is_call(events["op_type"])]
    names = [m.lstrip("_") for m in module_names]
    return sorted({str(row.op_name) for row in calls.itertuples(index=False)
                   if any(str(row.op_type).lstrip("_") + "_" in m for m in names)})


def attribute_xla_time(events: pd.DataFrame) -> tuple:
    """(events with XLA:CPU cluster times rewritten, names of call ops with no instruction events).

    Host events only: kernels on a device have their own times."""
    xla_rows = np.flatnonzero((events["kind"] == "xla").to_numpy())
    op_mask = (events["kind"] == "op").to_numpy()
    if not len(xla_rows) or not op_mask.any():
        return events, []
    call_rows = np.flatnonzero(op_mask & _is_call(events["op_type"]))
    if not len(call_rows):
        return events, []
    starts = events["start_ps"].to_numpy(dtype=np.int64)
    ends = starts + events["duration_ps"].to_numpy(dtype=np.int64)
    hosts = events["host"].astype(str).to_numpy()
    lines = events["line"].astype(str).to_numpy()
    self_ps = events["self_ps"].to_numpy(dtype=np.int64).astype(float)
    # The innermost call op holding each instruction's start (same host) owns it.
    owner = np.full(len(xla_rows), -1)
    for call in call_rows[np.argsort(starts[call_rows])]:
        inside = (hosts[xla_rows] == hosts[call]) & (starts[xla_rows] >= starts[call]) & (
            starts[xla_rows] < ends[call])
        owner[inside] = call  # later-starting (inner) calls overwrite outer ones
    new_self = self_ps.copy()
    empty = []
    for call in call_rows:
        mine = xla_rows[owner == call]
        if not len(mine):
            continue
        s, e = starts[mine], np.minimum(ends[mine], ends[call])
        leaf = _leaf(s, e, lines[mine])
        names = events["op_name"].iloc[mine[leaf]].astype(str)
        extended = _until_next_on_line(s[leaf], e[leaf], lines[mine][leaf],
                                       names.str.match(ASYNC_INSTRUCTION).to_numpy())
        new_self[mine[leaf]] = _shares(s[leaf], extended)
        window = float(e[leaf].max() - s[leaf].min())
        same_line = mine[lines[mine] == lines[call]]
        nested_xla = _union(starts[same_line], ends[same_line])
        other_children = max(0.0, float(ends[call] - starts[call]) - self_ps[call] - nested_xla)
        new_self[call] = max(0.0, float(ends[call] - starts[call]) - window - other_children)
    modules = {m.lstrip("_") for m in events["hlo_module"].iloc[xla_rows].dropna().astype(str)}
    for call in call_rows:
        name = str(events["op_type"].iat[call]).lstrip("_")
        if not (owner == call).any() and any(name + "_" in m for m in modules):
            empty.append(str(events["op_name"].iat[call]))
    if np.array_equal(new_self, self_ps):
        return events, sorted(set(empty))
    events = events.copy()
    events["self_ps"] = np.round(new_self).astype(events["self_ps"].dtype)
    return events, sorted(set(empty))


def _union(starts: np.ndarray, ends: np.ndarray) -> float:
    """Length of the union of intervals."""
    if not len(starts):
        return 0.0
    order = np.argsort(starts)
    total, current_start, current_end = 0.0, starts[order[0]], ends[order[0]]
    for i in order[1:]:
        if starts[i] > current_end:
            total += current_end - current_start
            current_start, current_end = starts[i], ends[i]
        else:
            current_end = max(current_end, ends[i])
    return float(total + current_end - current_start)
