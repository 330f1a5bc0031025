"""FLOPs and bytes of XLA HLO instructions, read from the HLO modules a trace carries.

`hlo_costs(modules)` takes the optimized HLO modules the trace stage read from the
trace's `/host:metadata` plane (`traceflops.trace.hlo`) and returns one row per HLO
instruction of each module's entry computation, plus the instructions of the
computations that entry reaches through control flow (`while` bodies and
conditions, `conditional` branches, `call`, `async-start`): those launch
kernels too. A fusion's row is the sum of its fused computation (nested
fusions included). Its columns are the schema's `hlo` table
(`traceflops/schema.py`, rendered in docs/xla.md).

Conventions (docs/xla.md has the full table and the comparison with XProf):
one FMA = 2 FLOPs; dot = 2 x batch x M x N x K; convolution = 2 x textbook MACs
(output elements x kernel taps x input features per group), XLA's valid-window
count beside it in `xla_valid_macs`;
elementwise ops and transcendentals = 1 per output element; reduce = (input
elements - output elements) x the reducer's FLOPs; data movement and dtype
conversion = 0. Rows are per execution of one instruction: loop trip counts are
not applied (a `while` row is 0 and its body's instructions are rows of their own).

Against XProf's `hlo_stats` (tests/test_xla.py): dot fusions agree exactly, and
convolutions' `xla_valid_macs` (same rule). GEMM and fused-attention custom calls have FLOPs
here and 0 in XProf, whose cost model does not price them. Elementwise fusions
count less here: XLA's GPU cost model (gpu_hlo_cost_analysis.cc) prices every
elementwise op, converts included, at a measured per-op cost of 3 or more
FLOPs per element (tanh about 190), where we count 1 per op and 0 per convert.
"""
from __future__ import annotations

from typing import Optional

import pandas as pd

from ...schema import columns
from ..registry import Cost
from .common import dtype_of, has_workspace, leaves, nbytes, shape_text, unknown, xla_cost
from .describe import instruction_cost

HLO_COLUMNS = columns("hlo")  # declared, with their meanings, in traceflops/schema.py
# Opcodes whose called computations run as code of their own (not fused, not a reducer).
_CONTROL_CALLERS = {"while", "conditional", "call", "composite", "async-start"}
# Instructions that launch nothing and touch no memory: their bytes are 0.
_NO_MEMORY = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast", "after-all", "add-dependency",
              "domain", "opt-barrier", "while", "conditional", "call", "composite", "async-start",
              "async-update", "async-done"}


class ModuleCosts:
    """Costs of the instructions of one HloModuleProto."""

    def __init__(self, module):
        self.module = module
        self.computations = {c.id: c for c in module.computations}
        self.instructions = {i.id: i for c in module.computations for i in c.instructions}
        self._computation_cache = {}
        self._users = None

    # -- helpers
    def operand(self, instr, index):
        if index >= len(instr.operand_ids):
            return None
        return self.instructions.get(instr.operand_ids[index])

    def operand_shape(self, instr, index):
        op = self.operand(instr, index)
        return None if op is None else op.shape

    def instruction_bytes(self, instr) -> int:
        """Operand bytes + result bytes (a custom call's scratch workspace excluded; 0 where nothing is touched)."""
        if instr.opcode in _NO_MEMORY:
            return 0
        total = 0
        for oid in instr.operand_ids:
            op = self.instructions.get(oid)
            if op is not None:
                total += nbytes(op.shape)
        result = instr.shape
        if instr.opcode == "custom-call" and has_workspace(result):
            total += sum(nbytes(s) for s in result.tuple_shapes[:-1])
        else:
            total += nbytes(result)
        return total

    def users(self, instr) -> list:
        """The instructions of the same computation that take `instr` as an operand."""
        if self._users is None:
            self._users = {}
            for comp in self.module.computations:
                for user in comp.instructions:
                    for oid in set(user.operand_ids):
                        self._users.setdefault(oid, []).append(user)
        return self._users.get(instr.id, [])

    def diagonal_select(self, computation_id):
        """(kept, total) when the computation's root is `select(compare(iota, iota, EQ), x,
        broadcast(constant))` over two iota dimensions of sizes a and b (min(a, b) of a x b kept)."""
        comp = self.computations.get(computation_id)
        if comp is None:
            return None
        root = next((i for i in comp.instructions if i.id == comp.root_id), None) or comp.instructions[-1]
        if root.opcode != "select" or len(root.operand_ids) != 3:
            return None
        pred, _, other = (self.instructions.get(i) for i in root.operand_ids)
        if pred is None or other is None or pred.opcode != "compare" or pred.comparison_direction != "EQ":
            return None
        if other.opcode != "broadcast" or not all(
                getattr(self.instructions.get(i), "opcode", "") == "constant" for i in other.operand_ids):
            return None
        iotas = [self.instructions.get(i) for i in pred.operand_ids]
        if len(iotas) != 2 or any(i is None or i.opcode != "iota" for i in iotas):
            return None
        dims = [i.dimensions[0] if i.dimensions else 0 for i in iotas]
        sizes = [list(i.shape.dimensions)[d] for i, d in zip(iotas, dims)]
        if dims[0] == dims[1]:
            return None
        return min(sizes), sizes[0] * sizes[1]

    def input_dtype(self, instr) -> str:
        """The dtype of the first array operand, else of the result."""
        for oid in instr.operand_ids:
            op = self.instructions.get(oid)
            if op is not None and leaves(op.shape):
                return dtype_of(op.shape)
        return dtype_of(instr.shape)

    def applied_flops(self, computation_id) -> Cost:
        """FLOPs of one application of a reducer / mapper computation (on scalars)."""
        return self.computation_cost(computation_id)

    def computation_cost(self, computation_id) -> Cost:
        """Sum of a computation's instruction costs (a fused computation, a reducer)."""
        if computation_id in self._computation_cache:
            return self._computation_cache[computation_id]
        comp = self.computations.get(computation_id)
        if comp is None:
            cost = unknown(f"computation {computation_id} is not in the module")
            self._computation_cache[computation_id] = cost
            return cost
        self._computation_cache[computation_id] = unknown("recursive computation")
        flops, macs, valid, trans, missing = 0, None, None, 0, []
        best_dtype, best_flops, best_note = "", -1, ""
        for instr in comp.instructions:
            cost = self.instruction_cost(instr)
            if not cost.known:
                missing.append(f"{instr.name} ({instr.opcode}): {cost.note}")
                continue
            flops += cost.flops
            trans += cost.transcendentals
            if cost.macs is not None:
                macs = (macs or 0) + cost.macs
            if cost.xla_valid_macs is not None:
                valid = (valid or 0) + cost.xla_valid_macs
            if cost.flops > best_flops and cost.dtype:
                best_dtype, best_flops = cost.dtype, cost.flops
                best_note = f"{instr.name}: {cost.note}" if cost.flops else ""
        if missing:
            cost = xla_cost(None, None, trans, best_dtype, "unknown inside: " + "; ".join(missing[:3]))
        else:
            cost = xla_cost(flops, macs, trans, best_dtype, best_note, valid)
        self._computation_cache[computation_id] = cost
        return cost

    def instruction_cost(self, instr) -> Cost:
        """One execution's FLOPs, MACs and transcendentals (bytes: `instruction_bytes`), by the instruction's
        registry entry (`describe.py`)."""
        return instruction_cost(self, instr)


def executable_computations(module) -> list:
    """The entry computation and every computation it reaches through control flow."""
    comps = {c.id: c for c in module.computations}
    entry = module.entry_computation_id
    if entry not in comps:
        entry = next((c.id for c in module.computations if c.name == module.entry_computation_name), None)
    if entry is None:
        return []
    order, queue, seen = [], [entry], {entry}
    while queue:
        cid = queue.pop(0)
        comp = comps.get(cid)
        if comp is None:
            continue
        order.append(comp)
        for instr in comp.instructions:
            if instr.opcode in _CONTROL_CALLERS:
                for called in instr.called_computation_ids:
                    if called not in seen:
                        seen.add(called)
                        queue.append(called)
    return order


def module_costs(module, program_id: Optional[int] = None) -> pd.DataFrame:
    """The `hlo_costs` rows of one HloModuleProto."""
    costs = ModuleCosts(module)
    rows = []
    computations = executable_computations(module)
    entry_id = computations[0].id if computations else None
    for comp in computations:
        for instr in comp.instructions:
            cost = costs.instruction_cost(instr)
            rows.append({
                "program_id": int(module.id if program_id is None else program_id),
                "hlo_module": module.name,
                "computation": comp.name,
                "is_entry": comp.id == entry_id,
                "hlo_op": instr.name,
                "opcode": instr.opcode,
                "fusion_kind": instr.fusion_kind,
                "custom_call_target": instr.custom_call_target,
                "shape": shape_text(instr.shape),
                "framework_op": instr.metadata.op_name,
                "flops": cost.flops,
                "macs": cost.macs,
                "xla_valid_macs": cost.xla_valid_macs,
                "transcendentals": cost.transcendentals,
                "bytes": costs.instruction_bytes(instr),
                "dtype": cost.dtype,
                "flops_source": cost.source,
                "note": cost.note,
            })
    return _frame(rows)


def _frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=HLO_COLUMNS)
    for column in ("flops", "macs", "xla_valid_macs"):
        frame[column] = frame[column].astype("Int64")
    frame["program_id"] = frame["program_id"].astype("int64")
    frame["bytes"] = frame["bytes"].astype("int64")
    frame["transcendentals"] = frame["transcendentals"].astype("int64")
    frame["is_entry"] = frame["is_entry"].astype(bool)
    return frame


def hlo_costs(modules) -> pd.DataFrame:
    """One row per executed HLO instruction of every module; see the module doc.

    `modules`: `traceflops.trace.hlo.HloModule`s, as `Trace.hlo_modules` or
    `read_hlo_modules(path)` give them (the trace stage reads files; this stage
    reads none). No modules (no XLA) gives an empty table with the same columns.
    """
    frames = [module_costs(m.proto, m.program_id) for m in modules]
    frames = [f for f in frames if not f.empty]
    if not frames:
        return _frame([])
    return pd.concat(frames, ignore_index=True)
