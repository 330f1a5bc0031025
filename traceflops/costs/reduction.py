"""Reductions over axes: sum, max, min, prod, any, all, argmax, argmin, euclidean norm, mean; running
sums and products (cumsum, cumprod); top-k selection."""
from __future__ import annotations

import math

from ..ops import OpInfo
from .registry import register

FAMILY = "reduction"


@register("Sum", "Max", "Min", "Prod", "Any", "All", "ArgMax", "ArgMin", "EuclideanNorm", family=FAMILY)
def reduce(op: OpInfo):
    """input elements − output elements: reducing n values to one takes n − 1 operations."""
    x, out = op.input(0), op.output(0)
    if x is None or out is None:
        return None
    return x.num_elements - out.num_elements, None


@register("Mean", family=FAMILY)
def reduce_mean(op: OpInfo):
    """input elements: (input − output) adds, then 1 divide per output."""
    x = op.input(0)
    if x is None:
        return None
    return x.num_elements, None


@register("Cumsum", "Cumprod", "CumulativeLogsumexp", family=FAMILY)
def cumulative(op: OpInfo):
    """1 per input element: a running add (multiply) per element; counts the first of each row too, as
    the axis is a tensor input the trace does not record (n per row instead of n − 1)."""
    x = op.input(0)
    if x is None:
        return None
    return x.num_elements, None


@register("TopKV2", "TopK", family=FAMILY)
def top_k(op: OpInfo):
    """Compares: n − 1 per row for k = 1, else n·⌈log2 k⌉ per row (heap selection of k of n, worst case)."""
    x, values = op.input(0), op.output(0)
    if x is None or values is None or not x.dims or not values.dims:
        return None
    n, k = x.dims[-1], values.dims[-1]
    rows = x.num_elements // n if n else 0
    if k <= 1:
        return rows * max(n - 1, 0), None
    return rows * n * math.ceil(math.log2(k)), None
