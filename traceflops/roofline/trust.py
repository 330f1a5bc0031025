"""How far a measured ceiling can be trusted, and what to do when the ops say it is wrong.

A compute ceiling measured while other work ran on the machine comes out low
(47.65 GFLOP/s float32 cached where a quiet run gives 124-137), and every later
profile then rated ops against it: false counting-error warnings, efficiencies
and model FLOPs utilization far above 100%. So:

* `machine_load()` / `load_between()` measure how much CPU other processes
  used while the ceilings were measured; `confidence()` states it (high,
  medium, low) from that load and the spread of the repeated trials;
* `implausible()` says when a cached measurement must be measured again (low
  confidence, far below the theoretical peak, no stated conditions);
* `check_against_ops()` is the rule at analysis time: an op that beats the
  measured ceiling but not the theoretical peak (or the measured one,
  whichever is higher, by COUNTING_ERROR_MARGIN) proves the measured ceiling
  low or stale: the roofline then uses the best achieved rate as the
  ceiling and says so, with how to refresh it; only an op above the higher of
  the two by the margin is a counting (or timing) error.
"""
from __future__ import annotations

import os
import time
from typing import Optional

import numpy as np
import pandas as pd

# Above max(theoretical, measured) by this much an op's rate is a counting or timing error.
COUNTING_ERROR_MARGIN = 1.10
# Achieved above measured by this much (and below the error line) means the measured ceiling is low.
LOW_CEILING_MARGIN = 1.05
# Other processes using more than this share of the machine's CPUs make a measurement unreliable.
BUSY_SHARE = 0.25
QUIET_SHARE = 0.05
# Best and median trial further apart than this: noisy.
NOISY_SPREAD = 0.15
# A cached float32 ceiling under this share of the theoretical peak is measured again (an order of
# magnitude off: a ceiling merely low is caught by the ops that beat it, check_against_ops).
IMPLAUSIBLE_SHARE = 0.10
# An op must run at least this long in total to prove a ceiling low (short ops time noisily).
MIN_PROOF_TIME_US = 50.0
REFRESH_HINT = "refresh it on a quiet machine: `traceflops peaks --refresh` (or `profile --refresh-ceilings`)"


def _cpu_ticks() -> Optional[tuple]:
    """(busy, total) jiffies of the whole machine from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as stream:
            fields = stream.readline().split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields[:8]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def machine_load() -> dict:
    """A snapshot to pass to `load_between` later: machine ticks, this process's CPU time, wall clock."""
    times = os.times()
    return {"ticks": _cpu_ticks(), "own_s": times.user + times.system, "wall": time.monotonic()}


def load_between(before: dict, after: Optional[dict] = None) -> dict:
    """Share of the machine's CPUs other processes used between two snapshots, and the load average."""
    after = after or machine_load()
    result = {"cpus": os.cpu_count() or 1, "wall_s": round(after["wall"] - before["wall"], 2),
              "loadavg_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
              "other_processes_cpu_share": None}
    if before["ticks"] and after["ticks"]:
        busy = after["ticks"][0] - before["ticks"][0]
        total = after["ticks"][1] - before["ticks"][1]
        hertz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        own = (after["own_s"] - before["own_s"]) * hertz
        if total > 0:
            result["other_processes_cpu_share"] = round(max(0.0, (busy - own) / total), 3)
    return result


def confidence(load: dict, spread: Optional[float]) -> tuple:
    """('high' | 'medium' | 'low', why) from the others' CPU share and the trials' spread."""
    share = load.get("other_processes_cpu_share")
    reasons = []
    level = "high"
    if share is None:
        level, reasons = "medium", ["the machine's load could not be read"]
    elif share > BUSY_SHARE:
        level = "low"
        reasons.append(f"other processes used {share:.0%} of the CPUs while it was measured")
    elif share > QUIET_SHARE:
        level = "medium"
        reasons.append(f"other processes used {share:.0%} of the CPUs")
    if spread is not None and spread > NOISY_SPREAD:
        level = "low" if level != "high" else "medium"
        reasons.append(f"trials spread {spread:.0%} between best and median")
    return level, "; ".join(reasons) or "quiet machine, trials agree"


def _dict(value) -> dict:
    """`value` when it is a dict, else {} (cache and ceilings files are user-editable JSON)."""
    return value if isinstance(value, dict) else {}


def implausible(measured: dict, theoretical_float32: Optional[float]) -> Optional[str]:
    """Why a cached measurement must not be reused, or None."""
    conditions = _dict(_dict(measured.get("measured")).get("conditions"))
    if not conditions:
        return "it states no measuring conditions (written by an older traceflops)"
    if conditions.get("confidence") == "low":
        return f"it was measured with low confidence ({conditions.get('confidence_reason')})"
    float32 = _dict(measured.get("peak_gflops_per_s")).get("float32")
    if not isinstance(float32, (int, float)) or float32 <= 0:
        return "its float32 ceiling is missing or not a positive number"
    if theoretical_float32 and float32 < IMPLAUSIBLE_SHARE * theoretical_float32:
        return (f"its float32 ceiling {float32:.4g} GFLOP/s is under {IMPLAUSIBLE_SHARE:.0%} of the "
                f"theoretical {theoretical_float32:.4g}")
    return None


def describe_age(written_at: Optional[float]) -> str:
    if not written_at:
        return "age unknown"
    age = max(0.0, time.time() - written_at)
    for unit, seconds in (("day", 86400), ("h", 3600), ("min", 60)):
        if age >= seconds:
            return f"measured {age / seconds:.0f} {unit}{'s' if unit == 'day' and age >= 2 * seconds else ''} ago"
    return "measured just now"


def _best_rates(ops: pd.DataFrame, error_line) -> dict:
    """{dtype: (GFLOP/s, op_name)} of the fastest compute op per dtype that ran long enough to prove
    it and stays under `error_line(dtype)` (faster ones are counting errors, not proof of a low ceiling)."""
    flops = pd.to_numeric(ops["flops"], errors="coerce").astype(float).to_numpy()
    rate = pd.to_numeric(ops["gflops_per_s"], errors="coerce").astype(float).to_numpy()
    time_us = pd.to_numeric(ops["total_time_us"], errors="coerce").astype(float).to_numpy()
    dtypes = ops["dtype"].fillna("").map(_canonical).to_numpy()
    names = ops["op_name"].astype(str).to_numpy()
    best = {}
    with np.errstate(invalid="ignore"):
        usable = (flops > 0) & np.isfinite(rate) & (time_us >= MIN_PROOF_TIME_US)
    for i in np.flatnonzero(usable):
        if rate[i] <= error_line(dtypes[i]) and rate[i] > best.get(dtypes[i], (0.0, ""))[0]:
            best[dtypes[i]] = (float(rate[i]), names[i])
    return best


def _canonical(dtype) -> str:
    from ..graph.shapes import canonical_dtype
    return canonical_dtype(str(dtype)) if dtype else "float32"


def check_against_ops(ops: pd.DataFrame, ceilings: dict) -> tuple:
    """(ceilings to rate the ops against, warnings, notes) for one device.

    Where an op beats the measured ceiling of its dtype by LOW_CEILING_MARGIN but stays under the
    counting-error line (max(theoretical, measured) x COUNTING_ERROR_MARGIN), the measured ceiling is
    low: the returned ceilings use the op's rate instead, `ceilings["raised"]` says from what, and a
    warning says how to refresh it."""
    peaks = dict(_dict(ceilings.get("peak_gflops_per_s")))
    theoretical = _dict(_dict(ceilings.get("theoretical")).get("peak_gflops_per_s"))
    warnings, raised = [], {}
    if not peaks or ceilings.get("source") not in (None, "measured"):
        return ceilings, warnings, raised
    def error_line(dtype: str) -> float:
        measured = peaks.get(dtype) or peaks.get("float32") or 0.0
        return max(float(theoretical.get(dtype) or 0.0), measured) * COUNTING_ERROR_MARGIN

    for dtype, (rate, op_name) in _best_rates(ops, error_line).items():
        measured = peaks.get(dtype) or peaks.get("float32")
        if not measured or rate <= measured * LOW_CEILING_MARGIN:
            continue
        raised[dtype] = {"measured": measured, "used": round(rate, 2), "op": op_name}
        conditions = _dict(_dict(ceilings.get("measured")).get("conditions"))
        when = describe_age(ceilings.get("written_at"))
        how = f", {conditions['confidence']} confidence" if conditions.get("confidence") else ""
        theory = f" (theoretical {theoretical[dtype]:.4g})" if theoretical.get(dtype) else ""
        warnings.append(
            f"the measured {dtype} ceiling looks low or stale: {measured:.4g} GFLOP/s ({when}{how}), but "
            f"{op_name} ran at {rate:.4g} GFLOP/s{theory}, so the ceiling, not the count, is wrong. "
            f"The roofline uses {rate:.4g} GFLOP/s instead; {REFRESH_HINT}")
        peaks[dtype] = round(rate, 2)
    if not raised:
        return ceilings, warnings, raised
    adjusted = dict(ceilings, peak_gflops_per_s=peaks, raised=raised)
    return adjusted, warnings, raised


def counting_error_line(ceilings: dict, dtype: str, peak: float) -> float:
    """GFLOP/s above which an op of `dtype` is a counting or timing error."""
    theoretical = _dict(_dict(ceilings.get("theoretical")).get("peak_gflops_per_s")).get(dtype)
    measured = _dict(_dict(ceilings.get("raised")).get(dtype)).get("measured") or peak
    return max(float(theoretical or 0.0), float(measured), float(peak)) * COUNTING_ERROR_MARGIN


def mfu_note(mfu: Optional[float], raised: dict, source: Optional[str] = "measured") -> Optional[str]:
    """Why a model FLOPs utilization above 100% is shown, or None when it is not above 100%."""
    if mfu is None or not np.isfinite(mfu) or mfu <= 1.0:
        return None
    if source not in (None, "measured"):
        return (f"above 100% of the {source} peak: a count is too high or times too short (or the device "
                "ran above the clock its trace reports)")
    if raised:
        return "above 100%: the ceiling it is measured against was raised to the best op's rate and is still low"
    return ("above 100%: the step did more FLOPs per second than the ceiling allows; the ceiling is low "
            f"(measured under load?) or a count is too high; {REFRESH_HINT}")
