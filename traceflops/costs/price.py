"""Pricing one op execution from the registry, and the registry as users see it."""
from __future__ import annotations

from typing import Callable

import pandas as pd

from .registry import (CALL_REASON, FORMULA, SHAPES, UNKNOWN, ZERO, Cost, OpInfo, entries, is_function_call,
                       lookup, register)
from ..graph.shapes import FLOAT_DTYPES, total_bytes

SUPPORTED_COLUMNS = ["op_type", "family", "kind", "description", "variant_of"]


def compute_dtype(op: OpInfo) -> str:
    """The dtype the op computes in: its first floating input, else its first input or output."""
    for tensor in list(op.inputs) + list(op.outputs):
        if tensor is not None and tensor.dtype in FLOAT_DTYPES:
            return tensor.dtype
    for tensor in list(op.inputs) + list(op.outputs):
        if tensor is not None:
            return tensor.dtype
    return ""


def op_cost(op: OpInfo) -> Cost:
    """The cost of one execution of `op`: formula, declared zero, or unknown."""
    known_in = [t for t in op.inputs if t is not None]
    size = total_bytes(list(op.inputs) + list(op.outputs)) if (known_in or op.outputs) else None
    dtype = compute_dtype(op)
    entry = lookup(op.op_type)
    if entry is not None and entry.kind == ZERO:
        return Cost(0, None, size, ZERO, dtype, entry.reason)
    if is_function_call(op.op_type):
        return Cost(0, None, size, ZERO, dtype, CALL_REASON)
    if entry is None:
        return Cost(None, None, size, UNKNOWN, dtype, "no formula for this op type")
    result = entry.formula(op)
    if result is None:
        return Cost(None, None, size, UNKNOWN, dtype, "shapes or attributes the formula needs are missing")
    flops, macs = result[0], result[1]
    transcendentals = int(result[2]) if len(result) > 2 and result[2] is not None else 0
    macs = None if macs is None else int(macs)
    name = entry.formula.__name__
    if op.inferred:
        return Cost(int(flops), macs, size, SHAPES, dtype, f"{name}; " + "; ".join(op.inferred), transcendentals)
    return Cost(int(flops), macs, size, FORMULA, dtype, name, transcendentals)


def register_formula(*op_types: str, family: str = "other", variants: bool = False) -> Callable:
    """Decorator: price a custom op type with your own formula.

    The function receives an `OpInfo` (op_type, inputs and outputs as TensorSpecs
    with `.dims`, `.dtype`, `.num_elements`, attrs) and returns `(flops, macs)`
    (macs None unless it is a contraction), or None when it cannot count (the op
    is then `unknown`). `family` is one of `traceflops.costs.FAMILIES` (the
    roofline plot's colours). Registering an op type traceflops already prices
    raises ValueError; `traceflops.costs.unregister(op_type)` first to replace it.

        @traceflops.register_formula("MyGelu", family="elementwise")
        def my_gelu(op):
            '''9 FLOPs per output element.'''
            out = op.output(0)
            return (9 * out.num_elements, None) if out is not None else None
    """
    return register(*op_types, family=family, variants=variants)


def supported_ops() -> pd.DataFrame:
    """Every op type traceflops prices: op_type, family, kind (`formula` or `zero`), description
    (the formula's first docstring line, or the zero reason), variant_of (the op type a generated
    oneDNN spelling comes from, else "")."""
    rows = [{"op_type": e.op_type, "family": e.family, "kind": e.kind, "description": e.description,
             "variant_of": e.variant_of} for e in entries()]
    return pd.DataFrame(rows, columns=SUPPORTED_COLUMNS)
