"""Join, device work: the kernels and memcpy tables, from the priced records.

`kernels` has one row per distinct (host, device plane, stream line, kernel
name, launching op). The launching op is the TensorFlow op that launched the
kernel (`tf_op` / `level 0` / `annotation` stats) or, for XLA, the HLO
instruction (`program_id` + `hlo_op` stats). Its columns, and memcpys', are the
schema's `kernels` and `memcpy` tables (`traceflops/schema.py`, rendered in
docs/xla.md).

A kernel is priced as one execution of its launching op (`costs.price`): TF
ops from their type and the input shapes the trace recorded (`shape` stat or
the annotation's `#shape=(...)#`) and the executed graph when there is one;
XLA kernels from their HLO instruction.

Split rule: one op (or HLO instruction) may launch several kernels (a GEMM and
its split-K reduction, an im2col and a GEMM, a fused attention's
pre/post-processing kernels). The op's FLOPs and bytes go to its main kernel,
and its other kernels get 0 with flops_source `split`. The main kernel is the
one whose name says GEMM, convolution or attention (`gemm`, `Cijk_`,
`cutlass`, `xmma`, `conv`, `fmha`, ...), the longest in total time among
those; if no name says so, the longest kernel of the op.

`memcpys` has one row per (host, device, stream, memcpy kind, launching op).
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ..schema import SPLIT_NONE, SPLIT_ZERO, cast_counts, columns, split_columns

KERNEL_COLUMNS = columns("kernels")
MEMCPY_COLUMNS = columns("memcpy")
SPLIT = "split"
MAIN_KERNEL_PATTERN = re.compile(
    r"gemm|cijk_|cutlass|xmma|cublas|hipblas|rocblas|matmul|conv(?!ert)|wgrad|dgrad|winograd|fft|"
    r"fmha|flash|attn|attention", re.IGNORECASE)


def parse_kernel_details(text) -> dict:
    """`regs:38 shm:0 grid:160,1,1 block:1024,1,1 occ_pct:50.0` to grid, block, registers,
    shared_mem_bytes, occupancy_pct (None where not reported; an `occ_pct:0` is
    what ROCm writes when it did not measure occupancy, so it is None too)."""
    out = {"grid": None, "block": None, "registers": None, "shared_mem_bytes": None, "occupancy_pct": None}
    if not isinstance(text, str):
        return out
    fields = dict(token.split(":", 1) for token in text.split() if ":" in token)
    out["grid"] = fields.get("grid")
    out["block"] = fields.get("block")
    regs = fields.get("regs", fields.get("registers"))
    if regs not in (None, ""):
        out["registers"] = int(float(regs))
    shared = [fields[k] for k in ("shm", "static_shared", "dynamic_shared", "group_mem") if k in fields]
    if shared:
        out["shared_mem_bytes"] = int(sum(float(v) for v in shared))
    occ = fields.get("occ_pct", fields.get("occupancy_pct"))
    if occ not in (None, "") and float(occ) > 0:
        out["occupancy_pct"] = float(occ)
    return out


def _main_kernels(kernels: pd.DataFrame) -> pd.Series:
    """unit -> the name of its main kernel (see the split rule)."""
    totals = kernels.groupby(["unit", "kernel_name"], sort=False)["total_ps"].sum().reset_index()
    totals["candidate"] = totals["kernel_name"].map(lambda name: bool(MAIN_KERNEL_PATTERN.search(name)))
    # Among a unit's kernels: named GEMM/conv/attention kernels first, then the longest.
    ranked = totals.sort_values(["candidate", "total_ps"], ascending=False, kind="stable")
    return ranked.groupby("unit", sort=False)["kernel_name"].first()


def apply_split(records: pd.DataFrame) -> pd.DataFrame:
    """Give each launch unit's FLOPs and bytes to its main kernel; its other kernels get 0 (`split`)."""
    is_kernel = (records["source"] == "kernel").to_numpy()
    if not is_kernel.any():
        return records
    kernels = records[is_kernel]
    main = _main_kernels(kernels)
    not_main = np.zeros(len(records), dtype=bool)
    not_main[is_kernel] = kernels["unit"].map(main).to_numpy() != kernels["kernel_name"].to_numpy()
    # A split kernel is known to do none of the op's counted work only when the op's count is known.
    is_split = not_main & records["flops"].notna().to_numpy()
    records = records.copy()
    records.loc[not_main & ~is_split, "note"] = "not the op's main kernel; the op's FLOPs are unknown"
    if is_split.any():
        records.loc[is_split, split_columns(SPLIT_ZERO)] = 0
        records.loc[is_split, split_columns(SPLIT_NONE)] = pd.NA
        records.loc[is_split, "flops_source"] = SPLIT
        records.loc[is_split, "note"] = [f"the op's FLOPs are on its main kernel {main[u][:80]}"
                                         for u in records.loc[is_split, "unit"]]
    return records


def _times(table: pd.DataFrame) -> pd.DataFrame:
    total_ps = table["total_ps"].astype("float64")
    table["total_time_us"] = total_ps / 1e6
    table["avg_time_us"] = total_ps / table["occurrences"] / 1e6
    return table


def kernels_table(records: pd.DataFrame) -> pd.DataFrame:
    """The kernels table (module doc) from split-applied records."""
    kernels = records[records["source"] == "kernel"]
    if kernels.empty:
        return pd.DataFrame(columns=KERNEL_COLUMNS)
    table = _times(kernels.reset_index(drop=True).copy())
    occurrences = table["occurrences"].astype("float64")
    table["flops"] = table["flops"].astype("float64")
    table["bytes"] = table["bytes"].astype("float64")
    table["total_flops"] = table["flops"] * occurrences
    table["total_bytes"] = table["bytes"] * occurrences
    table["min_time_us"] = table["min_ps"] / 1e6
    table["max_time_us"] = table["max_ps"] / 1e6
    total_ps = table["total_ps"].astype("float64")
    table["gflops_per_s"] = (table["total_flops"] * 1e3 / total_ps).where(total_ps > 0)
    details = pd.DataFrame([parse_kernel_details(text) for text in table["kernel_details"]], index=table.index)
    table = pd.concat([table.drop(columns=list(details.columns), errors="ignore"), details], axis=1)
    table = cast_counts(table[KERNEL_COLUMNS], "kernels")
    table["occupancy_pct"] = table["occupancy_pct"].astype("float64")
    return table.sort_values("total_time_us", ascending=False, kind="stable").reset_index(drop=True)


def memcpy_table(records: pd.DataFrame) -> pd.DataFrame:
    """The memcpy table (module doc)."""
    copies = records[records["source"] == "memcpy"]
    if copies.empty:
        return pd.DataFrame(columns=MEMCPY_COLUMNS)
    table = _times(copies.reset_index(drop=True).copy()).rename(columns={"kernel_name": "name"})
    table["total_bytes"] = table["total_bytes"].astype("float64")
    table["bytes"] = table["total_bytes"] / table["occurrences"].astype("float64")
    total_ps = table["total_ps"].astype("float64")
    table["gbytes_per_s"] = (table["total_bytes"] * 1e3 / total_ps).where(total_ps > 0)
    table = table[MEMCPY_COLUMNS]
    return table.sort_values("total_time_us", ascending=False, kind="stable").reset_index(drop=True)


def kernel_coverage(kernels: pd.DataFrame) -> float:
    """Share of kernel time whose FLOPs are known (a formula, declared zero, XLA or split)."""
    total = kernels["total_time_us"].sum()
    if total == 0:
        return 1.0
    return float(kernels.loc[kernels["flops"].notna(), "total_time_us"].sum() / total)


def kernel_table(trace, graph=None):
    """(kernels, memcpys) of every device event of `trace`, for callers that want only device work."""
    from ..trace.events import DEVICE_WORK_KINDS
    from .records import build_records
    device_events = trace.events[trace.events["kind"].isin(DEVICE_WORK_KINDS)]
    records = apply_split(build_records(device_events, graph, lambda: trace.hlo_modules, None))
    return kernels_table(records), memcpy_table(records)
