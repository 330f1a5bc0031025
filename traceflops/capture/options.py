"""Capture options, checked once before TensorFlow is imported (a bad flag costs no 2-second import)."""
from __future__ import annotations

import re

from ..errors import UsageError

_DEVICE = re.compile(r"^(/?device:)?(CPU|GPU)(:\d+)?$", re.IGNORECASE)


def validate_capture_options(batch_size, steps, warmup, host_tracer_level, device: str) -> None:
    """Raise UsageError naming the flag for any value the capture cannot use."""
    if batch_size is None or batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1 (got {batch_size})")
    if steps is None or steps < 1:
        raise UsageError(f"--steps must be at least 1 (got {steps})")
    if warmup is None or warmup < 0:
        raise UsageError(f"--warmup must be 0 or more (got {warmup})")
    if host_tracer_level not in (2, 3):
        raise UsageError(f"--host-tracer-level must be 2 or 3 (got {host_tracer_level})")
    if not _DEVICE.match(str(device).strip()):
        raise UsageError(f"--device {device!r}: expected CPU:0 or GPU:N")


BACKENDS = ("tensorflow", "jax")


def resolve_backend(backend=None) -> str:
    """`tensorflow` or `jax`: the one asked for, else $KERAS_BACKEND, else `tensorflow`."""
    import os
    chosen = (backend or os.environ.get("KERAS_BACKEND") or "tensorflow").strip().lower()
    if chosen not in BACKENDS:
        where = "--backend" if backend else "KERAS_BACKEND"
        raise UsageError(f"{where} {chosen!r}: traceflops profiles Keras on tensorflow or jax")
    return chosen
