"""Join: the rows of one op combined into one row, each column by its rule in `traceflops.schema`.

The one combine step of the tables, in the spirit of XProf's `CombineOpMetrics`:
a GPU op's kernels on one device become its ops row (ops_table.py). The rules
(key, main, sum, min, max, per occurrence, precedence) are the schema's; a
derived column is computed afterwards by the table that has it, from the
combined columns its declaration names as inputs.
"""
from __future__ import annotations

import pandas as pd

from ..schema import COLUMNS, DERIVED, KEY, MAIN, MAX, MIN, NOT_COMBINED, PER_OCCURRENCE, PRECEDENCE, SUM

OCCURRENCES = "occurrences"
# The longest-running row of a group is its main row (an op's main kernel, by the split rule's choice).
MAIN_ORDER = "total_ps"


def needed(columns: list) -> list:
    """The columns to combine for a table of `columns`: those that combine, and the inputs of those
    derived from them (recursively), in first-seen order."""
    out: list = []

    def add(name: str) -> None:
        column = COLUMNS[name]
        if column.combine == DERIVED:
            for source in column.inputs:
                add(source)
        elif column.combine != NOT_COMBINED and name not in out:
            out.append(name)
    for name in columns:
        add(name)
    return out


def _whole(value):
    return None if value is None or pd.isna(value) else int(value)


def single_rows(records: pd.DataFrame, columns: list) -> list:
    """Each record as a row of its own (a group of one): `columns` as they are, counts as ints or None."""
    names = needed(columns)
    counts = [name for name in names if COLUMNS[name].combine == PER_OCCURRENCE]
    rows = []
    for record in records[names].to_dict("records"):
        for name in counts:
            record[name] = _whole(record[name])
        rows.append(record)
    return rows


def _aggregations(frame: pd.DataFrame, names: list) -> tuple:
    """(the frame with helper columns, the named aggregations over it) for the non-main columns."""
    helpers, aggregations = {}, {"parts": (OCCURRENCES, "size")}
    for name in names:
        column = COLUMNS[name]
        if column.combine in (SUM, MIN, MAX):
            aggregations[name] = (name, column.combine)
        elif column.combine == PER_OCCURRENCE:
            total = frame[name].astype("Float64") * frame[OCCURRENCES]
            helpers[f"{name}:total"] = total
            helpers[f"{name}:missing"] = total.isna()
            aggregations[f"{name}:total"] = (f"{name}:total", "sum")
            aggregations[f"{name}:known"] = (f"{name}:total", "count")
            aggregations[f"{name}:missing"] = (f"{name}:missing", "any")
        elif column.combine == PRECEDENCE:
            for value in column.precedence:
                helpers[f"{name}:{value}"] = frame[name] == value
                aggregations[f"{name}:{value}"] = (f"{name}:{value}", "any")
    return frame.assign(**helpers), aggregations


def _count(row: dict, name: str, occurrences: int, unknown_source: bool):
    column = COLUMNS[name]
    known = not row[f"{name}:missing"] if column.known == "all" else row[f"{name}:known"] > 0
    if not known or (column.unknown_with_source and unknown_source):
        return None
    return int(row[f"{name}:total"]) // occurrences


def combine_rows(parts: pd.DataFrame, keys: list, columns: list, source: str = "flops_source") -> list:
    """One row (a dict) per group of `parts` with equal `keys`, in order of first appearance: every
    column `columns` needs combined by its rule, and `parts`, the number of rows combined."""
    if parts.empty:
        return []
    # A key column the caller does not group by is taken from the main row, as a MAIN column is
    # (None where the parts have no such column).
    absent = [n for n in needed(columns) if n not in keys and COLUMNS[n].combine == KEY and n not in parts]
    names = [name for name in needed(columns) if name not in keys and name not in absent]
    main = [name for name in names if COLUMNS[name].combine in (MAIN, KEY)]
    frame, aggregations = _aggregations(parts, [name for name in names if name not in main])
    table = frame.groupby(keys, sort=False, dropna=False).agg(**aggregations)
    if main:
        table = table.join(frame.sort_values(MAIN_ORDER, ascending=False, kind="stable")
                           .groupby(keys, sort=False, dropna=False)[main].first())
    rows = []
    for row in table.reset_index().to_dict("records"):
        out = {name: row[name] for name in keys}
        out.update(dict.fromkeys(absent))
        out["parts"] = int(row["parts"])
        for name in names:
            column = COLUMNS[name]
            if column.combine == PRECEDENCE:
                out[name] = next((v for v in column.precedence if row[f"{name}:{v}"]), column.precedence[-1])
            elif column.combine in (MAIN, KEY):
                out[name] = row[name] if column.dtype != "str" else (row[name] or "")
            elif column.combine != PER_OCCURRENCE:
                out[name] = row[name]
        occurrences = int(out[OCCURRENCES])
        out[OCCURRENCES] = occurrences
        unknown_source = source in out and out[source] == COLUMNS[source].precedence[0]
        for name in names:
            if COLUMNS[name].combine == PER_OCCURRENCE:
                out[name] = _count(row, name, occurrences, unknown_source)
        rows.append(out)
    return rows

