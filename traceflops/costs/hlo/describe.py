"""The HLO side of the one registry: an instruction's entry (`hlo:` opcode, `custom_call:` target) priced.

This is the registry's one per-namespace adapter. An entry's formula is called
by its signature (`costs/registry.py`):
* `OP` (user formulas, and any formula written over the source-neutral
  description): the instruction is described as an `OpInfo` (`instruction_op`)
  and the formula's `(flops, macs[, transcendentals])` becomes an `xla` Cost
  noted with the formula's name;
* `INSTRUCTION` (the built-in HLO formulas, which read fused and reducer
  computations through the module): `formula(module_costs, instr) -> Cost`;
* a declared zero: 0 FLOPs with its reason (a `convert` computes in its input's dtype).
"""
from __future__ import annotations

from ...ops import OpInfo, TensorSpec, compute_dtype
from ..registry import CUSTOM_CALL, INSTRUCTION, ZERO, Cost, Entry, find, formula_counts, hlo_entry
from .common import backend_config, dtype_of, has_workspace, is_array, leaves, unknown, xla_cost


def tensor_spec(shape):
    """An array shape as a TensorSpec; None for a tuple or a token."""
    if not is_array(shape):
        return None
    return TensorSpec(dtype_of(shape), tuple(int(d) for d in shape.dimensions))


def instruction_op(mc, instr) -> OpInfo:
    """The source-neutral description of an HLO instruction: `op_type` the opcode, inputs the operands'
    array shapes (None for tuples), outputs the result's arrays (a custom call's scratch workspace left
    out), attrs the instruction's `custom_call_target`, `fusion_kind`, `dimensions`, `backend_config`
    (a dict when it is JSON) and, for what the description does not carry, the `instruction` itself."""
    operands = [mc.operand_shape(instr, i) for i in range(len(instr.operand_ids))]
    results = list(instr.shape.tuple_shapes) or [instr.shape]
    if instr.opcode == "custom-call" and has_workspace(instr.shape):
        results = results[:-1]
    outputs = [tensor_spec(leaf) for shape in results for leaf in leaves(shape)]
    attrs = {"custom_call_target": instr.custom_call_target, "fusion_kind": instr.fusion_kind,
             "dimensions": [int(d) for d in instr.dimensions], "backend_config": backend_config(instr),
             "instruction": instr}
    return OpInfo(instr.opcode, [None if s is None else tensor_spec(s) for s in operands], outputs, attrs)


def price_entry(entry: Entry, mc, instr) -> Cost:
    """One execution's FLOPs, MACs and transcendentals by `entry` (bytes: `ModuleCosts.instruction_bytes`)."""
    if entry.kind == ZERO:
        dtype = mc.input_dtype(instr) if instr.opcode == "convert" else dtype_of(instr.shape)
        return xla_cost(0, None, 0, dtype, entry.reason)
    if entry.signature == INSTRUCTION:
        return entry.formula(mc, instr)
    op = instruction_op(mc, instr)
    counts = formula_counts(entry, op)
    if counts is None:
        return unknown(f"{entry.formula.__name__}: shapes or attributes the formula needs are missing",
                       compute_dtype(op))
    flops, macs, transcendentals = counts
    return xla_cost(flops, macs, transcendentals, compute_dtype(op), entry.formula.__name__)


def instruction_cost(mc, instr) -> Cost:
    """The cost of one HLO instruction by its `hlo:` entry; unknown for an opcode with none."""
    entry = hlo_entry(instr.opcode, instr.fusion_kind)
    if entry is None:
        return unknown(f"no formula for opcode {instr.opcode}", dtype_of(instr.shape))
    return price_entry(entry, mc, instr)


def custom_call_cost(mc, instr) -> Cost:
    """By the target's `custom_call:` entry (below): its own key, else the first pattern it matches; else unknown."""
    target = instr.custom_call_target
    entry = find(CUSTOM_CALL, target)
    if entry is None:
        return unknown(f"custom call {target!r} has no formula", mc.input_dtype(instr))
    return price_entry(entry, mc, instr)
