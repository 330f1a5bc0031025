"""Compute and memory ceilings measured through JAX, for `--backend jax` and machines without TensorFlow.

The same yardsticks as `peaks.measure_peaks` (TensorFlow), run by XLA, which runs
the JAX programs we profile: a sweep of jitted square GEMMs per dtype (median of
`repeats` calls after a compiling warm-up, best size kept, larger sizes skipped
when the cubic extrapolation would overrun the dtype's time share; a dtype that
fails or runs below 5% of float32 is skipped with the reason), and two streaming
ops over a buffer far larger than the last-level cache: `a + b` written into a
donated `a` (reads 2 buffers, writes 1) and an allocating `x * 2` (reads 1,
writes a fresh one); the faster is kept. Results use the layout of
`peaks.measure_peaks`, so `peaks.get_ceilings` caches them the same way (its key
then names the backend and the JAX version).
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

from .peaks import (BANDWIDTH_RESERVE_S, DEFAULT_DTYPES, DEFAULT_GEMM_SIZES, DEFAULT_REPEATS,
                    DEFAULT_TIME_BUDGET_S, SLOW_DTYPE_FRACTION, _median_call_s, default_buffer_bytes,
                    last_level_cache_bytes)


def jax_device(jax, device: str):
    kind, _, index = device.replace("/device:", "").upper().partition(":")
    return jax.devices(kind.lower())[int(index or 0)]


def _gemm_call(jax, target, size: int, dtype_name: str):
    import jax.numpy as jnp
    key = jax.random.PRNGKey(size)
    lhs = jax.device_put(jax.random.normal(key, (size, size), jnp.float32).astype(dtype_name), target)
    rhs = jax.device_put(jax.random.normal(key, (size, size), jnp.float32).astype(dtype_name), target)
    matmul = jax.jit(jnp.matmul)
    return lambda: matmul(lhs, rhs).block_until_ready()


def _sweep_dtype(jax, target, dtype_name: str, sizes: Sequence[int], repeats: int, budget_s: float,
                 float32_by_size: dict) -> dict:
    """Best median GFLOP/s of square jitted matmuls over `sizes` (see peaks._sweep_dtype)."""
    started = time.perf_counter()
    by_size, skipped_sizes, last = {}, [], None
    for size in sorted(sizes):
        if last is not None and time.perf_counter() - started + last[1] * (size / last[0]) ** 3 * (repeats + 1) \
                > budget_s:
            skipped_sizes.append(size)
            continue
        try:
            median_s = _median_call_s(_gemm_call(jax, target, size, dtype_name), repeats)
        except Exception as error:  # the dtype has no kernel on this device
            return {"error": f"{type(error).__name__}: {' '.join(str(error).split())[:240]}"}
        by_size[size] = round(2 * size ** 3 / median_s / 1e9, 2)
        last = (size, median_s)
        reference = float32_by_size.get(size)
        if dtype_name != "float32" and reference and by_size[size] < SLOW_DTYPE_FRACTION * reference:
            return {"skipped": (f"{by_size[size]} GFLOP/s at {size}^3, under {SLOW_DTYPE_FRACTION:.0%} of "
                                f"float32's {reference}: emulated, not a ceiling"), "by_size": by_size}
    best_size = max(by_size, key=by_size.get)
    return {"gflops_per_s": by_size[best_size], "best_size": best_size, "by_size": by_size,
            "skipped_sizes": skipped_sizes}


def _measure_bandwidth(jax, target, buffer_bytes: int, repeats: int) -> dict:
    import jax.numpy as jnp
    elements = buffer_bytes // 4
    source = jax.device_put(jnp.ones((elements,), jnp.float32), target)
    state = {"target": jax.device_put(jnp.zeros((elements,), jnp.float32), target)}
    add_into = jax.jit(lambda a, b: a + b, donate_argnums=0)
    double = jax.jit(lambda x: x * 2.0)

    def in_place():
        state["target"] = add_into(state["target"], source)
        state["target"].block_until_ready()

    rates = {"in_place_add": 3 * elements * 4 / _median_call_s(in_place, repeats) / 1e9,
             "allocating_mul": 2 * elements * 4 / _median_call_s(
                 lambda: double(source).block_until_ready(), repeats) / 1e9}
    best = max(rates, key=rates.get)
    return {"gbytes_per_s": round(rates[best], 2), "best_op": best,
            "by_op": {name: round(rate, 2) for name, rate in rates.items()},
            "ops": {"in_place_add": "a + b into the donated buffer a: reads 2 buffers, writes 1",
                    "allocating_mul": "x * 2.0: reads 1 buffer, writes a freshly allocated one"},
            "bytes_counted": "read + write (write-allocate traffic not counted)"}


def measure_peaks_jax(device: str = "CPU:0", sizes: Sequence[int] = DEFAULT_GEMM_SIZES,
                      dtypes: Sequence[str] = DEFAULT_DTYPES, repeats: int = DEFAULT_REPEATS,
                      buffer_bytes: Optional[int] = None, time_budget_s: float = DEFAULT_TIME_BUDGET_S) -> dict:
    """`peaks.measure_peaks` through JAX (module doc); the same result layout."""
    import jax
    started = time.perf_counter()
    target = jax_device(jax, device)
    dtypes = ["float32"] + [d for d in dtypes if d != "float32"]
    buffer_rule = "given by the caller"
    if buffer_bytes is None:
        buffer_bytes, buffer_rule = default_buffer_bytes()
    reserve_s = min(BANDWIDTH_RESERVE_S, time_budget_s / 4)
    gemm, skipped, float32_by_size = {}, {}, {}
    for position, dtype_name in enumerate(dtypes):
        remaining_s = time_budget_s - reserve_s - (time.perf_counter() - started)
        share_s = max(remaining_s / (len(dtypes) - position), 0.0)
        result = _sweep_dtype(jax, target, dtype_name, sizes, repeats, share_s, float32_by_size)
        if "gflops_per_s" in result:
            gemm[dtype_name] = result
        else:
            skipped[dtype_name] = result.get("error") or result["skipped"]
        if dtype_name == "float32":
            float32_by_size = result.get("by_size", {})
    bandwidth = _measure_bandwidth(jax, target, buffer_bytes, repeats)
    return {
        "device": device,
        "peak_gflops_per_s": {name: result["gflops_per_s"] for name, result in gemm.items()},
        "bandwidth_gbytes_per_s": bandwidth["gbytes_per_s"],
        "source": "measured",
        "measured": {
            "backend": "jax",
            "gemm": {name: {"best_size": r["best_size"], "gflops_per_s_by_size": r["by_size"],
                            "sizes_skipped_for_time": r["skipped_sizes"]} for name, r in gemm.items()},
            "dtypes_skipped": skipped,
            "bandwidth": {**bandwidth, "buffer_bytes": buffer_bytes, "buffer_rule": buffer_rule,
                          "last_level_cache_bytes": last_level_cache_bytes()},
            "repeats": repeats, "statistic": "median of repeats after one warm-up call",
            "sizes": list(sizes), "time_budget_s": time_budget_s, "jax_version": jax.__version__,
            "elapsed_s": round(time.perf_counter() - started, 2),
        },
    }
