"""Stage 4: analytic FLOP, MAC and byte counts per op, from one registry of small formulas.

Conventions (docs/formulas.md has the full table, generated from the registry):
* one fused multiply-add is 2 FLOPs; `macs` is reported for contraction ops
  (matmul, convolution, einsum families) and is None for every other op;
* bytes = sum of input and output tensor sizes at their dtypes;
* an op type with no formula is `unknown` (flops None), never a silent 0;
  ops that only move or reinterpret data are declared `zero` with bytes;
* without the executed graph (a trace recorded elsewhere) attributes are
  unknown: formulas infer what the shapes determine (matmul transposes from
  which dimensions agree) and the count's source is `shapes`, with a note
  saying what was inferred; what shapes cannot determine stays unknown.

The registry (`costs/registry.py`) is the single source of op knowledge, keyed
by namespace: TF op types (`Conv2D`), HLO opcodes (`hlo:dot`) and custom-call
targets (`custom_call:__cublas$gemm`). The formula modules (elementwise,
contraction, convolution, normalization, pooling, reduction, resize, zero,
training; `hlo.opcodes` and `hlo.custom_calls`) register into it, and `op_cost`,
the HLO pricing, `family_of`, the docs table and `supported_ops()` read it.
The op descriptions formulas read (`OpInfo`, `TensorSpec`) are `traceflops/ops.py`'s.
"""
from __future__ import annotations

from ..ops import OpInfo, compute_dtype
from .registry import (CALL_REASON, COMPUTE_FAMILIES, CUSTOM_CALL, ELEMENTWISE_FLOPS, FAMILIES, FORMULA, FORMULAS,
                       HLO, INSTRUCTION, NAMESPACES, OP, SHAPES, TF, UNKNOWN, ZERO, ZERO_FAMILIES, ZERO_OPS, Cost,
                       Entry, declare_zero, entries, family_of, find, is_function_call, lookup, mkl_variants,
                       register, register_elementwise, unregister)
from . import elementwise, contraction, convolution, normalization, pooling, reduction, resize, zero  # noqa: F401  (register)
from . import training  # noqa: F401  (register: gradients, optimizer updates, loss ops)
from .hlo import opcodes  # noqa: F401  (register: HLO opcodes and custom-call targets)
from .epilogues import epilogue_flops
from .price import op_cost, register_formula, supported_ops

__all__ = ["CALL_REASON", "COMPUTE_FAMILIES", "CUSTOM_CALL", "ELEMENTWISE_FLOPS", "FAMILIES", "FORMULA", "FORMULAS",
           "HLO", "INSTRUCTION", "NAMESPACES", "OP", "SHAPES", "TF", "UNKNOWN", "ZERO", "ZERO_FAMILIES", "ZERO_OPS",
           "Cost", "Entry", "OpInfo", "compute_dtype", "declare_zero", "entries", "epilogue_flops", "family_of",
           "find", "is_function_call", "lookup", "mkl_variants", "op_cost", "register", "register_elementwise",
           "register_formula", "supported_ops", "unregister"]
