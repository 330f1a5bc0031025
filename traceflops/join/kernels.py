"""Per-kernel FLOPs, time and FLOP/s on GPUs, and per-stream memcpy bandwidth.

`kernel_table(trace, hlo=None)` returns `(kernels, memcpys)`.

`kernels` has one row per distinct (host, device plane, stream line, kernel
name, launching op). The launching op is the TensorFlow op that launched the
kernel (`tf_op` / `level 0` / `annotation` stats) or, for XLA, the HLO
instruction (`program_id` + `hlo_op` stats). Columns:

| column | meaning |
| --- | --- |
| host, device, stream | where it ran: `GPU:4`, `Stream #134(Compute)` |
| kernel_name | the kernel symbol |
| op_name, op_type, shape | the launching op: TF node and type with its input shapes; for XLA the HLO instruction and its opcode |
| hlo_module, program_id, hlo_op, framework_op | XLA kernels only |
| occurrences | launches |
| flops, bytes | totals over all occurrences (None when unknown) |
| flops_per_occurrence | flops / occurrences |
| total_time_us, avg_time_us, min_time_us, max_time_us | kernel durations |
| gflops_per_s | flops / total time |
| dtype, flops_source, note | `formula` / `shapes` / `zero` / `unknown` (costs.py, TF ops; `shapes`: attributes inferred from shapes), `xla` / `unknown` (xla.py), `split` (see below) |
| grid, block, registers, shared_mem_bytes, occupancy_pct | parsed from `kernel_details` (None when not reported) |

FLOPs of TF (non-XLA) kernels come from `costs.op_cost` on the launching op's
type and the input shapes the trace recorded (`shape` stat or the
annotation's `#shape=(...)#`); output shapes are not in a trace, so formulas
that need them are unknown. XLA kernels take their HLO instruction's row of
`xla.hlo_costs`.

Split rule: one op (or HLO instruction) may launch several kernels (a GEMM and
its split-K reduction, an im2col and a GEMM, a fused attention's
pre/post-processing kernels). The op's FLOPs and bytes go to its main kernel,
and its other kernels get 0 with flops_source `split`. The main kernel is the
one whose name says GEMM, convolution or attention (`gemm`, `Cijk_`,
`cutlass`, `xmma`, `conv`, `fmha`, ...), the longest in total time among
those; if no name says so, the longest kernel of the op.

`memcpys` has one row per (host, device, stream, memcpy kind, launching op):
`occurrences`, `bytes` (sum of `memcpy_details` `size:N`), times, and
`gbytes_per_s` (bytes / total time, 1 GB = 1e9 bytes).
"""
from __future__ import annotations

import re
from typing import Optional

import numpy as np
import pandas as pd

from ..costs import OpInfo, op_cost
from ..graph.shapes import parse_shape_list

KERNEL_COLUMNS = ["host", "device", "stream", "kernel_name", "op_name", "op_type", "shape", "hlo_module",
                  "program_id", "hlo_op", "framework_op", "occurrences", "flops", "flops_per_occurrence", "bytes",
                  "total_time_us", "avg_time_us", "min_time_us", "max_time_us", "gflops_per_s", "dtype",
                  "flops_source", "note", "grid", "block", "registers", "shared_mem_bytes", "occupancy_pct"]
MEMCPY_COLUMNS = ["host", "device", "stream", "name", "op_name", "op_type", "occurrences", "bytes",
                  "total_time_us", "avg_time_us", "gbytes_per_s"]
SPLIT = "split"
MAIN_KERNEL_PATTERN = re.compile(
    r"gemm|cijk_|cutlass|xmma|cublas|hipblas|rocblas|matmul|conv(?!ert)|wgrad|dgrad|winograd|fft|"
    r"fmha|flash|attn|attention", re.IGNORECASE)
# Runtime copy / fill kernels (HIP implements some memcpys and memsets as kernels).
_RUNTIME_COPY_KERNEL = re.compile(r"^__amd_rocclr_(copy|fill)", re.IGNORECASE)
_SIZE = re.compile(r"(?:^|\s)size:(\d+)")


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


def _device(plane: str) -> str:
    return plane[len("/device:"):] if plane.startswith("/device:") else plane


def _is_main_candidate(name: str) -> bool:
    return bool(MAIN_KERNEL_PATTERN.search(name))


def _tf_costs(events: pd.DataFrame) -> dict:
    """(op_type, shape) -> Cost for every distinct launching op of TF kernels."""
    out = {}
    for op_type, shape in events[["op_type", "shape"]].drop_duplicates().itertuples(index=False):
        shape = shape if isinstance(shape, str) else None
        inputs = parse_shape_list(shape) or []
        # Offline: no graph, so attributes are unknown and formulas infer from shapes.
        out[(op_type, shape)] = op_cost(OpInfo(op_type, inputs, [], attrs_known=False))
    return out


def _hlo_index(hlo: pd.DataFrame):
    by_program, by_module = {}, {}
    if hlo is None or hlo.empty:
        return by_program, by_module
    for row in hlo.itertuples(index=False):
        by_program[(int(row.program_id), row.hlo_op)] = row
        by_module.setdefault((row.hlo_module, row.hlo_op), []).append(row)
    return by_program, by_module


def _per_event_costs(kernels: pd.DataFrame, hlo: Optional[pd.DataFrame]) -> pd.DataFrame:
    """flops, bytes, dtype, flops_source, note, unit (launch unit) and display op for each kernel event."""
    n = len(kernels)
    flops = np.full(n, np.nan)
    nbytes = np.full(n, np.nan)
    dtype = np.empty(n, dtype=object)
    source = np.empty(n, dtype=object)
    note = np.empty(n, dtype=object)
    unit = np.empty(n, dtype=object)
    op_name = kernels["op_name"].fillna("").to_numpy(dtype=object).copy()
    op_type = kernels["op_type"].fillna("").to_numpy(dtype=object).copy()
    framework = np.full(n, "", dtype=object)
    hlo_op = kernels["hlo_op"].to_numpy(dtype=object)
    hlo_module = kernels["hlo_module"].to_numpy(dtype=object)
    program = pd.to_numeric(kernels["program_id"], errors="coerce").to_numpy()
    hosts = kernels["host"].to_numpy(dtype=object)
    planes = kernels["plane"].to_numpy(dtype=object)
    names = kernels["name"].to_numpy(dtype=object)
    shapes = kernels["shape"].to_numpy(dtype=object)
    by_program, by_module = _hlo_index(hlo)
    tf_costs = _tf_costs(kernels[~kernels["hlo_op"].map(lambda v: isinstance(v, str) and v != "")])
    for i in range(n):
        if isinstance(hlo_op[i], str) and hlo_op[i]:
            row = None
            if not np.isnan(program[i]):
                row = by_program.get((int(program[i]), hlo_op[i]))
            if row is None:
                candidates = by_module.get((hlo_module[i], hlo_op[i]), [])
                row = candidates[0] if len(candidates) == 1 else None
            unit[i] = ("xla", hosts[i], planes[i], hlo_module[i], program[i], hlo_op[i])
            op_name[i] = hlo_op[i]
            if row is None:
                op_type[i] = ""
                source[i], note[i], dtype[i] = "unknown", "HLO instruction not found in the trace's HLO modules", ""
                continue
            op_type[i] = row.opcode
            framework[i] = row.framework_op
            flops[i] = np.nan if pd.isna(row.flops) else float(row.flops)
            nbytes[i] = float(row.bytes)
            dtype[i], source[i], note[i] = row.dtype, row.flops_source, row.note
            continue
        if not op_type[i]:
            unit[i] = ("none", hosts[i], planes[i], names[i])
            if _RUNTIME_COPY_KERNEL.match(names[i]):
                flops[i], source[i], note[i], dtype[i] = 0.0, "zero", "runtime copy/fill kernel", ""
            else:
                source[i], note[i], dtype[i] = "unknown", "no launching op recorded", ""
            continue
        unit[i] = ("tf", hosts[i], planes[i], op_name[i], op_type[i])
        shape = shapes[i] if isinstance(shapes[i], str) else None
        cost = tf_costs[(op_type[i], shape)]
        flops[i] = np.nan if cost.flops is None else float(cost.flops)
        nbytes[i] = np.nan if cost.bytes is None else float(cost.bytes)
        dtype[i], source[i], note[i] = cost.dtype, cost.source, cost.note
    return pd.DataFrame({"flops": flops, "bytes": nbytes, "dtype": dtype, "flops_source": source, "note": note,
                         "unit": unit, "op_name": op_name, "op_type": op_type, "framework_op": framework},
                        index=kernels.index)


def _apply_split(kernels: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """Give each launch unit's FLOPs and bytes to its main kernel; its other kernels get 0 (`split`)."""
    frame = pd.DataFrame({"unit": costs["unit"], "name": kernels["name"], "dur": kernels["duration_ps"]})
    totals = frame.groupby(["unit", "name"], sort=False)["dur"].sum().reset_index()
    main = {}
    for unit, group in totals.groupby("unit", sort=False):
        if len(group) == 1:
            main[unit] = group["name"].iloc[0]
            continue
        candidates = group[group["name"].map(_is_main_candidate)]
        pool = candidates if not candidates.empty else group
        main[unit] = pool.sort_values("dur", ascending=False, kind="stable")["name"].iloc[0]
    not_main = np.array([main[u] != name for u, name in zip(costs["unit"], kernels["name"])], dtype=bool)
    # A split kernel is known to do none of the op's counted work only when the op's count is known.
    is_split = not_main & costs["flops"].notna().to_numpy()
    if (not_main & ~is_split).any():
        costs = costs.copy()
        costs.loc[not_main & ~is_split, "note"] = "not the op's main kernel; the op's FLOPs are unknown"
    if is_split.any():
        costs = costs.copy()
        costs.loc[is_split, "flops"] = 0.0
        costs.loc[is_split, "bytes"] = 0.0
        costs.loc[is_split, "flops_source"] = SPLIT
        costs.loc[is_split, "note"] = [f"the op's FLOPs are on its main kernel {main[u][:80]}"
                                       for u in costs.loc[is_split, "unit"]]
    return costs


def kernel_table(trace, hlo: Optional[pd.DataFrame] = None):
    """(kernels, memcpys) DataFrames for the device events of `trace`; see the module doc.

    `hlo` is `xla.hlo_costs(...)` for the same trace; when None and the trace has
    XLA kernels, it is computed from the trace's files.
    """
    events = trace.events
    kernels = events[events["kind"] == "kernel"]
    if hlo is None and kernels["hlo_op"].map(lambda v: isinstance(v, str) and v != "").any():
        from ..costs.hlo import hlo_costs
        hlo = hlo_costs(trace.hlo_modules)
    kernel_rows = _kernel_rows(kernels, hlo)
    memcpy_rows = _memcpy_rows(events[events["kind"] == "memcpy"])
    return kernel_rows, memcpy_rows


def _kernel_rows(kernels: pd.DataFrame, hlo) -> pd.DataFrame:
    if kernels.empty:
        return pd.DataFrame(columns=KERNEL_COLUMNS)
    costs = _apply_split(kernels, _per_event_costs(kernels, hlo))
    frame = pd.DataFrame({
        "host": kernels["host"], "device": kernels["plane"].map(_device), "stream": kernels["line"],
        "kernel_name": kernels["name"], "op_name": costs["op_name"], "op_type": costs["op_type"],
        "shape": kernels["shape"].map(lambda v: v if isinstance(v, str) else ""),
        "hlo_module": kernels["hlo_module"].map(lambda v: v if isinstance(v, str) else ""),
        "program_id": pd.to_numeric(kernels["program_id"], errors="coerce").astype("Int64"),
        "hlo_op": kernels["hlo_op"].map(lambda v: v if isinstance(v, str) else ""),
        "framework_op": costs["framework_op"],
        "duration_ps": kernels["duration_ps"].astype("int64"),
        "flops": costs["flops"], "bytes": costs["bytes"], "dtype": costs["dtype"].fillna(""),
        "flops_source": costs["flops_source"], "note": costs["note"].fillna(""),
        "kernel_details": kernels["kernel_details"],
    })
    keys = ["host", "device", "stream", "kernel_name", "op_name", "op_type", "shape", "hlo_module", "program_id",
            "hlo_op"]
    # Put unknown events first, so that a row's first source and note are the unknown one when any is.
    frame["unknown_first"] = (frame["flops_source"] != "unknown").astype(int)
    frame = frame.sort_values("unknown_first", kind="stable")
    frame["flops_missing"] = frame["flops"].isna()
    frame["bytes_missing"] = frame["bytes"].isna()
    grouped = frame.groupby(keys, sort=False, dropna=False)
    table = grouped.agg(
        framework_op=("framework_op", "first"), occurrences=("duration_ps", "size"),
        total_ps=("duration_ps", "sum"), min_ps=("duration_ps", "min"), max_ps=("duration_ps", "max"),
        flops=("flops", "sum"), flops_missing=("flops_missing", "any"), bytes=("bytes", "sum"),
        bytes_missing=("bytes_missing", "any"), dtype=("dtype", "first"), flops_source=("flops_source", "first"),
        note=("note", "first"), kernel_details=("kernel_details", "first"),
    ).reset_index()
    table.loc[table["flops_missing"], "flops"] = np.nan
    table.loc[table["bytes_missing"], "bytes"] = np.nan
    total_ps = table["total_ps"].astype("float64")
    table["flops_per_occurrence"] = table["flops"] / table["occurrences"]
    table["total_time_us"] = total_ps / 1e6
    table["avg_time_us"] = total_ps / table["occurrences"] / 1e6
    table["min_time_us"] = table["min_ps"] / 1e6
    table["max_time_us"] = table["max_ps"] / 1e6
    table["gflops_per_s"] = (table["flops"] * 1e3 / total_ps).where(total_ps > 0)
    details = pd.DataFrame([parse_kernel_details(text) for text in table["kernel_details"]], index=table.index)
    table = pd.concat([table, details], axis=1)[KERNEL_COLUMNS]
    table["program_id"] = table["program_id"].astype("Int64")
    table["registers"] = table["registers"].astype("Int64")
    table["shared_mem_bytes"] = table["shared_mem_bytes"].astype("Int64")
    table["occupancy_pct"] = table["occupancy_pct"].astype("float64")
    return table.sort_values("total_time_us", ascending=False, kind="stable").reset_index(drop=True)


def _memcpy_size(text) -> Optional[int]:
    if not isinstance(text, str):
        return None
    match = _SIZE.search(text)
    return int(match.group(1)) if match else None


def _memcpy_rows(memcpys: pd.DataFrame) -> pd.DataFrame:
    if memcpys.empty:
        return pd.DataFrame(columns=MEMCPY_COLUMNS)
    frame = pd.DataFrame({
        "host": memcpys["host"], "device": memcpys["plane"].map(_device), "stream": memcpys["line"],
        "name": memcpys["name"], "op_name": memcpys["op_name"].fillna(""), "op_type": memcpys["op_type"].fillna(""),
        "duration_ps": memcpys["duration_ps"].astype("int64"),
        "bytes": memcpys["memcpy_details"].map(_memcpy_size).astype("float64"),
    })
    keys = ["host", "device", "stream", "name", "op_name", "op_type"]
    frame["bytes_missing"] = frame["bytes"].isna()
    table = frame.groupby(keys, sort=False, dropna=False).agg(
        occurrences=("duration_ps", "size"), total_ps=("duration_ps", "sum"), bytes=("bytes", "sum"),
        bytes_missing=("bytes_missing", "any")).reset_index()
    table.loc[table["bytes_missing"], "bytes"] = np.nan
    total_ps = table["total_ps"].astype("float64")
    table["total_time_us"] = total_ps / 1e6
    table["avg_time_us"] = total_ps / table["occurrences"] / 1e6
    table["gbytes_per_s"] = (table["bytes"] * 1e3 / total_ps).where(total_ps > 0)
    table = table[MEMCPY_COLUMNS]
    return table.sort_values("total_time_us", ascending=False, kind="stable").reset_index(drop=True)


def kernel_coverage(kernels: pd.DataFrame) -> float:
    """Share of kernel time whose FLOPs are known (a formula, declared zero, XLA or split)."""
    total = kernels["total_time_us"].sum()
    if total == 0:
        return 1.0
    return float(kernels.loc[kernels["flops"].notna(), "total_time_us"].sum() / total)


def device_op_rows(kernels: pd.DataFrame) -> pd.DataFrame:
    """Kernels rolled up to the op that launched them, one row per (device, op), in the
    column layout of `join.OPS_COLUMNS`, so that `ops.csv` covers device work too.

    occurrences = launches of the op's most-launched kernel (one per op execution);
    flops/bytes per occurrence = the kernels' totals / occurrences; time = all its kernels.
    The count is unknown if any of its kernels' counts is unknown (a split kernel is 0).
    """
    from ..graph import layer_of
    if kernels is None or kernels.empty:
        return pd.DataFrame()
    rows = []
    keys = ["device", "op_name", "op_type", "hlo_module"]
    frame = kernels.assign(hlo_module=kernels["hlo_module"].fillna(""))
    for (device, op_name, op_type, module), group in frame.groupby(keys, sort=False, dropna=False):
        occurrences = int(group["occurrences"].max())
        sources = set(group["flops_source"])
        unknown = "unknown" in sources
        flops = None if unknown or group["flops"].isna().any() else int(group["flops"].sum())
        size = None if group["bytes"].isna().any() else int(group["bytes"].sum())
        main = group.sort_values("total_time_us", ascending=False).iloc[0]
        source = "unknown" if unknown else next((s for s in ("xla", "shapes", "formula", "zero") if s in sources), "zero")
        total_us = float(group["total_time_us"].sum())
        framework = main.get("framework_op") if isinstance(main.get("framework_op"), str) else ""
        rows.append({
            "op_name": op_name, "op_type": op_type, "hlo_module": module,
            "layer": layer_of(framework or op_name), "device": device, "dtype": main.get("dtype") or "",
            "input_shapes": main.get("shape") or "", "output_shapes": "", "occurrences": occurrences,
            "flops": None if flops is None else flops // max(occurrences, 1),
            "macs": None, "bytes": None if size is None else size // max(occurrences, 1),
            "total_time_us": total_us, "avg_time_us": total_us / max(occurrences, 1),
            "flops_source": source,
            "note": f"{len(group)} kernel(s); " + (main.get("note") or "")})
    return pd.DataFrame(rows)
