"""Trace stage: stat values, as Python values (metadata, a few at a time) and as numpy arrays (events)."""
from __future__ import annotations

import re
from typing import Optional

import numpy as np

_OP_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ONE = np.uint64(1)


class StringTable:
    """Interned strings of one file: code <-> text."""

    def __init__(self):
        self.codes = {"": 0}
        self.texts = [""]

    def __call__(self, text) -> int:
        code = self.codes.get(text)
        if code is None:
            code = self.codes[text] = len(self.texts)
            self.texts.append(text)
        return code


def stat_value(stat, stat_names):
    which = stat.WhichOneof("value")
    if which is None:
        return None
    value = getattr(stat, which)
    if which == "ref_value":
        return stat_names.get(value, "")
    return value


def stats_dict(stats, stat_names, wanted=None) -> dict:
    out = {}
    for stat in stats:
        name = stat_names.get(stat.metadata_id)
        if name is None or (wanted is not None and name not in wanted):
            continue
        out[name] = stat_value(stat, stat_names)
    return out


def as_text(value) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def as_number(value) -> float:
    if isinstance(value, bool) or value is None or isinstance(value, (str, bytes)):
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return np.nan


def split_op_event(name: str, display_name: str):
    """`node:Type` with display name `Type` is a TensorFlow op event."""
    if display_name and _OP_TYPE.match(display_name) and name.endswith(":" + display_name):
        return name[: -len(display_name) - 1], display_name
    return None


_SHAPE_IN_ANNOTATION = re.compile(r"#shape=(\([^#]*\))#")


def parse_launcher(text: str):
    """The TensorFlow op a device event was launched by: `node:Type#shape=(...)#...`."""
    head = text.split("#", 1)[0]
    # Nested annotations are joined with "::"; the innermost names the op.
    head = head.split("::")[-1]
    if ":" in head:
        op_name, op_type = head.rsplit(":", 1)
        match = _SHAPE_IN_ANNOTATION.search(text)
        return op_name, op_type, match.group(1) if match else None
    return head, "", None


def raw_number(kind: int, raw: int):
    word = np.array([raw], dtype=np.uint64)
    if kind == 2:
        return float(word.view(np.float64)[0])
    if kind == 4:
        return int(word.view(np.int64)[0])
    return int(raw)


def whole_or_nan(values: np.ndarray) -> np.ndarray:
    """Ids: NaN where a value is not a whole number that fits int64."""
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2.0**63)
    return np.where(ok, values, np.nan)


def stat_numbers(kind, raw) -> np.ndarray:
    out = np.full(len(kind), np.nan)
    double = kind == 2
    out[double] = raw[double].view(np.float64)
    unsigned = kind == 3
    out[unsigned] = raw[unsigned].astype(np.float64)
    signed = kind == 4
    out[signed] = raw[signed].view(np.int64).astype(np.float64)
    return out


def stat_truthy(ref_text, kind, raw, start, end) -> np.ndarray:
    """Whether each stat value is set: non-zero, non-empty (`ref_text` gives the string codes of refs)."""
    out = np.zeros(len(kind), dtype=bool)
    numeric = (kind == 3) | (kind == 4)
    out[numeric] = raw[numeric] != 0
    double = kind == 2
    out[double] = raw[double].view(np.float64) != 0
    spans = (kind == 5) | (kind == 6)
    out[spans] = end[spans] > start[spans]
    refs = kind == 7
    if refs.any():
        out[refs] = ref_text(raw[refs]) != 0
    return out


def equals_one(kind, raw) -> np.ndarray:
    return (((kind == 3) | (kind == 4)) & (raw == _ONE)) | ((kind == 2) & (raw.view(np.float64) == 1.0))


def last_wins(events: np.ndarray, values: np.ndarray, rounds: np.ndarray) -> np.ndarray:
    """`values` rewritten so that a fancy assignment to `events` keeps each event's last value.

    Values come in decode order (rounds ascending); within one round an event appears once.
    """
    if len(events) < 2 or rounds[0] == rounds[-1]:
        return values
    order = np.argsort(events, kind="stable")
    sorted_events = events[order]
    starts = np.r_[True, sorted_events[1:] != sorted_events[:-1]]
    if starts.all():
        return values
    last_of_run = np.r_[starts[1:], True]
    run_id = np.cumsum(starts) - 1
    out = np.empty_like(values)
    out[order] = values[order][last_of_run][run_id]
    return out
