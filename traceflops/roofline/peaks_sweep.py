"""The ceiling measurement any framework runs: a timed GEMM sweep per dtype and a streaming-bandwidth
test, through calls the framework makes (peaks.py: TensorFlow, peaks_jax.py: JAX), with the
machine's load around them.

GEMM: square matmuls for each size (best of `repeats` calls after a warm-up, the median kept as
the spread), best size kept; larger sizes are skipped when the cubic extrapolation of the last
one would overrun the dtype's share of the time budget. float32 always runs first; a dtype that
errors or runs below 5% of float32 is skipped and the reason kept. Bandwidth: over a buffer far
larger than the last-level cache (`default_buffer_bytes`).
"""
from __future__ import annotations

import re
import statistics
import time
from pathlib import Path
from typing import Optional, Sequence

DEFAULT_GEMM_SIZES = (512, 1024, 2048, 4096)
DEFAULT_DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_REPEATS = 5
DEFAULT_TIME_BUDGET_S = 20.0
# Time kept for the bandwidth part when the GEMM sweep shares the budget.
BANDWIDTH_RESERVE_S = 4.0
# A dtype whose GEMM runs below this fraction of float32's is emulated, not a ceiling.
SLOW_DTYPE_FRACTION = 0.05
MIB = 1 << 20
GIB = 1 << 30
MIN_BUFFER_BYTES = 256 * MIB
MAX_BUFFER_BYTES = 1 * GIB


def read_text(path: str) -> Optional[str]:
    """A (sysfs, procfs) file's text; None when it cannot be read."""
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _size_to_bytes(text: str) -> Optional[int]:
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)i?B?\s*", text, re.IGNORECASE)
    if not match:
        return None
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2).upper()]
    return int(match.group(1)) * scale


def last_level_cache_bytes() -> Optional[int]:
    """Size of cpu0's largest data/unified cache from sysfs (None when sysfs has none)."""
    best = None
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        kind = (read_text(str(index / "type")) or "").strip()
        size = _size_to_bytes(read_text(str(index / "size")) or "")
        if kind in ("Data", "Unified") and size and (best is None or size > best):
            best = size
    return best


def _available_memory_bytes() -> Optional[int]:
    for line in (read_text("/proc/meminfo") or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def default_buffer_bytes() -> tuple:
    """(bytes per streamed buffer, why): 8 x LLC, at least 256 MiB, at most min(1 GiB, RAM/8).

    The cap keeps the three buffers the measurement touches (two in place plus
    one allocated output) far from exhausting memory on a shared machine; the
    floor keeps the buffer out of caches that sysfs under-reports.
    """
    llc = last_level_cache_bytes()
    available = _available_memory_bytes()
    cap = MAX_BUFFER_BYTES if available is None else min(MAX_BUFFER_BYTES, available // 8)
    wanted = 8 * llc if llc else MIN_BUFFER_BYTES
    chosen = max(MIN_BUFFER_BYTES, min(wanted, cap))
    llc_text = f"{llc // MIB} MiB" if llc else "unknown"
    reason = f"8 x LLC ({llc_text}) = {wanted // MIB} MiB" if llc else "LLC size unknown"
    if chosen != wanted:
        reason += f", clamped to [{MIN_BUFFER_BYTES // MIB} MiB, {cap // MIB} MiB (min of 1 GiB, MemAvailable/8)]"
    return chosen, reason


def timed_calls(call, repeats: int) -> tuple:
    """(best, median) seconds of `call()` over `repeats`, after one warm-up (tracing, first-touch pages).

    The best trial is the ceiling (a busy machine only ever slows a trial down); the median beside
    it says how noisy the trials were."""
    call()
    durations = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return min(durations), statistics.median(durations)


def _error_text(error: Exception) -> str:
    """Type and last line of an error: tf.function errors start with a generic 'in user code:'."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    last = (lines[-1] if lines else "")[:240]
    prefix = f"{type(error).__name__}: "
    return last if last.startswith(prefix) else prefix + last


def sweep_dtype(gemm_call, dtype_name: str, sizes: Sequence[int], repeats: int,
                budget_s: float, float32_by_size: dict) -> dict:
    """Best GFLOP/s of square matmuls over `sizes` (`gemm_call(size, dtype_name)` makes one, through
    TensorFlow or JAX); stops early when out of budget.

    Returns {"gflops_per_s", "best_size", "by_size", "skipped_sizes", "error"/"skipped"}.
    """
    started = time.perf_counter()
    by_size, spreads, skipped_sizes, last = {}, {}, [], None  # last: (size, seconds per call)
    for size in sorted(sizes):
        if last is not None:
            predicted_s = last[1] * (size / last[0]) ** 3 * (repeats + 1)
            if time.perf_counter() - started + predicted_s > budget_s:
                skipped_sizes.append(size)
                continue
        try:
            best_s, median_s = timed_calls(gemm_call(size, dtype_name), repeats)
        except Exception as error:  # the dtype has no kernel on this device
            return {"error": _error_text(error)}
        by_size[size] = round(2 * size ** 3 / best_s / 1e9, 2)
        spreads[size] = round(median_s / best_s - 1, 3)
        last = (size, median_s)
        reference = float32_by_size.get(size)
        if dtype_name != "float32" and reference and by_size[size] < SLOW_DTYPE_FRACTION * reference:
            return {"skipped": (f"{by_size[size]} GFLOP/s at {size}^3, under {SLOW_DTYPE_FRACTION:.0%} of "
                                f"float32's {reference}: emulated, not a ceiling"), "by_size": by_size}
    best_size = max(by_size, key=by_size.get)
    return {"gflops_per_s": by_size[best_size], "best_size": best_size, "by_size": by_size,
            "skipped_sizes": skipped_sizes, "spread": spreads[best_size]}


def sweep_dtypes(sweep, dtypes: list, sizes, repeats: int, time_budget_s: float, started: float):
    """({dtype: GEMM sweep result}, {dtype: why skipped}): each dtype gets an even share of what is left
    of the time budget (a reserve kept for the bandwidth test); float32 first, its sizes guide the rest.
    `sweep(dtype_name, sizes, repeats, share_s, float32_by_size)` runs one dtype's sweep."""
    reserve_s = min(BANDWIDTH_RESERVE_S, time_budget_s / 4)
    gemm, skipped, float32_by_size = {}, {}, {}
    for position, dtype_name in enumerate(dtypes):
        remaining_s = time_budget_s - reserve_s - (time.perf_counter() - started)
        share_s = max(remaining_s / (len(dtypes) - position), 0.0)
        result = sweep(dtype_name, sizes, repeats, share_s, float32_by_size)
        if "gflops_per_s" in result:
            gemm[dtype_name] = result
        else:
            skipped[dtype_name] = result.get("error") or result["skipped"]
        if dtype_name == "float32":
            float32_by_size = result.get("by_size", {})
    return gemm, skipped


def run_measurement(gemm_call, measure_bandwidth, sizes, dtypes, repeats: int, buffer_bytes: Optional[int],
                    time_budget_s: float) -> dict:
    """The GEMM sweep and the bandwidth test through any framework (`gemm_call(size, dtype)` makes a
    call, `measure_bandwidth(buffer_bytes, repeats)` measures), with the machine's load around them
    and the confidence that follows (trust.py)."""
    from .trust import confidence, load_between, machine_load
    load_before = machine_load()
    started = time.perf_counter()
    dtypes = ["float32"] + [d for d in dtypes if d != "float32"]
    buffer_rule = "given by the caller"
    if buffer_bytes is None:
        buffer_bytes, buffer_rule = default_buffer_bytes()
    gemm, skipped = sweep_dtypes(lambda *args: sweep_dtype(gemm_call, *args), dtypes, sizes, repeats,
                                 time_budget_s, started)
    bandwidth = measure_bandwidth(buffer_bytes, repeats)
    load = load_between(load_before)
    spread = (gemm.get("float32") or {}).get("spread")
    level, why = confidence(load, spread)
    conditions = {**load, "float32_trial_spread": spread, "confidence": level, "confidence_reason": why,
                  "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    return {
        "peak_gflops_per_s": {name: r["gflops_per_s"] for name, r in gemm.items()},
        "bandwidth_gbytes_per_s": bandwidth["gbytes_per_s"],
        "source": "measured",
        "measured": {
            "gemm": {name: {"best_size": r["best_size"], "gflops_per_s_by_size": r["by_size"],
                            "sizes_skipped_for_time": r["skipped_sizes"]} for name, r in gemm.items()},
            "dtypes_skipped": skipped,
            "bandwidth": {**bandwidth, "buffer_bytes": buffer_bytes, "buffer_rule": buffer_rule,
                          "last_level_cache_bytes": last_level_cache_bytes()},
            "repeats": repeats, "statistic": "best of repeats after one warm-up call (median kept as spread)",
            "conditions": conditions, "sizes": list(sizes), "time_budget_s": time_budget_s,
            "elapsed_s": round(time.perf_counter() - started, 2),
        },
    }
