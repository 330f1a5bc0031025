"""Join, the ops table: one row per executed op, from the priced records.

| column | meaning |
| --- | --- |
| op_name, op_type | TensorFlow node name and kernel type as executed; for XLA: the HLO instruction and its opcode (fusions: `fusion:kLoop`...) |
| hlo_module | the XLA module of an XLA row; empty for TensorFlow ops |
| layer | the Keras layer that owns the op (its own name; nested models as `outer/inner`; `(model)` outside every layer) |
| phase | `forward`, `backward`, `optimizer` or `loss_and_metrics` (training steps; `forward` for inference) |
| device | device the op ran on (`CPU:0`, `GPU:0`) |
| dtype | the dtype the op computes in |
| input_shapes, output_shapes | tensors as `float32[4,32];float32[32,8]` |
| occurrences | executions inside the profiled steps |
| flops, macs, bytes | per occurrence (macs only for contraction ops; convolutions count every kernel tap) |
| xla_valid_macs | XLA convolutions: XLA's own count, FMAs over valid (non-padding) window positions, as XProf's hlo_stats reports it |
| total_time_us, avg_time_us | measured time, all occurrences / per occurrence |
| gflops_per_s | flops x occurrences / total time |
| gbytes_per_s | bytes x occurrences / total time |
| intensity | flops / bytes (FLOP per byte) |
| time_share | share of all op time in the profiled steps |
| flops_source | `formula`, `zero` (declared zero-FLOP), `xla` (from the HLO in the trace), `shapes` (no graph: attributes inferred from shapes, see note) or `unknown` |
| note | the formula used, the zero reason, or why the count is unknown |
| source_line | XLA rows: `file:line` from the HLO metadata (on JAX, the Keras layer's code that made the op), else "" |

Host TF ops and host XLA instructions are rows of their own. A GPU op's host
event only times its launch, so its row is the roll-up of the kernels it
launched on each device (their time, their FLOPs), and its host row is dropped.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..costs import UNKNOWN

OPS_COLUMNS = ["op_name", "op_type", "hlo_module", "layer", "phase", "device", "dtype", "input_shapes",
               "output_shapes", "occurrences", "flops", "macs", "xla_valid_macs", "bytes", "total_time_us",
               "avg_time_us", "gflops_per_s", "gbytes_per_s", "intensity", "time_share", "flops_source", "note",
               "source_line"]
# The count a rolled-up op reports when its kernels' sources differ (unknown wins over all).
_SOURCE_ORDER = ("xla", "shapes", "formula", "zero")


def _whole(value):
    return None if value is None or pd.isna(value) else int(value)


def _host_row(record: dict) -> dict:
    total_us = record["total_ps"] / 1e6
    return {"op_name": record["op_name"], "op_type": record["op_type"], "hlo_module": record["hlo_module"],
            "layer": record["layer"], "phase": record["phase"], "device": record["device"], "dtype": record["dtype"],
            "input_shapes": record["input_shapes"], "output_shapes": record["output_shapes"],
            "occurrences": record["occurrences"], "flops": _whole(record["flops"]), "macs": _whole(record["macs"]),
            "xla_valid_macs": _whole(record["xla_valid_macs"]), "bytes": _whole(record["bytes"]), "total_time_us": total_us,
            "avg_time_us": total_us / record["occurrences"], "flops_source": record["flops_source"],
            "note": record["note"], "source_line": record["source_line"]}


def _launched_rows(kernels: pd.DataFrame) -> list:
    """Each op's kernels on one device, rolled up: occurrences = launches of its most-launched kernel
    (one per op execution); per-occurrence counts = the kernels' totals / occurrences; the count is
    unknown when any of its kernels' is; text columns come from its longest-running kernel."""
    if kernels.empty:
        return []
    keys = ["device", "op_name", "op_type", "hlo_module"]
    frame = kernels.assign(
        flop_total=kernels["flops"].astype("Float64") * kernels["occurrences"],
        byte_total=kernels["bytes"].astype("Float64") * kernels["occurrences"],
        valid_total=kernels["xla_valid_macs"].astype("Float64") * kernels["occurrences"],
        mac_total=kernels["macs"].astype("Float64") * kernels["occurrences"],
        **{f"has_{s}": kernels["flops_source"] == s for s in (UNKNOWN,) + _SOURCE_ORDER})
    frame["flop_missing"] = frame["flop_total"].isna()
    frame["byte_missing"] = frame["byte_total"].isna()
    grouped = frame.groupby(keys, sort=False, dropna=False)
    table = grouped.agg(occurrences=("occurrences", "max"), kernels=("kernel_name", "size"),
                        total_ps=("total_ps", "sum"), flop_total=("flop_total", "sum"),
                        byte_total=("byte_total", "sum"), valid_total=("valid_total", "sum"),
                        valid_any=("valid_total", "count"), mac_total=("mac_total", "sum"),
                        mac_any=("mac_total", "count"), flop_missing=("flop_missing", "any"),
                        byte_missing=("byte_missing", "any"),
                        **{f"has_{s}": (f"has_{s}", "any") for s in (UNKNOWN,) + _SOURCE_ORDER})
    main = (frame.sort_values("total_ps", ascending=False, kind="stable").groupby(keys, sort=False, dropna=False)
            [["layer", "phase", "dtype", "shape", "note", "source_line"]].first())
    table = table.join(main).reset_index()
    rows = []
    for row in table.to_dict("records"):
        occurrences = int(row["occurrences"])
        unknown = bool(row[f"has_{UNKNOWN}"])
        source = UNKNOWN if unknown else next((s for s in _SOURCE_ORDER if row[f"has_{s}"]), "zero")
        total_us = float(row["total_ps"]) / 1e6
        rows.append({
            "op_name": row["op_name"], "op_type": row["op_type"], "hlo_module": row["hlo_module"],
            "layer": row["layer"], "phase": row["phase"], "device": row["device"],
            "dtype": row["dtype"] or "", "input_shapes": row["shape"] or "", "output_shapes": "",
            "occurrences": occurrences,
            "flops": None if unknown or row["flop_missing"] else int(row["flop_total"]) // occurrences,
            # MACs: on the op's main kernel (split kernels hold none), where its count is known.
            "macs": int(row["mac_total"]) // occurrences if row["mac_any"] and not unknown else None,
            "xla_valid_macs": int(row["valid_total"]) // occurrences if row["valid_any"] else None,
            "bytes": None if row["byte_missing"] else int(row["byte_total"]) // occurrences,
            "total_time_us": total_us, "avg_time_us": total_us / occurrences, "flops_source": source,
            "note": f"{row['kernels']} kernel(s); " + (row["note"] or ""), "source_line": row["source_line"] or ""})
    return rows


def ops_table(records: pd.DataFrame) -> pd.DataFrame:
    """The ops table (module doc) from split-applied records, sorted by total time."""
    kernels = records[records["source"] == "kernel"]
    launched = set(kernels["op_name"])
    host = records[records["source"].isin(("tf", "xla")) & ~records["op_name"].isin(launched)]
    rows = [_host_row(r) for r in host[host["source"] == "xla"].to_dict("records")]
    rows += _launched_rows(kernels)
    rows += [_host_row(r) for r in host[host["source"] == "tf"].to_dict("records")]
    table = pd.DataFrame(rows, columns=[c for c in OPS_COLUMNS if c not in _RATE_COLUMNS])
    table = add_rates(table, float(table["total_time_us"].sum()) if len(table) else 0.0)
    table = table.sort_values("total_time_us", ascending=False, kind="stable").reset_index(drop=True)
    return table[OPS_COLUMNS]


_RATE_COLUMNS = ("gflops_per_s", "gbytes_per_s", "intensity", "time_share")


def add_rates(table: pd.DataFrame, total_op_us: float) -> pd.DataFrame:
    """GFLOP/s, GB/s, intensity and time share from counts and times (NaN where unknown)."""
    table = table.copy()
    for column in ("flops", "macs", "xla_valid_macs", "bytes"):
        table[column] = pd.array(table[column], dtype="Int64")
    seconds = table["total_time_us"].astype(float) / 1e6
    flops = table["flops"].astype("Float64") * table["occurrences"]
    size = table["bytes"].astype("Float64") * table["occurrences"]
    with np.errstate(divide="ignore", invalid="ignore"):
        table["gflops_per_s"] = (flops / seconds / 1e9).where(seconds > 0)
        table["gbytes_per_s"] = (size / seconds / 1e9).where(seconds > 0)
        table["intensity"] = (table["flops"].astype("Float64") / table["bytes"].astype("Float64")).where(
            table["bytes"].astype("Float64") > 0)
    table["time_share"] = table["total_time_us"] / total_op_us if total_op_us else np.nan
    return table
