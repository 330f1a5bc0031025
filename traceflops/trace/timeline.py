"""Trace stage: the events on their timeline: self times, steps, and what the capture's end cut.

Self times subtract the op/xla events nested in an event on its line. Steps
are the `step` rows of each host; every other event belongs to the step it
starts in. Damage found here (also in `Trace.damage`): events that end after
the capture stopped (the Task Environment plane's profile start/stop times)
are left out, and so is the last step of a host when the capture ended inside
it (its marker was cut or its ops run past it).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from .events import KIND_FRAMEWORK_STEP, KIND_OP, KIND_STEP, KINDS
from .planes import CodedEvents


def self_times(events: pd.DataFrame) -> np.ndarray:
    """Each op's duration minus that of op/xla events nested in it on the same line."""
    if events.empty:
        return events["duration_ps"].to_numpy().astype(np.int64, copy=True)
    line_key = events.groupby(["host", "plane", "line"], sort=False, observed=True, dropna=False).ngroup()
    return nested_self_times(line_key.to_numpy(), events["kind"].isin(("op", "xla")).to_numpy(),
                             events["start_ps"].to_numpy(), events["duration_ps"].to_numpy())


def nested_self_times(line_key, compute, starts, durations) -> np.ndarray:
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
    codes = np.array([KINDS.index(k) if k in KINDS else -1 for k in kinds], dtype=np.int8)
    return _assign_steps(hosts, codes, events["start_ps"].to_numpy(), events["duration_ps"].to_numpy())


def _assign_steps(hosts, kinds, starts, durations) -> np.ndarray:
    step_index = np.full(len(kinds), -1, dtype=np.int64)
    is_step = kinds == KIND_STEP
    if not is_step.any():
        return step_index
    single = hosts.min() == hosts.max()
    for host in np.unique(hosts[is_step]).tolist():
        # One host (the usual trace): whole columns, no copies of millions of rows.
        rows = slice(None) if single else np.flatnonzero(hosts == host)
        host_steps = is_step[rows]
        step_rows = np.flatnonzero(host_steps)
        host_starts = starts[rows]
        order = np.argsort(host_starts[step_rows], kind="stable")
        step_rows = step_rows[order]
        step_starts = host_starts[step_rows]
        step_ends = step_starts + durations[rows][step_rows]
        position = np.searchsorted(step_starts, host_starts, side="right") - 1
        # Host ops must lie inside their step; device work may trail it.
        outside = (position < 0) | ((kinds[rows] == KIND_OP) & (host_starts >= step_ends[np.maximum(position, 0)]))
        position[outside] = -1
        position[step_rows] = np.arange(len(step_rows))
        step_index[rows] = position
    return step_index


def _framework_steps_where_no_markers(hosts: np.ndarray, kinds: np.ndarray) -> np.ndarray:
    """On each host without step markers, its Keras step function calls become its steps."""
    framework = kinds == KIND_FRAMEWORK_STEP
    if not framework.any():
        return kinds
    marked_hosts = np.unique(hosts[kinds == KIND_STEP])
    promote = framework & ~np.isin(hosts, marked_hosts)
    return np.where(promote, np.int8(KIND_STEP), kinds).astype(kinds.dtype)


def steps_and_damage(events: CodedEvents, parts: list, part_rows: np.ndarray, host_codes: list, damage: list):
    """Step of every event, leaving out events cut by the capture's end and a last step the end cut.

    `parts` are the files (their rows `part_rows[k]:part_rows[k + 1]`, their host's
    string code `host_codes[k]`); what is left out is said in `damage`. Returns
    (rows to keep, or None for all; step index per kept row).
    """
    keep = _capture_cut(events, parts, part_rows, damage)
    events.kind = _framework_steps_where_no_markers(events.host, events.kind)
    step = _assign_steps(events.host, events.kind, events.start_ps, events.duration_ps)
    dropped_steps = _cut_last_steps(events, parts, host_codes, keep, step, damage)
    if keep.all():
        return None, step
    # Events of a left-out step belong to no step; later steps of its host move down one.
    hosts = events.host
    for host, gone in dropped_steps:
        on = hosts == host
        step = np.where(on & (step == gone), -1, np.where(on & (step > gone), step - 1, step))
    return keep, step[keep]


def _capture_cut(events: CodedEvents, parts: list, part_rows: np.ndarray, damage: list) -> np.ndarray:
    """Rows to keep: all but the events that end after their file's capture stopped."""
    kinds, starts = events.kind, events.start_ps
    ends = starts + events.duration_ps
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
            said = ", ".join(f"{int((cut & (kinds == i)).sum())} {k}" for i, k in enumerate(KINDS)
                             if (cut & (kinds == i)).any())
            damage.append(f"{part.host}: events that end after the capture stopped were cut and left out "
                          f"({said})")
            keep &= ~cut
    return keep


def _cut_last_steps(events: CodedEvents, parts: list, host_codes: list, keep: np.ndarray, step: np.ndarray,
                    damage: list) -> list:
    """Leave out (from `keep`) the last step of each host the capture ended inside; (host, step) of each."""
    kinds, hosts, starts = events.kind, events.host, events.start_ps
    ends = starts + events.duration_ps
    dropped_steps = []
    for host in sorted(set(host_codes)):  # steps are per host name (files of one host share them)
        part = parts[host_codes.index(host)]
        on = hosts == host
        step_rows = np.flatnonzero(on & (kinds == KIND_STEP))
        if not step_rows.size:
            continue
        last_row = step_rows[np.argmax(starts[step_rows])]
        last = step[last_row]
        ops = on & (kinds == KIND_OP)
        over = ops & keep & (step == last) & (ends > ends[last_row])
        lost = on & ~keep & (step == last) & (kinds != KIND_STEP)
        if over.any() or lost.any() or not keep[last_row]:
            if not keep[last_row]:
                why = "its step marker was cut"
            else:
                why = f"{int(over.sum() + lost.sum())} of its events run past its end or the capture's"
            damage.append(f"{part.host}: the capture ended inside the last step (step_num "
                          f"{_step_num_text(events.step_num[last_row])}): {why}; that step was left out")
            keep[last_row] = False
            dropped_steps.append((host, last))
            continue
        after = ops & keep & (step < 0) & (starts >= ends[last_row])
        if after.any():
            damage.append(f"{part.host}: {int(after.sum())} op events after the last step marker lie outside "
                          "every step (the capture cut a step before its marker was recorded); they are not "
                          "counted in any step")
    return dropped_steps


def _step_num_text(value) -> str:
    return str(int(value)) if np.isfinite(value) else "?"
