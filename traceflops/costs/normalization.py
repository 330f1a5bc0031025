"""Normalization (batch norm, layer norm) and softmax."""
from __future__ import annotations

from .epilogues import epilogue_flops
from ..ops import OpInfo
from .registry import register


def _channels_axis(op: OpInfo, rank: int) -> int:
    fmt = op.attrs.get("data_format") or ""
    return 1 if fmt.startswith("NC") else rank - 1


@register("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "_FusedBatchNormEx", family="normalization")
def batch_norm(op: OpInfo):
    """Inference: 2 per element (x·scale′+offset′) + 5 per channel; training +3 per element; side input +1.

    scale' = scale*rsqrt(var+eps) and offset' = offset-mean*scale' per channel
    (add, rsqrt, mul, mul, sub = 5 per channel), then y = x*scale'+offset' (2 per
    element); a fused side input adds 1 and a fused activation its own cost per
    element. Training (is_training) also computes mean and variance: +3 per
    element (sum, sub-square, sum).
    """
    x = op.input(0)
    if x is None:
        return None
    channels = x.dims[_channels_axis(op, x.rank)] if x.rank else 1
    per_element = 2 + (3 if op.attrs.get("is_training") else 0)
    if op.attrs.get("num_side_inputs"):
        per_element += 1
    activation = op.attrs.get("activation_mode")
    if activation and activation != "Identity":
        activation_flops = epilogue_flops("tf", activation)
        per_element += 1 if activation_flops is None else activation_flops
    return per_element * x.num_elements + 5 * channels, None


@register("_MklLayerNorm", family="normalization")
def layer_norm(op: OpInfo):
    """8 per element: mean (n), variance (sub, square, sum: 3n), normalize (2n), scale and shift (2n).

    Per row of n: mean (n), variance (sub, square, sum: 3n), rsqrt (1),
    normalize (sub, mul: 2n), scale and shift (2n).
    """
    x = op.input(0)
    if x is None:
        return None
    return 8 * x.num_elements, None


@register("Softmax", "LogSoftmax", family="softmax")
def softmax(op: OpInfo):
    """5 per element: max, subtract, exp, sum, divide (log-softmax: max, sub, exp, sum, sub).

    Per row of n: max (n-1), subtract (n), exp (n), sum (n-1), divide (n) ~ 5 per
    element; log-softmax: max, sub, exp, sum, log (per row), sub = also 5 per element.
    """
    x = op.input(0)
    if x is None:
        return None
    return 5 * x.num_elements, None, x.num_elements
