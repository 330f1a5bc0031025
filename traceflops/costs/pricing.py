"""The one pricing step: every execution, whatever its source, gets its `Cost` here.

Two kinds of description reach it, both made before pricing:
* `OpInfo` (a TensorFlow op: type, attributes, input and output tensors), from
  the graph/shapes stage, for host ops and for the ops that launched GPU kernels;
* `HloOp` (one HLO instruction of an XLA module the trace carries), from
  `HloIndex.describe`, for XLA instructions run on the host and for XLA kernels.

`price(description)` returns a `Cost` with the same fields for both; `None`
(an execution nothing describes) is priced `unknown` with the reason given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import UNKNOWN, Cost, OpInfo, op_cost
from . import hlo as hlo_costs

XLA = "xla"


@dataclass
class HloOp:
    """One HLO instruction, with the module whose context (fused computations, operands) prices it."""
    module: "hlo_costs.ModuleCosts"
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
        return hlo_costs.shape_text(self.instruction.shape)


class HloIndex:
    """The executable instructions of every module, found by (program id, name) or (module, name)."""

    def __init__(self, modules):
        self.by_program, self.by_module = {}, {}
        for module in modules:
            costs = hlo_costs.ModuleCosts(module.proto)
            for computation in hlo_costs._executable_computations(module.proto):
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


def _price_hlo(op: HloOp) -> Cost:
    cost = op.module.instruction_cost(op.instruction)
    size = op.module.instruction_bytes(op.instruction)
    source = XLA if cost.flops is not None else UNKNOWN
    return Cost(cost.flops, cost.macs, size, source, cost.dtype, cost.note)


def price(description, missing: str = "nothing describes this execution") -> Cost:
    """The cost of one execution of the described op (see the module doc)."""
    if isinstance(description, OpInfo):
        return op_cost(description)
    if isinstance(description, HloOp):
        return _price_hlo(description)
    return Cost(None, None, None, UNKNOWN, "", missing)
