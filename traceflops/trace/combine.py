"""Trace stage: the parts of every file combined into one `Trace`.

The files' string tables are merged into one, the coded columns joined, and
the strings turned into pandas categoricals; self times and steps come from
`timeline.py`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .events import CATEGORICAL_COLUMNS, EVENT_COLUMNS, KIND_OP, KIND_XLA, KINDS, OBJECT_COLUMNS, Trace
from .planes import ARRAY_DTYPES, CODED_STRING_COLUMNS, CodedEvents, joined_pieces
from .timeline import nested_self_times, steps_and_damage



def combine_parts(parts: list) -> Trace:
    """One Trace from the files' parts: shared string table, categoricals, self times, steps, damage."""
    texts, remaps, host_codes = _shared_strings(parts)
    sizes = [len(p.columns) for p in parts]
    part_rows = np.cumsum([0] + sizes)
    events = _joined_columns(parts, sizes, remaps, host_codes)
    damage = [d for part in parts for d in part.damage]
    self_ps = nested_self_times(_line_keys(events), np.isin(events.kind, (KIND_OP, KIND_XLA)), events.start_ps,
                          events.duration_ps)
    keep, step = steps_and_damage(events, parts, part_rows, host_codes, damage)
    if keep is not None:
        events.select(keep)
        self_ps = self_ps[keep]
    table = _frame(events, self_ps, step, texts)
    warnings = [w for part in parts for w in part.warnings] + damage
    return Trace(events=table, planes=[p for part in parts for p in part.planes], paths=[p.path for p in parts],
                 hostnames=[p.host for p in parts], errors=[e for part in parts for e in part.errors],
                 warnings=warnings, profile_options={k: v for p in parts for k, v in p.profile_options.items()},
                 damage=damage)


def _shared_strings(parts: list):
    """(one string table for all files, per file: its codes in it (code -1 stays -1), per file: its host's code)."""
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
    return texts, remaps, host_codes


def _joined_columns(parts: list, sizes: list, remaps: list, host_codes: list) -> CodedEvents:
    """The files' columns one after another, in the shared string table's codes, with a host column."""
    host = (np.concatenate([np.full(size, c, dtype=np.int32) for size, c in zip(sizes, host_codes)])
            if parts else np.zeros(0, np.int32))
    identity = [np.array_equal(remap[:-1], np.arange(len(remap) - 1)) for remap in remaps]
    arrays = {}
    for name, dtype in ARRAY_DTYPES.items():
        pieces = []
        for part, remap, same in zip(parts, remaps, identity):
            values = part.columns.take(name)  # let each part's column go once it is joined
            if name in CODED_STRING_COLUMNS and not same:
                values = remap[values]
            pieces.append(values)
        arrays[name] = joined_pieces(pieces, dtype)
        del pieces
    return CodedEvents(**arrays, host=host)


def _line_keys(events: CodedEvents) -> np.ndarray:
    """One integer per (host, plane, line) (string codes, never missing for these three)."""
    host, plane, line = events.host, events.plane, events.line
    size = int(max(host.max(initial=0), plane.max(initial=0), line.max(initial=0))) + 1
    if size < 2_000_000:
        key = host.astype(np.int64)  # then in place: millions of rows, no temporaries
        key *= size
        key += plane
        key *= size
        key += line
        return key
    _, key = np.unique(np.stack([host, plane, line], axis=1), axis=0, return_inverse=True)
    return key.reshape(-1).astype(np.int64)


def _frame(events: CodedEvents, self_ps: np.ndarray, step: np.ndarray, texts: list) -> pd.DataFrame:
    """The events table; each column of `events` is let go as soon as it is in the table."""
    data = {}
    table = np.array(texts, dtype=object)
    for name in EVENT_COLUMNS:
        if name == "self_ps":
            data[name] = self_ps
        elif name == "step":
            data[name] = step
        elif name == "kind":
            data[name] = pd.Categorical.from_codes(
                _remap_kinds(events.take("kind")), categories=pd.Index(sorted(KINDS), dtype=object))
        elif name in CATEGORICAL_COLUMNS:
            data[name] = _categorical(events.take(name), table)
        elif name in OBJECT_COLUMNS:
            codes = events.take(name)
            present = codes >= 0
            if present.any():
                values = np.full(len(codes), None, dtype=object)
                values[present] = table[codes[present]]
                data[name] = values
            else:  # no event has it (host traces): 1 byte a row, and `.map` still gives plain values
                data[name] = pd.Categorical.from_codes(np.full(len(codes), -1, dtype=np.int8),
                                                       categories=pd.Index([], dtype=object))
        else:
            data[name] = events.take(name)
    # copy=False: no consolidation of the numeric columns into one block (a copy of each).
    return pd.DataFrame(data, columns=EVENT_COLUMNS, copy=False)


def _remap_kinds(kinds: np.ndarray) -> np.ndarray:
    order = sorted(KINDS)
    remap = np.array([order.index(k) for k in KINDS], dtype=np.int8)
    return remap[kinds] if len(kinds) else kinds


def _categorical(codes: np.ndarray, table: np.ndarray) -> pd.Categorical:
    """A categorical of the strings `codes` name in `table` (-1: missing), with sorted categories and ""."""
    used = np.bincount(codes + 1, minlength=len(table) + 1)[1:] > 0  # codes -1 (missing) count at 0
    used[0] = True  # "" is always a category, so fillna("") works
    chosen = np.flatnonzero(used)
    order = np.argsort(table[chosen].astype(str), kind="stable")
    chosen = chosen[order]
    small = np.int8 if len(chosen) < 127 else np.int16 if len(chosen) < 32767 else np.int32
    remap = np.full(len(table) + 1, -1, dtype=small)  # the last entry: code -1 stays missing
    remap[chosen] = np.arange(len(chosen))
    return pd.Categorical.from_codes(remap[codes], categories=pd.Index(table[chosen], dtype=object))
