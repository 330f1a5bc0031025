"""Elementwise op types: FLOPs per output element (inputs broadcast to the output's shape).

A transcendental (exp, log, tanh, erf, rsqrt...) counts as one FLOP, and is
also counted in `Cost.transcendentals`. Adding an op type is one line:
`register_elementwise("Cbrt", 1, transcendentals=1)`.
"""
from __future__ import annotations

from ..ops import OpInfo
from .registry import ELEMENTWISE_FLOPS, output_or_broadcast, register, register_elementwise

# Binary arithmetic, comparisons and logic: one operation per output element.
for _op in ("Add", "AddV2", "Sub", "Mul", "RealDiv", "Div", "DivNoNan", "FloorDiv", "FloorMod", "Mod",
            "Maximum", "Minimum", "MulNoNan", "BiasAdd", "BiasAddV1",
            "Greater", "GreaterEqual", "Less", "LessEqual", "Equal", "NotEqual",
            "LogicalAnd", "LogicalOr", "LogicalNot", "Select", "SelectV2"):
    register_elementwise(_op, 1)
# Unary arithmetic and rounding.
for _op in ("Neg", "Abs", "Square", "Reciprocal", "Inv", "Floor", "Ceil", "Round", "Rint", "Sign",
            "IsNan", "IsFinite"):
    register_elementwise(_op, 1)
# Transcendentals: one FLOP each.
for _op in ("Pow", "Atan2", "Sqrt", "Rsqrt", "Exp", "Expm1", "Log", "Log1p", "Sin", "Cos", "Tan", "Tanh",
            "Erf", "Erfc", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh"):
    register_elementwise(_op, 1, transcendentals=1)

register_elementwise("SquaredDifference", 2, why="sub, square")
register_elementwise("ClipByValue", 2, why="min(max(x, lo), hi)")
# Activations.
register_elementwise("Relu", 1, why="max(x, 0)")
register_elementwise("Relu6", 2, why="min(max(x, 0), 6)")
register_elementwise("LeakyRelu", 2, why="mul, max")
register_elementwise("Sigmoid", 4, transcendentals=1, why="1/(1+exp(-x)): neg, exp, add, div")
register_elementwise("Elu", 3, transcendentals=1, why="exp, sub, compare-select")
register_elementwise("Selu", 5, transcendentals=1, why="elu + 2 multiplies")
register_elementwise("Softplus", 3, transcendentals=2, why="log(1+exp(x)): exp, add, log")
register_elementwise("Softsign", 3, why="x/(1+|x|): abs, add, div")
register_elementwise("Swish", 5, transcendentals=1, why="x*sigmoid(x)")
register_elementwise("Mish", 5, transcendentals=3, why="x*tanh(softplus(x))")
register_elementwise("_FusedMish", 5, transcendentals=3, why="x*tanh(softplus(x))")
register_elementwise("GeluExact", 5, transcendentals=1, why="0.5*x*(1+erf(x/sqrt2)): div, erf, add, mul, mul")
register_elementwise("Gelu", 5, transcendentals=1, why="the erf form, as GeluExact")
register_elementwise("GeluApproximate", 9, transcendentals=1,
                     why="0.5*x*(1+tanh(c*(x+0.044715*x^3))): x^3 (2), mul, add, mul, tanh, add, mul, mul")


@register("AddN", family="elementwise")
def addn(op: OpInfo):
    """(n - 1) adds per output element for n inputs."""
    out = output_or_broadcast(op)
    if out is None:
        return None
    return (len([t for t in op.inputs if t is not None]) - 1) * out.num_elements, None


@register("_UnaryOpsComposition", family="elementwise")
def unary_ops_composition(op: OpInfo):
    """Sum over `op_names` (grappler's fusion of a chain of unary ops, e.g. PReLU's) of each op's FLOPs
    per element, per output element; unknown when an op in the chain has no elementwise formula."""
    out, names = output_or_broadcast(op), op.attrs.get("op_names")
    if out is None or not names:
        return None
    per_element = [ELEMENTWISE_FLOPS.get(str(name)) for name in names]
    if any(value is None for value in per_element):
        return None
    return sum(per_element) * out.num_elements, None
