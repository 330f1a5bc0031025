"""Image resizing (Keras UpSampling2D, Resizing, tf.image.resize) and its gradients.

Per output element (every channel of every output pixel): bilinear
interpolation is three lerps, a + (b − a)·t, of 3 FLOPs each; bicubic is four
4-tap rows and one 4-tap column, 7 FLOPs each (4 multiplies, 3 adds). The
interpolation weights are computed once per output row and column (not per
element) and are not counted. Gradients scatter each incoming gradient
element into the taps it came from: a multiply and an add per tap.
"""
from __future__ import annotations

from ..ops import OpInfo
from .registry import declare_zero, register

FAMILY = "elementwise"


def _per_output(op: OpInfo, per_element: int):
    out = op.output(0)
    return None if out is None else (per_element * out.num_elements, None)


def _per_gradient(op: OpInfo, per_element: int):
    grads = op.input(0)
    return None if grads is None else (per_element * grads.num_elements, None)


@register("ResizeBilinear", "ScaleAndTranslate", family=FAMILY)
def resize_bilinear(op: OpInfo):
    """9 per output element: three lerps a + (b − a)·t (two along x, one along y)."""
    return _per_output(op, 9)


@register("ResizeBicubic", family=FAMILY)
def resize_bicubic(op: OpInfo):
    """35 per output element: five 4-tap weighted sums (4 rows, then the column), 7 FLOPs each."""
    return _per_output(op, 35)


@register("ResizeBilinearGrad", family=FAMILY)
def resize_bilinear_grad(op: OpInfo):
    """10 per incoming gradient element: 2 row weights, then a multiply and an add into each of 4 taps."""
    return _per_gradient(op, 10)


@register("ResizeBicubicGrad", family=FAMILY)
def resize_bicubic_grad(op: OpInfo):
    """32 per incoming gradient element: a multiply and an add into each of 16 taps."""
    return _per_gradient(op, 32)


@register("ResizeNearestNeighborGrad", family=FAMILY)
def resize_nearest_grad(op: OpInfo):
    """1 add per incoming gradient element (summed into the source pixel it was copied from)."""
    return _per_gradient(op, 1)


declare_zero("ResizeNearestNeighbor", reason="copies the nearest source pixel: no arithmetic on tensor data",
             family="data movement")
