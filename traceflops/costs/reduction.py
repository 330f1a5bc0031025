"""Reductions over axes: sum, max, min, prod, any, all, argmax, argmin, euclidean norm, mean."""
from __future__ import annotations

from .registry import OpInfo, register

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
