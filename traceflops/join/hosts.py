"""Join, the hosts table: one row per host of a multi-host trace, and its straggler.

Its columns are the schema's `hosts` table (`traceflops/schema.py`, rendered in
docs/design.md). The straggler is the host with the longest median step time.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from ..schema import columns

HOST_COLUMNS = columns("hosts")


def _counted(records: pd.DataFrame) -> pd.DataFrame:
    """The records whose FLOPs the ops table counts: kernels, and host work that launched none."""
    kernels = records["source"] == "kernel"
    launched = set(records.loc[kernels, "op_name"])
    host = records["source"].isin(("tf", "xla")) & ~records["op_name"].isin(launched)
    return records[kernels | host]


def hosts_table(records: pd.DataFrame, step_rows: pd.DataFrame) -> pd.DataFrame:
    """The hosts table (module doc) from the priced records and the analysed step rows; mfu left empty."""
    counted = _counted(records)
    flops = (counted["flops"].astype("Float64").fillna(0) * counted["occurrences"]).astype(float)
    flop_totals = flops.groupby(counted["host"].to_numpy()).sum()
    hosts = list(dict.fromkeys(list(step_rows["host"].astype(str)) + list(records["host"].astype(str))))
    rows = []
    for host in hosts:
        durations = step_rows.loc[step_rows["host"].astype(str) == host, "duration_ps"].to_numpy(dtype=float)
        median = float(np.median(durations)) / 1e6 if len(durations) else np.nan
        per_step = float(flop_totals.get(host, 0.0)) / max(len(durations), 1)
        rows.append({"host": host, "steps": len(durations), "median_step_time_us": median,
                     "flops_per_step": int(round(per_step)),
                     "gflops_per_s": per_step / (median * 1e3) if median and median > 0 else np.nan})
    table = pd.DataFrame(rows, columns=[c for c in HOST_COLUMNS if c not in ("step_time_skew", "mfu")])
    middle = float(np.nanmedian(table["median_step_time_us"])) if table["median_step_time_us"].notna().any() \
        else np.nan
    table.insert(3, "step_time_skew", table["median_step_time_us"] / middle - 1 if middle else np.nan)
    table["mfu"] = np.nan
    return table[HOST_COLUMNS]


def apply_peak(table: pd.DataFrame, peak_gflops: Optional[float]) -> pd.DataFrame:
    """Fill `mfu` from the primary device's float32 peak (GFLOP/s)."""
    if peak_gflops:
        table = table.assign(mfu=table["gflops_per_s"] / float(peak_gflops))
    return table


def straggler(table: pd.DataFrame) -> Optional[dict]:
    """{host, median_step_time_us, step_time_skew} of the slowest host, None with fewer than two timed hosts."""
    timed = table[table["median_step_time_us"].notna()]
    if len(timed) < 2:
        return None
    row = timed.loc[timed["median_step_time_us"].idxmax()]
    return {"host": row["host"], "median_step_time_us": float(row["median_step_time_us"]),
            "step_time_skew": float(row["step_time_skew"])}
