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
