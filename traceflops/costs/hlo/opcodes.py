"""The HLO opcode table: opcode -> (family, formula). The only dispatch of `ModuleCosts.instruction_cost`;
`family_of` reads the families of XLA op types (`fusion:kLoop`, `dot`, `custom-call`) from it too."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..registry import FAMILIES
from . import instructions as ins
from .custom_calls import custom_call


@dataclass(frozen=True)
class Opcode:
    family: str
    formula: Callable  # formula(module_costs, instr) -> Cost


OPCODES: dict = {}


def _add(family: str, formula: Callable, *opcodes: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown op family {family!r}")
    for opcode in opcodes:
        if opcode in OPCODES:
            raise ValueError(f"opcode {opcode!r} is in the table twice")
        OPCODES[opcode] = Opcode(family, formula)


_add("data movement", ins.zero("moves, converts or reinterprets data"),
     "bitcast", "copy", "transpose", "slice", "dynamic-slice", "dynamic-update-slice", "concatenate",
     "broadcast", "reshape", "dynamic-reshape", "pad", "reverse", "gather", "iota", "convert",
     "bitcast-convert", "copy-start", "copy-done", "real", "imag")
_add("data movement", ins.zero("holds or forwards values"),
     "parameter", "constant", "tuple", "get-tuple-element", "after-all", "add-dependency", "domain",
     "opt-barrier", "optimization-barrier", "partition-id", "replica-id", "get-dimension-size",
     "set-dimension-size", "rng-get-and-update-state")
_add("data movement", ins.zero("communication, not arithmetic"),
     "send", "send-done", "recv", "recv-done", "infeed", "outfeed", "all-gather", "all-gather-start",
     "all-gather-done", "all-to-all", "ragged-all-to-all", "collective-permute",
     "collective-permute-start", "collective-permute-done", "collective-broadcast", "all-reduce-done")
_add("control flow", ins.zero("control flow: the called computations' instructions are rows of their own"),
     "while", "conditional", "call", "async-start", "async-update", "async-done")
_add("random", ins.zero("generates random bits with integer arithmetic"), "rng-bit-generator")

_add("elementwise", ins.elementwise(transcendental=True),
     "exponential", "exponential-minus-one", "log", "log-plus-one", "logistic", "power", "sqrt", "rsqrt",
     "cbrt", "sin", "cos", "tan", "tanh", "erf", "atan2", "acosh")
_add("elementwise", ins.elementwise(transcendental=False),
     "add", "subtract", "multiply", "divide", "remainder", "maximum", "minimum", "abs", "negate", "sign",
     "floor", "ceil", "round-nearest-afz", "round-nearest-even", "compare", "select", "clamp", "and", "or",
     "xor", "not", "shift-left", "shift-right-arithmetic", "shift-right-logical", "popcnt", "clz",
     "is-finite", "complex", "reduce-precision", "stochastic-convert")

_add("other", ins.fusion, "fusion")
_add("matmul/einsum", ins.dot, "dot")
_add("conv", ins.convolution, "convolution")
_add("reduction", ins.reduce, "reduce")
_add("pooling", ins.reduce_window, "reduce-window")
_add("pooling", ins.select_and_scatter, "select-and-scatter")
_add("elementwise", ins.map_, "map")
_add("other", ins.scatter, "scatter")
_add("other", ins.sort, "sort")
_add("other", ins.fft, "fft")
_add("other", ins.triangular_solve, "triangular-solve")
_add("other", ins.cholesky, "cholesky")
_add("other", ins.all_reduce, "all-reduce", "all-reduce-start", "reduce-scatter")
_add("random", ins.rng, "rng")
_add("other", custom_call, "custom-call")

# Fusions by kind (`fusion:kLoop` in the ops table): loop fusions are elementwise, input
# fusions reductions; output and custom fusions hold a contraction or anything else.
FUSION_FAMILIES = {"kLoop": "elementwise", "kInput": "reduction"}


def opcode_family(op_type: str) -> str:
    """The family of an XLA op type: `fusion:kLoop` -> elementwise, `dot` -> matmul/einsum, unknown -> other."""
    opcode, _, kind = str(op_type).partition(":")
    if opcode == "fusion" and kind in FUSION_FAMILIES:
        return FUSION_FAMILIES[kind]
    spec = OPCODES.get(opcode)
    return spec.family if spec is not None else "other"
