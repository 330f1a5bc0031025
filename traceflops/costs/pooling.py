"""Pooling: max and average pools over `ksize` windows."""
from __future__ import annotations

import math
from typing import Optional

from ..ops import OpInfo
from .registry import register

FAMILY = "pooling"


def _window(op: OpInfo) -> Optional[int]:
    ksize = op.attrs.get("ksize")
    if not ksize:
        return None
    return math.prod(ksize)


@register("MaxPool", "MaxPoolV2", "MaxPool3D", family=FAMILY)
def max_pool(op: OpInfo):
    """(window − 1) compares per output element (SAME-padded border windows counted full)."""
    out, window = op.output(0), _window(op)
    if out is None or window is None:
        return None
    return (window - 1) * out.num_elements, None


@register("AvgPool", "AvgPool3D", family=FAMILY)
def avg_pool(op: OpInfo):
    """window FLOPs per output element: (window − 1) adds and 1 divide."""
    out, window = op.output(0), _window(op)
    if out is None or window is None:
        return None
    return window * out.num_elements, None
