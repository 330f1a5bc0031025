"""FLOPs and bytes of XLA HLO instructions, read from the HLO modules a trace carries.

`hlo_costs(modules)` takes the optimized HLO modules the trace stage read from the
trace's `/host:metadata` plane (`traceflops.trace.hlo`) and returns one row per HLO
instruction of each module's entry computation, plus the instructions of the
computations that entry reaches through control flow (`while` bodies and
conditions, `conditional` branches, `call`, `async-start`): those launch
kernels too. A fusion's row is the sum of its fused computation (nested
fusions included). Columns:

| column | meaning |
| --- | --- |
| program_id, hlo_module | the module, as device kernels name it (`program_id`, `hlo_module` stats) |
| computation, is_entry | the computation the instruction is in; True for the entry computation |
| hlo_op | the instruction name, as kernels name it (`hlo_op` stat) |
| opcode, fusion_kind, custom_call_target | what the instruction is |
| shape | its result shape, e.g. `bf16[256,256]` |
| framework_op | the framework op it came from (`metadata.op_name`, e.g. `jit(dot)/dot_general`) |
| flops, macs, transcendentals | per execution; `macs` only for contractions; transcendentals are also inside `flops` |
| bytes | operand bytes + result bytes of the instruction (custom-call scratch workspaces excluded) |
| dtype | the dtype it computes in (a contraction's input dtype) |
| flops_source | `xla` (counted here, zero included) or `unknown` (flops is None; `note` says why) |
| note | the formula used or the reason it is unknown |

Conventions (docs/xla.md has the full table and the comparison with XProf):
one FMA = 2 FLOPs; dot = 2 x batch x M x N x K; convolution = 2 x FMAs over the
valid (non-padding) window positions, as XLA's HloCostAnalysis counts them;
elementwise ops and transcendentals = 1 per output element; reduce = (input
elements - output elements) x the reducer's FLOPs; data movement and dtype
conversion = 0. Rows are per execution of one instruction: loop trip counts are
not applied (a `while` row is 0 and its body's instructions are rows of their own).

Against XProf's `hlo_stats` (tests/test_xla.py): dot fusions and convolutions
agree exactly (same rules). GEMM and fused-attention custom calls have FLOPs
here and 0 in XProf, whose cost model does not price them. Elementwise fusions
count less here: XLA's GPU cost model (gpu_hlo_cost_analysis.cc) prices every
elementwise op, converts included, at a measured per-op cost of 3 or more
FLOPs per element (tanh about 190), where we count 1 per op and 0 per convert.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from ..trace import hlo_schema
from . import ELEMENTWISE_FLOPS
from ..graph.shapes import canonical_dtype

HLO_COLUMNS = ["program_id", "hlo_module", "computation", "is_entry", "hlo_op", "opcode", "fusion_kind",
               "custom_call_target", "shape", "framework_op", "flops", "macs", "transcendentals", "bytes",
               "dtype", "flops_source", "note"]
METADATA_PLANE = "/host:metadata"
HLO_PROTO_STAT = "Hlo Proto"
XLA, UNKNOWN = "xla", "unknown"

# ---------------------------------------------------------------- opcode tables

_ZERO_OPCODES = {}
for _reason, _ops in {
    "moves, converts or reinterprets data": [
        "bitcast", "copy", "transpose", "slice", "dynamic-slice", "dynamic-update-slice", "concatenate",
        "broadcast", "reshape", "dynamic-reshape", "pad", "reverse", "gather", "iota", "convert",
        "bitcast-convert", "copy-start", "copy-done", "real", "imag"],
    "holds or forwards values": [
        "parameter", "constant", "tuple", "get-tuple-element", "after-all", "add-dependency", "domain",
        "opt-barrier", "optimization-barrier", "partition-id", "replica-id", "get-dimension-size",
        "set-dimension-size", "rng-get-and-update-state"],
    "communication, not arithmetic": [
        "send", "send-done", "recv", "recv-done", "infeed", "outfeed", "all-gather", "all-gather-start",
        "all-gather-done", "all-to-all", "ragged-all-to-all", "collective-permute",
        "collective-permute-start", "collective-permute-done", "collective-broadcast", "all-reduce-done"],
    "control flow: the called computations' instructions are rows of their own": [
        "while", "conditional", "call", "async-start", "async-update", "async-done"],
    "generates random bits with integer arithmetic": ["rng-bit-generator"],
}.items():
    for _op in _ops:
        _ZERO_OPCODES[_op] = _reason

_TRANSCENDENTAL = {"exponential", "exponential-minus-one", "log", "log-plus-one", "logistic", "power",
                   "sqrt", "rsqrt", "cbrt", "sin", "cos", "tan", "tanh", "erf", "atan2", "acosh"}
_ELEMENTWISE = _TRANSCENDENTAL | {
    "add", "subtract", "multiply", "divide", "remainder", "maximum", "minimum", "abs", "negate", "sign",
    "floor", "ceil", "round-nearest-afz", "round-nearest-even", "compare", "select", "clamp", "and", "or",
    "xor", "not", "shift-left", "shift-right-arithmetic", "shift-right-logical", "popcnt", "clz",
    "is-finite", "complex", "reduce-precision", "stochastic-convert"}
# Opcodes whose called computations run as code of their own (not fused, not a reducer).
_CONTROL_CALLERS = {"while", "conditional", "call", "async-start"}
# Instructions that launch nothing and touch no memory: their bytes are 0.
_NO_MEMORY = {"parameter", "constant", "tuple", "get-tuple-element", "bitcast", "after-all", "add-dependency",
              "domain", "opt-barrier", "optimization-barrier", "while", "conditional", "call", "async-start",
              "async-update", "async-done"}

_GEMM_TARGET = re.compile(r"^__(cu|hip|roc)blas(\$lt)?\$(gemm|matmul)")
_CONV_TARGET = re.compile(r"^__(cudnn|miopen)\$conv")
_TE_ATTENTION_TARGET = re.compile(r"^te_fused_attn_(forward|backward)(_ffi)?$")
_CUDNN_ATTENTION_TARGET = re.compile(r"^__cudnn\$fmha|^__cudnn\$fhma")
_ZERO_CUSTOM_CALLS = {"Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape", "AllocateBuffer",
                      "MoveToHost", "MoveToDevice", "PadToStatic", "SliceToDynamic",
                      "annotate_device_placement", "LayoutConstraint"}
# Per output element, cuBLAS(Lt) epilogues (bias add, activation). GELU is the tanh
# approximation in cuBLASLt, priced like costs.py prices GeluApproximate.
_GEMM_EPILOGUE_FLOPS = {
    "DEFAULT": 0, "BIAS": 1, "RELU": ELEMENTWISE_FLOPS["Relu"], "BIAS_RELU": 1 + ELEMENTWISE_FLOPS["Relu"],
    "GELU": ELEMENTWISE_FLOPS["GeluApproximate"], "GELU_AUX": ELEMENTWISE_FLOPS["GeluApproximate"],
    "BIAS_GELU": 1 + ELEMENTWISE_FLOPS["GeluApproximate"],
    "BIAS_GELU_AUX": 1 + ELEMENTWISE_FLOPS["GeluApproximate"],
}
_CUDNN_ACTIVATION_FLOPS = {"kNone": 0, "kRelu": ELEMENTWISE_FLOPS["Relu"], "kRelu6": ELEMENTWISE_FLOPS["Relu6"],
                           "kElu": ELEMENTWISE_FLOPS["Elu"], "kLeakyRelu": ELEMENTWISE_FLOPS["LeakyRelu"],
                           "kTanh": ELEMENTWISE_FLOPS["Tanh"], "kSigmoid": ELEMENTWISE_FLOPS["Sigmoid"]}
# NVTE_Mask_Type (transformer_engine/common/include/transformer_engine/fused_attn.h).
_TE_MASKS = {0: "none", 1: "padding", 2: "causal", 3: "padding_causal", 4: "causal_bottom_right",
             5: "padding_causal_bottom_right"}


# ---------------------------------------------------------------- shapes

def _is_array(shape) -> bool:
    name, bits = hlo_schema.PRIMITIVE_TYPES.get(shape.element_type, ("", 0))
    return bits > 0 and not shape.tuple_shapes


def _leaves(shape) -> list:
    if shape.tuple_shapes:
        out = []
        for sub in shape.tuple_shapes:
            out.extend(_leaves(sub))
        return out
    return [shape] if _is_array(shape) else []


def _elements(shape) -> int:
    return math.prod(shape.dimensions)


def _nbytes(shape) -> int:
    total = 0
    for leaf in _leaves(shape):
        bits = hlo_schema.PRIMITIVE_TYPES[leaf.element_type][1]
        total += -(-_elements(leaf) * bits // 8)
    return total


def _type_name(shape) -> str:
    return hlo_schema.PRIMITIVE_TYPES.get(shape.element_type, (f"type{shape.element_type}", 0))[0]


def _dtype(shape) -> str:
    leaves = _leaves(shape)
    return canonical_dtype(_type_name(leaves[0])) if leaves else ""


def shape_text(shape) -> str:
    """`bf16[256,256]`, or `(bf16[256,256], s8[1024])` for a tuple."""
    if shape.tuple_shapes:
        return "(" + ", ".join(shape_text(s) for s in shape.tuple_shapes) + ")"
    return f"{_type_name(shape)}[{','.join(str(d) for d in shape.dimensions)}]"


def _first_array(shape):
    leaves = _leaves(shape)
    return leaves[0] if leaves else None


def _has_workspace(shape) -> bool:
    """Library custom calls return (results..., u8/s8[N] scratch workspace)."""
    if not shape.tuple_shapes or len(shape.tuple_shapes) < 2:
        return False
    last = shape.tuple_shapes[-1]
    return _type_name(last) in ("u8", "s8") and len(last.dimensions) == 1


# ---------------------------------------------------------------- costs

@dataclass
class _Cost:
    flops: Optional[int]
    macs: Optional[int] = None
    transcendentals: int = 0
    dtype: str = ""
    note: str = ""

    @property
    def known(self) -> bool:
        return self.flops is not None


def _unknown(reason: str, dtype: str = "") -> _Cost:
    return _Cost(None, None, 0, dtype, reason)


def _backend_config(instr):
    raw = instr.backend_config
    if not raw:
        return None
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    text = text.strip()
    if text.startswith("{\""):
        try:
            return json.loads(text)
        except ValueError:
            return None
    return text


def _mlir_attributes(text: str) -> dict:
    """`{attn_heads = 16 : i64, is_training = true, scale = 8.8e-02 : f64}` to a dict."""
    out = {}
    if not isinstance(text, str) or not text.startswith("{"):
        return out
    for match in re.finditer(r"(\w+)\s*=\s*([^,{}]+)", text):
        key, value = match.group(1), match.group(2).split(" : ")[0].strip()
        if value in ("true", "false"):
            out[key] = value == "true"
            continue
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value.strip('"')
    return out


def _dims(values) -> list:
    return [int(v) for v in values]


def _dot_counts(lhs, rhs, lhs_contracting, rhs_contracting, lhs_batch, rhs_batch):
    """(batch, M, N, K) of a dot from its operand shapes and dimension numbers; None if inconsistent."""
    ld, rd = list(lhs.dimensions), list(rhs.dimensions)
    try:
        k = math.prod(ld[d] for d in lhs_contracting)
        k_rhs = math.prod(rd[d] for d in rhs_contracting)
        batch = math.prod(ld[d] for d in lhs_batch)
        batch_rhs = math.prod(rd[d] for d in rhs_batch)
    except IndexError:
        return None
    if k != k_rhs or batch != batch_rhs:
        return None
    m = math.prod(s for i, s in enumerate(ld) if i not in set(lhs_contracting) | set(lhs_batch))
    n = math.prod(s for i, s in enumerate(rd) if i not in set(rhs_contracting) | set(rhs_batch))
    return batch, m, n, k


def convolution_fmas(input_dims, kernel_dims, output_dims, window, dnums,
                     feature_group_count: int = 1, batch_group_count: int = 1) -> int:
    """Multiply-adds of a convolution, counting only window positions that land on real
    (not padding, not base-dilation hole) input elements: the count XLA's HloCostAnalysis uses.

    FMAs = input features / feature groups x output features x batch / batch groups
           x product over spatial dims of the valid (output index, kernel index) pairs.
    """
    input_feature = input_dims[dnums.input_feature_dimension]
    output_feature = output_dims[dnums.output_feature_dimension]
    batch = input_dims[dnums.input_batch_dimension]
    valid_product = 1
    for i, wdim in enumerate(window.dimensions):
        in_size = input_dims[dnums.input_spatial_dimensions[i]]
        k_size = kernel_dims[dnums.kernel_spatial_dimensions[i]]
        out_size = output_dims[dnums.output_spatial_dimensions[i]]
        stride = wdim.stride or 1
        wdil = wdim.window_dilation or 1
        bdil = wdim.base_dilation or 1
        out_idx = np.arange(out_size, dtype=np.int64)[:, None]
        k_idx = np.arange(k_size, dtype=np.int64)[None, :]
        pos = out_idx * stride - wdim.padding_low + k_idx * wdil  # in the base-dilated input
        valid = (pos >= 0) & (pos % bdil == 0) & (pos // bdil < in_size)
        valid_product *= int(valid.sum())
    groups = max(feature_group_count or 1, 1)
    batch_groups = max(batch_group_count or 1, 1)
    return (input_feature // groups) * output_feature * (batch // batch_groups) * valid_product


def _attention_pairs(sq: int, skv: int, mask: str, left: int, right: int) -> int:
    """(query, key) pairs a fused attention computes after causal / sliding-window masking."""
    q = np.arange(sq, dtype=np.int64)
    lo = np.zeros(sq, dtype=np.int64)
    hi = np.full(sq, skv - 1, dtype=np.int64)
    diag = q + (skv - sq if "bottom_right" in mask else 0)  # the key aligned with each query
    if "causal" in mask:
        hi = np.minimum(hi, diag)
    if right is not None and right >= 0:
        hi = np.minimum(hi, diag + right)
    if left is not None and left >= 0:
        lo = np.maximum(lo, diag - left)
    return int(np.clip(hi - lo + 1, 0, None).sum())


class ModuleCosts:
    """Costs of the instructions of one HloModuleProto."""

    def __init__(self, module):
        self.module = module
        self.computations = {c.id: c for c in module.computations}
        self.instructions = {i.id: i for c in module.computations for i in c.instructions}
        self._computation_cache = {}

    # -- helpers
    def operand(self, instr, index):
        if index >= len(instr.operand_ids):
            return None
        return self.instructions.get(instr.operand_ids[index])

    def operand_shape(self, instr, index):
        op = self.operand(instr, index)
        return None if op is None else op.shape

    def instruction_bytes(self, instr) -> int:
        if instr.opcode in _NO_MEMORY:
            return 0
        total = 0
        for oid in instr.operand_ids:
            op = self.instructions.get(oid)
            if op is not None:
                total += _nbytes(op.shape)
        result = instr.shape
        if instr.opcode == "custom-call" and _has_workspace(result):
            total += sum(_nbytes(s) for s in result.tuple_shapes[:-1])
        else:
            total += _nbytes(result)
        return total

    def _input_dtype(self, instr) -> str:
        for oid in instr.operand_ids:
            op = self.instructions.get(oid)
            if op is not None and _leaves(op.shape):
                return _dtype(op.shape)
        return _dtype(instr.shape)

    def applied_flops(self, computation_id) -> _Cost:
        """FLOPs of one application of a reducer / mapper computation (on scalars)."""
        return self.computation_cost(computation_id)

    def computation_cost(self, computation_id) -> _Cost:
        """Sum of a computation's instruction costs (a fused computation, a reducer)."""
        if computation_id in self._computation_cache:
            return self._computation_cache[computation_id]
        comp = self.computations.get(computation_id)
        if comp is None:
            cost = _unknown(f"computation {computation_id} is not in the module")
            self._computation_cache[computation_id] = cost
            return cost
        self._computation_cache[computation_id] = _unknown("recursive computation")
        flops, macs, trans, unknown = 0, None, 0, []
        best_dtype, best_flops, best_note = "", -1, ""
        for instr in comp.instructions:
            cost = self.instruction_cost(instr)
            if not cost.known:
                unknown.append(f"{instr.name} ({instr.opcode}): {cost.note}")
                continue
            flops += cost.flops
            trans += cost.transcendentals
            if cost.macs is not None:
                macs = (macs or 0) + cost.macs
            if cost.flops > best_flops and cost.dtype:
                best_dtype, best_flops = cost.dtype, cost.flops
                best_note = f"{instr.name}: {cost.note}" if cost.flops else ""
        if unknown:
            cost = _Cost(None, None, trans, best_dtype, "unknown inside: " + "; ".join(unknown[:3]))
        else:
            cost = _Cost(flops, macs, trans, best_dtype, best_note)
        self._computation_cache[computation_id] = cost
        return cost

    # -- the formulas
    def instruction_cost(self, instr) -> _Cost:
        op = instr.opcode
        if op in _ZERO_OPCODES:
            return _Cost(0, None, 0, self._input_dtype(instr) if op == "convert" else _dtype(instr.shape),
                         _ZERO_OPCODES[op])
        if op in _ELEMENTWISE:
            out = _first_array(instr.shape)
            n = _elements(out) if out is not None else 0
            trans = n if op in _TRANSCENDENTAL else 0
            return _Cost(n, None, trans, self._input_dtype(instr),
                         "transcendental: 1 per element" if trans else "elementwise: 1 per element")
        handler = getattr(self, "_" + op.replace("-", "_"), None)
        if handler is None:
            return _unknown(f"no formula for opcode {op}", _dtype(instr.shape))
        return handler(instr)

    def _fusion(self, instr) -> _Cost:
        if not instr.called_computation_ids:
            return _unknown("fusion without a fused computation")
        inner = self.computation_cost(instr.called_computation_ids[0])
        note = f"sum of fused computation ({instr.fusion_kind or 'fusion'})"
        if inner.note:
            note += f"; largest: {inner.note}"
        if not inner.known:
            return _Cost(None, None, inner.transcendentals, inner.dtype or _dtype(instr.shape), inner.note)
        return _Cost(inner.flops, inner.macs, inner.transcendentals, inner.dtype or _dtype(instr.shape), note)

    def _dot(self, instr) -> _Cost:
        lhs, rhs = self.operand_shape(instr, 0), self.operand_shape(instr, 1)
        if lhs is None or rhs is None:
            return _unknown("dot operands missing")
        dn = instr.dot_dimension_numbers
        counts = _dot_counts(lhs, rhs, list(dn.lhs_contracting_dimensions), list(dn.rhs_contracting_dimensions),
                             list(dn.lhs_batch_dimensions), list(dn.rhs_batch_dimensions))
        if counts is None:
            return _unknown("dot dimension numbers do not match the operand shapes", _dtype(lhs))
        batch, m, n, k = counts
        macs = batch * m * n * k
        return _Cost(2 * macs, macs, 0, _dtype(lhs), f"dot: 2 x batch {batch} x M {m} x N {n} x K {k}")

    def _convolution(self, instr) -> _Cost:
        lhs, rhs = self.operand_shape(instr, 0), self.operand_shape(instr, 1)
        if lhs is None or rhs is None:
            return _unknown("convolution operands missing")
        return self._conv_cost(instr, lhs, rhs, instr.shape, "convolution")

    def _conv_cost(self, instr, input_shape, kernel_shape, output_shape, label, extra_per_output=0,
                   extra_note="") -> _Cost:
        try:
            fmas = convolution_fmas(list(input_shape.dimensions), list(kernel_shape.dimensions),
                                    list(output_shape.dimensions), instr.window,
                                    instr.convolution_dimension_numbers, instr.feature_group_count,
                                    instr.batch_group_count)
        except IndexError:
            return _unknown(f"{label}: dimension numbers do not match the shapes", _dtype(input_shape))
        flops = 2 * fmas + extra_per_output * _elements(output_shape)
        note = f"{label}: 2 x {fmas} FMAs over valid window positions" + extra_note
        return _Cost(flops, fmas, 0, _dtype(input_shape), note)

    def _reduce(self, instr) -> _Cost:
        arg = self.operand_shape(instr, 0)
        out = _first_array(instr.shape)
        if arg is None or out is None or not instr.called_computation_ids:
            return _unknown("reduce operands or reducer missing")
        reducer = self.applied_flops(instr.called_computation_ids[0])
        if not reducer.known:
            return _unknown("reducer: " + reducer.note, _dtype(arg))
        count = _elements(arg) - _elements(out)
        return _Cost(count * reducer.flops, None, count * reducer.transcendentals, _dtype(arg),
                     f"reduce: (input - output elements) x {reducer.flops} FLOPs per reducer call")

    def _reduce_window(self, instr) -> _Cost:
        out = _first_array(instr.shape)
        arg = self.operand_shape(instr, 0)
        if out is None or arg is None or not instr.called_computation_ids:
            return _unknown("reduce-window operands or reducer missing")
        reducer = self.applied_flops(instr.called_computation_ids[0])
        if not reducer.known:
            return _unknown("reducer: " + reducer.note, _dtype(arg))
        window = math.prod(d.size for d in instr.window.dimensions)
        count = (window - 1) * _elements(out)
        return _Cost(count * reducer.flops, None, count * reducer.transcendentals, _dtype(arg),
                     "reduce-window: (window - 1) x output elements x reducer FLOPs")

    def _select_and_scatter(self, instr) -> _Cost:
        source = self.operand_shape(instr, 1)
        if source is None or len(instr.called_computation_ids) < 2:
            return _unknown("select-and-scatter operands or computations missing")
        select = self.applied_flops(instr.called_computation_ids[0])
        scatter = self.applied_flops(instr.called_computation_ids[1])
        if not (select.known and scatter.known):
            return _unknown("select or scatter computation unknown", _dtype(source))
        window = math.prod(d.size for d in instr.window.dimensions)
        n = _elements(source)
        return _Cost(n * ((window - 1) * select.flops + scatter.flops), None, 0, _dtype(source),
                     "select-and-scatter: source elements x ((window - 1) x select + scatter)")

    def _map(self, instr) -> _Cost:
        out = _first_array(instr.shape)
        if out is None or not instr.called_computation_ids:
            return _unknown("map computation missing")
        fn = self.applied_flops(instr.called_computation_ids[0])
        if not fn.known:
            return _unknown("mapped computation: " + fn.note)
        n = _elements(out)
        return _Cost(n * fn.flops, None, n * fn.transcendentals, self._input_dtype(instr),
                     "map: output elements x computation FLOPs")

    def _scatter(self, instr) -> _Cost:
        count = len(instr.operand_ids)
        operands = (count - 1) // 2
        updates = self.operand_shape(instr, operands + 1)
        if updates is None or not instr.called_computation_ids:
            return _unknown("scatter updates or computation missing")
        fn = self.applied_flops(instr.called_computation_ids[0])
        if not fn.known:
            return _unknown("scatter computation: " + fn.note)
        n = _elements(updates)
        return _Cost(n * fn.flops, None, n * fn.transcendentals, _dtype(updates),
                     "scatter: update elements x update-computation FLOPs")

    def _sort(self, instr) -> _Cost:
        keys = self.operand_shape(instr, 0)
        if keys is None or not instr.dimensions or not instr.called_computation_ids:
            return _unknown("sort operands, dimension or comparator missing")
        comparator = self.applied_flops(instr.called_computation_ids[0])
        if not comparator.known:
            return _unknown("comparator: " + comparator.note)
        n = keys.dimensions[instr.dimensions[0]]
        log_n = math.ceil(math.log2(n)) if n > 1 else 0
        return _Cost(_elements(keys) * log_n * max(comparator.flops, 1), None, 0, _dtype(keys),
                     "sort (estimate): elements x ceil(log2 n) comparisons")

    def _fft(self, instr) -> _Cost:
        length = math.prod(instr.fft_length) if instr.fft_length else 0
        operand = self.operand_shape(instr, 0)
        if length <= 1 or operand is None:
            return _unknown("fft length or operand missing")
        # The real side (RFFT input, IRFFT output) holds N values per transform; for a
        # complex-to-complex FFT both sides do.
        real = [s for s in (operand, instr.shape) if _dtype(s) in ("float32", "float64")]
        basis = real[0] if real else operand
        transforms = _elements(basis) // length
        return _Cost(int(5 * length * math.log2(length)) * transforms, None, 0, _dtype(operand),
                     "fft (estimate): 5 N log2 N per transform")

    def _triangular_solve(self, instr) -> _Cost:
        a, b = self.operand_shape(instr, 0), self.operand_shape(instr, 1)
        if a is None or b is None:
            return _unknown("triangular-solve operands missing")
        m = a.dimensions[-1]
        return _Cost(m * _elements(b), None, 0, _dtype(a), "triangular-solve: m^2 n per system")

    def _cholesky(self, instr) -> _Cost:
        a = self.operand_shape(instr, 0)
        if a is None:
            return _unknown("cholesky operand missing")
        n = a.dimensions[-1]
        return _Cost(_elements(a) * n // 3, None, 0, _dtype(a), "cholesky: n^3 / 3 per matrix")

    def _all_reduce(self, instr) -> _Cost:
        return _unknown("reduction FLOPs depend on the number of participating devices", _dtype(instr.shape))

    _all_reduce_start = _all_reduce
    _reduce_scatter = _all_reduce

    def _rng(self, instr) -> _Cost:
        return _unknown("random-distribution sampling has no agreed FLOP count", _dtype(instr.shape))

    # -- custom calls
    def _custom_call(self, instr) -> _Cost:
        target = instr.custom_call_target
        if _GEMM_TARGET.match(target):
            return self._gemm_call(instr)
        if _CONV_TARGET.match(target):
            return self._conv_call(instr)
        if _TE_ATTENTION_TARGET.match(target):
            return self._te_attention(instr)
        if _CUDNN_ATTENTION_TARGET.match(target):
            return _unknown("cuDNN fused-attention custom calls are not modelled yet (no fixture to check "
                            "their operand layout against)", self._input_dtype(instr))
        if target in _ZERO_CUSTOM_CALLS:
            return _Cost(0, None, 0, _dtype(instr.shape), "moves or annotates data")
        return _unknown(f"custom call {target!r} has no formula", self._input_dtype(instr))

    def _gemm_call(self, instr) -> _Cost:
        lhs, rhs = self.operand_shape(instr, 0), self.operand_shape(instr, 1)
        out = _first_array(instr.shape)
        if lhs is None or rhs is None or out is None:
            return _unknown("GEMM operands missing")
        config = _backend_config(instr)
        gemm = config.get("gemm_backend_config", {}) if isinstance(config, dict) else {}
        dn = gemm.get("dot_dimension_numbers")
        if dn is not None:
            counts = _dot_counts(lhs, rhs, _dims(dn.get("lhs_contracting_dimensions", [])),
                                 _dims(dn.get("rhs_contracting_dimensions", [])),
                                 _dims(dn.get("lhs_batch_dimensions", [])), _dims(dn.get("rhs_batch_dimensions", [])))
            how = "backend_config dot_dimension_numbers"
        else:
            counts = self._gemm_counts_from_shapes(lhs, rhs, out)
            how = "operand shapes (no dot_dimension_numbers)"
        if counts is None:
            return _unknown("GEMM shapes and dimension numbers disagree", _dtype(lhs))
        batch, m, n, k = counts
        macs = batch * m * n * k
        out_elements = batch * m * n
        extra, notes = 0, []
        alpha = gemm.get("alpha_real", 1)
        if gemm.get("alpha_imag", 0) or (alpha not in (1, 1.0, None)):
            extra += 1
            notes.append("alpha scaling")
        if gemm.get("beta", 0) not in (0, 0.0, None):
            extra += 2
            notes.append("beta x C accumulate")
        epilogue = gemm.get("epilogue", "DEFAULT")
        if epilogue in _GEMM_EPILOGUE_FLOPS:
            if _GEMM_EPILOGUE_FLOPS[epilogue]:
                extra += _GEMM_EPILOGUE_FLOPS[epilogue]
                notes.append(f"epilogue {epilogue}")
        else:
            notes.append(f"epilogue {epilogue} not counted")
        note = f"GEMM custom call from {how}: 2 x batch {batch} x M {m} x N {n} x K {k}"
        if notes:
            note += " + " + ", ".join(notes)
        return _Cost(2 * macs + extra * out_elements, macs, 0, _dtype(lhs), note)

    @staticmethod
    def _gemm_counts_from_shapes(lhs, rhs, out):
        """Without dimension numbers: rank-2 (or equal leading batch dims) operands, K from
        (M K)(K N) / (M N) = K^2."""
        ld, rd, od = list(lhs.dimensions), list(rhs.dimensions), list(out.dimensions)
        if len(ld) < 2 or len(rd) < 2 or len(od) < 2 or ld[:-2] != rd[:-2] or ld[:-2] != od[:-2]:
            return None
        batch = math.prod(ld[:-2])
        lhs_e, rhs_e, out_e = math.prod(ld[-2:]), math.prod(rd[-2:]), math.prod(od[-2:])
        k = math.isqrt(lhs_e * rhs_e // out_e) if out_e else 0
        if k == 0 or k * k * out_e != lhs_e * rhs_e or lhs_e % k or rhs_e % k:
            return None
        return batch, lhs_e // k, rhs_e // k, k

    def _conv_call(self, instr) -> _Cost:
        target = instr.custom_call_target
        result = _first_array(instr.shape)
        a, b = self.operand_shape(instr, 0), self.operand_shape(instr, 1)
        if result is None or a is None or b is None:
            return _unknown("convolution custom-call operands missing")
        if "BackwardInput" in target:  # (dy, w) -> dx
            input_shape, kernel_shape, output_shape, label = result, b, a, "convolution backward-input"
        elif "BackwardFilter" in target:  # (x, dy) -> dw
            input_shape, kernel_shape, output_shape, label = a, result, b, "convolution backward-filter"
        else:  # (x, w[, bias, side input]) -> y
            input_shape, kernel_shape, output_shape, label = a, b, result, "convolution forward"
        extra, notes = 0, []
        config = _backend_config(instr)
        conv = config.get("cudnn_conv_backend_config", {}) if isinstance(config, dict) else {}
        if "BiasActivation" in target:
            if len(instr.operand_ids) > 2:
                extra += 1
                notes.append("bias")
            if conv.get("conv_result_scale", 1) not in (1, 1.0):
                extra += 1
                notes.append("result scale")
            if conv.get("side_input_scale", 0) not in (0, 0.0) and len(instr.operand_ids) > 3:
                extra += 2
                notes.append("side input")
        activation = conv.get("activation_mode", "kNone")
        if activation in _CUDNN_ACTIVATION_FLOPS:
            if _CUDNN_ACTIVATION_FLOPS[activation]:
                extra += _CUDNN_ACTIVATION_FLOPS[activation]
                notes.append(f"activation {activation}")
        else:
            notes.append(f"activation {activation} not counted")
        if "Graph" in target:
            notes.append("graph epilogue not counted")
        extra_note = (" + " + ", ".join(notes)) if notes else ""
        return self._conv_cost(instr, input_shape, kernel_shape, output_shape, label, extra, extra_note)

    def _te_attention(self, instr) -> _Cost:
        """Transformer Engine fused attention: the QK^T and PV matmuls (and, backward, the
        recomputed QK^T plus dV, dP, dQ, dK) over the (query, key) pairs left after masking."""
        backward = "backward" in instr.custom_call_target
        attrs = _mlir_attributes(_backend_config(instr) if instr.backend_config else "")
        needed = ["input_batch", "attn_heads", "q_max_seqlen", "kv_max_seqlen", "qk_head_dim", "v_head_dim",
                  "mask_type"]
        dtype = self._input_dtype(instr)
        if any(k not in attrs for k in needed):
            return _unknown("fused attention: backend_config lacks batch/heads/sequence/head-dim attributes "
                            "(an opaque descriptor)", dtype)
        b, h = attrs["input_batch"], attrs["attn_heads"]
        sq, skv = attrs["q_max_seqlen"], attrs["kv_max_seqlen"]
        dqk, dv = attrs["qk_head_dim"], attrs["v_head_dim"]
        mask = _TE_MASKS.get(attrs["mask_type"])
        if mask is None:
            return _unknown(f"fused attention: mask type {attrs['mask_type']} (arbitrary mask) has no "
                            "determinable work", dtype)
        # The attention output O (forward result, backward operand) is [b, sq, h, dv] in some layout.
        shapes = [instr.shape] + [self.operand_shape(instr, i) for i in range(len(instr.operand_ids))]
        o_elements = b * sq * h * dv
        if not any(_elements(leaf) == o_elements for s in shapes if s is not None for leaf in _leaves(s)):
            return _unknown("fused attention: no operand or result has the b x sq x h x dv elements the "
                            "backend_config implies", dtype)
        pairs = _attention_pairs(sq, skv, mask, attrs.get("window_size_left", -1),
                                 attrs.get("window_size_right", -1))
        if backward:
            macs = b * h * pairs * (3 * dqk + 2 * dv)
            what = "backward: QK^T recompute, dV, dP, dQ, dK"
        else:
            macs = b * h * pairs * (dqk + dv)
            what = "forward: QK^T and PV"
        note = (f"fused attention {what} over {pairs} unmasked (query, key) pairs per head "
                f"(b {b}, h {h}, sq {sq}, skv {skv}, d_qk {dqk}, d_v {dv}, mask {mask}); softmax not counted")
        if "padding" in mask:
            note += "; padding mask: counted at the maximum sequence lengths"
        return _Cost(2 * macs, macs, 0, dtype, note)


def _executable_computations(module) -> list:
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
    computations = _executable_computations(module)
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
                "transcendentals": cost.transcendentals,
                "bytes": costs.instruction_bytes(instr),
                "dtype": cost.dtype,
                "flops_source": XLA if cost.known else UNKNOWN,
                "note": cost.note,
            })
    return _frame(rows)


def _frame(rows) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=HLO_COLUMNS)
    for column in ("flops", "macs"):
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
