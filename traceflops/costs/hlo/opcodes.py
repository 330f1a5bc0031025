"""The HLO opcodes in the registry: one `hlo:` key per opcode (and per fusion kind), with its family and formula.

`ModuleCosts.instruction_cost` prices an instruction by its entry (`describe.py`);
`family_of` reads the families of XLA op types (`fusion:kLoop`, `dot`,
`custom-call`) from the same entries. Adding an opcode formula is one
registration here (built-in, `INSTRUCTION` signature) or, from user code,
`traceflops.register_formula("hlo:<opcode>")` over the source-neutral `OpInfo`.
"""
from __future__ import annotations

from typing import Callable

from ..registry import HLO, INSTRUCTION, NamespaceView, declare_zero, hlo_entry, register
from . import instructions as ins
from . import custom_calls  # noqa: F401  (registers the custom-call targets `hlo:custom-call` prices)
from .describe import custom_call_cost


def _zero(reason: str, family: str, *opcodes: str) -> None:
    declare_zero(*(f"{HLO}:{opcode}" for opcode in opcodes), reason=reason, family=family)


def _add(family: str, formula: Callable, *opcodes: str) -> None:
    register(*(f"{HLO}:{opcode}" for opcode in opcodes), family=family, signature=INSTRUCTION)(formula)


_zero("moves, converts or reinterprets data", "data movement",
      "bitcast", "copy", "transpose", "slice", "dynamic-slice", "dynamic-update-slice", "concatenate",
      "broadcast", "reshape", "dynamic-reshape", "pad", "reverse", "gather", "iota", "convert",
      "bitcast-convert", "copy-start", "copy-done", "real", "imag")
_zero("holds or forwards values", "data movement",
      "parameter", "constant", "tuple", "get-tuple-element", "after-all", "add-dependency", "domain",
      "opt-barrier", "partition-id", "replica-id", "get-dimension-size",
      "set-dimension-size", "rng-get-and-update-state")
_zero("communication, not arithmetic", "data movement",
      "send", "send-done", "recv", "recv-done", "infeed", "outfeed", "all-gather", "all-gather-start",
      "all-gather-done", "all-to-all", "ragged-all-to-all", "collective-permute",
      "collective-permute-start", "collective-permute-done", "collective-broadcast", "all-reduce-done")
_zero("control flow: the called computations' instructions are rows of their own", "control flow",
      "while", "conditional", "call", "composite", "async-start", "async-update", "async-done")
_zero("generates random bits with integer arithmetic", "random", "rng-bit-generator")

_add("elementwise", ins.elementwise(transcendental=True),
     "exponential", "exponential-minus-one", "log", "log-plus-one", "logistic", "power", "sqrt", "rsqrt",
     "cbrt", "sine", "cosine", "tan", "tanh", "erf", "atan2")
_add("elementwise", ins.elementwise(transcendental=False),
     "add", "subtract", "multiply", "divide", "remainder", "maximum", "minimum", "abs", "negate", "sign",
     "floor", "ceil", "round-nearest-afz", "round-nearest-even", "compare", "select", "clamp", "and", "or",
     "xor", "not", "shift-left", "shift-right-arithmetic", "shift-right-logical", "popcnt", "count-leading-zeros",
     "is-finite", "complex", "reduce-precision", "stochastic-convert")

# Fusions by kind (`fusion:kLoop` in the ops table): loop fusions are elementwise, input
# fusions reductions; output and custom fusions hold a contraction or anything else.
FUSION_FAMILIES = {"kLoop": "elementwise", "kInput": "reduction"}
_add("other", ins.fusion, "fusion")
for _kind, _family in FUSION_FAMILIES.items():
    _add(_family, ins.fusion, f"fusion:{_kind}")
_add("matmul/einsum", ins.dot, "dot")
_add("matmul/einsum", ins.ragged_dot, "ragged-dot")
_add("normalization", ins.batch_norm(2, "batch-norm-inference"), "batch-norm-inference")
_add("normalization", ins.batch_norm(5, "batch-norm-training"), "batch-norm-training")
_add("normalization", ins.batch_norm(9, "batch-norm-grad"), "batch-norm-grad")
_add("other", ins.top_k, "top-k")
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
_add("other", ins.all_reduce, "all-reduce", "all-reduce-start")
_add("other", ins.reduce_scatter, "reduce-scatter")
_add("random", ins.rng, "rng")
_add("other", custom_call_cost, "custom-call")

# opcode (or `fusion:<kind>`) -> its `hlo:` Entry (`.family`, `.kind`, `.formula`), live.
OPCODES = NamespaceView(HLO)


def opcode_family(op_type: str) -> str:
    """The family of an XLA op type: `fusion:kLoop` -> elementwise, `dot` -> matmul/einsum, unknown -> other."""
    opcode, _, kind = str(op_type).partition(":")
    entry = hlo_entry(opcode, kind)
    return entry.family if entry is not None else "other"
