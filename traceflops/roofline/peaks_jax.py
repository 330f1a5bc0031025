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

from typing import Optional, Sequence

from .peaks_sweep import (DEFAULT_DTYPES, DEFAULT_GEMM_SIZES, DEFAULT_REPEATS, DEFAULT_TIME_BUDGET_S,
                          run_measurement, timed_calls)


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

    rates = {"in_place_add": 3 * elements * 4 / timed_calls(in_place, repeats)[0] / 1e9,
             "allocating_mul": 2 * elements * 4 / timed_calls(
                 lambda: double(source).block_until_ready(), repeats)[0] / 1e9}
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
    target = jax_device(jax, device)
    result = run_measurement(lambda size, name: _gemm_call(jax, target, size, name),
                             lambda size, count: _measure_bandwidth(jax, target, size, count),
                             sizes, dtypes, repeats, buffer_bytes, time_budget_s)
    result["measured"].update(backend="jax", jax_version=jax.__version__)
    return {"device": device, **result}
