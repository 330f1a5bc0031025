"""Registration API of the cost formulas (a minimal shim over `FORMULAS` / `ZERO_OPS`).

Exactly the three functions the rewritten registry provides; this file is
replaced by the real registry at merge, so it stays small.
"""
from __future__ import annotations

from typing import Callable

from . import FORMULAS, ZERO_OPS, _output_or_broadcast

FAMILIES: dict = {}  # op type -> family name


def _spellings(op_type: str, variants: bool) -> list:
    base = op_type.lstrip("_")
    return [op_type, f"_Mkl{base}", f"_MklNative{base}"] if variants else [op_type]


def _claim(names: list, family: str) -> None:
    for name in names:
        if name in FORMULAS or name in ZERO_OPS:
            raise ValueError(f"{name} is already registered")
        FAMILIES[name] = family


def register(*op_types: str, family: str, variants: bool = True):
    """Decorator: `fn(op) -> (flops, macs) | None` prices every op type given (and its oneDNN spellings)."""
    def wrap(fn: Callable):
        names = [name for op_type in op_types for name in _spellings(op_type, variants)]
        _claim(names, family)
        for name in names:
            FORMULAS[name] = fn
        return fn
    return wrap


def register_elementwise(op_type: str, flops_per_element: int, family: str = "elementwise"):
    """`flops_per_element` FLOPs per output element (the broadcast of the inputs without an output)."""
    def elementwise(op):
        out = _output_or_broadcast(op)
        return None if out is None else (flops_per_element * out.num_elements, None)
    elementwise.__name__ = f"elementwise_{flops_per_element}"
    register(op_type, family=family)(elementwise)


def declare_zero(*op_types: str, reason: str, family: str = "data movement"):
    """Op types that perform no floating-point arithmetic, with the reason shown in the note."""
    names = [name for op_type in op_types for name in _spellings(op_type, False)]
    _claim(names, family)
    for name in names:
        ZERO_OPS[name] = reason
