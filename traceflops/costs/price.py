"""The one pricing step, and the registry as users see it.

Every execution, whatever its source, gets its `Cost` from `price(description)`.
Two kinds of description reach it, both made before pricing:
* `OpInfo` (a TensorFlow op: type, attributes, input and output tensors), from
  the graph/shapes stage, for host ops and for the ops that launched GPU kernels
  (`op_cost`: formula, declared zero, or unknown);
* `HloOp` (one HLO instruction of an XLA module the trace carries), from
  `HloIndex.describe`, for XLA instructions run on the host and for XLA kernels.
`None` (an execution nothing describes) is priced `unknown` with the reason given.
"""
from __future__ import annotations

import re

from dataclasses import dataclass
from typing import Callable, Optional

import pandas as pd

from ..ops import OpInfo, compute_dtype, total_bytes
from .registry import (CALL_REASON, FORMULA, OP, SHAPES, UNKNOWN, ZERO, Cost, entries, formula_counts,
                       is_function_call, lookup, register)
from . import hlo

SUPPORTED_COLUMNS = ["op_type", "family", "kind", "description", "variant_of"]


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
    if entry is None or entry.signature != OP:
        return Cost(None, None, size, UNKNOWN, dtype, "no formula for this op type")
    counts = formula_counts(entry, op)
    if counts is None:
        return Cost(None, None, size, UNKNOWN, dtype, "shapes or attributes the formula needs are missing")
    flops, macs, transcendentals = counts
    name = entry.formula.__name__
    if op.inferred:
        return Cost(flops, macs, size, SHAPES, dtype, f"{name}; " + "; ".join(op.inferred), transcendentals)
    return Cost(flops, macs, size, FORMULA, dtype, name, transcendentals)


def register_formula(*op_types: str, family: str = "other", variants: bool = False, pattern: str = "") -> Callable:
    """Decorator: price a custom op type, an HLO opcode or a custom-call target with your own formula.

    Keys: a TensorFlow op type (`"MyOp"`, or `"tf:MyOp"`), an HLO opcode
    (`"hlo:topk"`) or a custom-call target (`"custom_call:my_kernel"`; with
    `pattern`, a regular expression, every target it matches). The function
    receives an `OpInfo` (op_type, inputs and outputs as TensorSpecs with
    `.dims`, `.dtype`, `.num_elements`, attrs; an HLO instruction's attrs hold
    its `custom_call_target`, `backend_config`... see `costs/hlo/describe.py`)
    and returns `(flops, macs)` (macs None unless it is a contraction), or None
    when it cannot count (the op is then `unknown`). `family` is one of
    `traceflops.costs.FAMILIES` (the roofline plot's colours). Registering a
    key traceflops already prices raises ValueError;
    `traceflops.costs.unregister(key)` first to replace it.

        @traceflops.register_formula("MyGelu", family="elementwise")
        def my_gelu(op):
            '''9 FLOPs per output element.'''
            out = op.output(0)
            return (9 * out.num_elements, None) if out is not None else None
    """
    return register(*op_types, family=family, variants=variants, pattern=pattern)


def supported_ops() -> pd.DataFrame:
    """Every key traceflops prices: op_type (a TF op type, `hlo:<opcode>` or `custom_call:<target>`),
    family, kind (`formula` or `zero`), description (the formula's first docstring line, or the zero
    reason), variant_of (the op type a generated oneDNN spelling comes from, else "")."""
    rows = [{"op_type": e.op_type, "family": e.family, "kind": e.kind, "description": e.description,
             "variant_of": e.variant_of} for e in entries()]
    return pd.DataFrame(rows, columns=SUPPORTED_COLUMNS)


@dataclass
class HloOp:
    """One HLO instruction, with the module whose context (fused computations, operands) prices it."""
    module: "hlo.ModuleCosts"
    instruction: object  # hlo_schema.HloInstructionProto
    program_id: int
    module_name: str

    @property
    def op_type(self) -> str:
        kind = self.instruction.fusion_kind
        return f"{self.instruction.opcode}:{kind}" if kind else self.instruction.opcode

    @property
    def framework_op(self) -> str:
        return self.instruction.metadata.op_name

    @property
    def shape(self) -> str:
        return hlo.shape_text(self.instruction.shape)

    @property
    def result_bytes(self) -> int:
        """Bytes of the instruction's result: what a copy instruction writes."""
        return hlo.common.nbytes(self.instruction.shape)

    @property
    def layer(self) -> str:
        """The Keras layer (costs/hlo/layers.py): from the name stack, else the variable it updates."""
        from .hlo.layers import instruction_layer
        return instruction_layer(self.module, self.instruction)

    @property
    def source_line(self) -> str:
        """`file:line` the instruction came from (costs/hlo/layers.py), "" when the HLO does not say."""
        from .hlo.layers import source_line
        return source_line(self.module.module, self.instruction)


class HloIndex:
    """The executable instructions of every module, found by (program id, name) or (module, name)."""

    def __init__(self, modules):
        self.by_program, self.by_module = {}, {}
        self._by_kernel_name = None  # built on first use: only CUDA-graph kernels need it
        for module in modules:
            costs = hlo.ModuleCosts(module.proto)
            for computation in hlo.module.executable_computations(module.proto):
                for instruction in computation.instructions:
                    op = HloOp(costs, instruction, int(module.program_id), module.name)
                    self.by_program[(op.program_id, instruction.name)] = op
                    self.by_module.setdefault((module.name, instruction.name), []).append(op)

    def describe(self, program_id, module_name, hlo_op: str) -> Optional[HloOp]:
        """The instruction a kernel or host event names; by program id first, else an unambiguous
        (module, name) match."""
        if program_id is not None and program_id == program_id:  # NaN-safe
            found = self.by_program.get((int(program_id), hlo_op))
            if found is not None:
                return found
        candidates = self.by_module.get((module_name, hlo_op), [])
        return candidates[0] if len(candidates) == 1 else None

    def by_kernel(self, program_id, module_name, kernel_name: str) -> Optional[HloOp]:
        """The instruction a GPU kernel was emitted for, by its name: XLA names a fusion's kernel after the
        instruction, every character outside [A-Za-z0-9_] made "_" (`gemm_fusion_dot.2` runs as
        `gemm_fusion_dot_2`). For kernels whose `hlo_op` names no instruction of the module: those XLA
        launches inside a CUDA graph (`command_buffer_6`, a thunk the module's HLO does not hold).
        By program id first, else an unambiguous (module, name) match, as `describe`."""
        if self._by_kernel_name is None:
            self._by_kernel_name = {}
            for (program, name), op in self.by_program.items():
                for key in ((program, _sanitized(name)), (op.module_name, _sanitized(name))):
                    self._by_kernel_name.setdefault(key, []).append(op)
        if program_id is not None and program_id == program_id:  # NaN-safe
            found = self._by_kernel_name.get((int(program_id), kernel_name), [])
            if len(found) == 1:
                return found[0]
        candidates = self._by_kernel_name.get((module_name, kernel_name), [])
        return candidates[0] if len(candidates) == 1 else None


def _sanitized(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _price_hlo(op: HloOp) -> Cost:
    cost = op.module.instruction_cost(op.instruction)
    size = op.module.instruction_bytes(op.instruction)
    source = hlo.XLA if cost.flops is not None else UNKNOWN
    return Cost(cost.flops, cost.macs, size, source, cost.dtype, cost.note, cost.transcendentals,
                cost.xla_valid_macs)


def price(description, missing: str = "nothing describes this execution") -> Cost:
    """The cost of one execution of the described op (see the module doc)."""
    if isinstance(description, OpInfo):
        return op_cost(description)
    if isinstance(description, HloOp):
        return _price_hlo(description)
    return Cost(None, None, None, UNKNOWN, "", missing)
