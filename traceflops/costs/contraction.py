"""Contractions: matmul, batch matmul, einsum; and the fused epilogues every contraction may carry.

One fused multiply-add is 2 FLOPs; `macs` is reported beside the FLOPs.
"""
from __future__ import annotations

import math
from typing import Optional

from .epilogues import epilogue_flops
from ..ops import OpInfo, TensorSpec
from .registry import register

FAMILY = "matmul/einsum"
# A fused batch norm in `fused_ops` is folded for inference: x*scale' + offset' per element.
_FOLDED_BATCH_NORMS = ("FusedBatchNorm", "FusedBatchNormV3", "_FusedBatchNormEx")


def fused_epilogue_flops(op: OpInfo, elements: int) -> Optional[int]:
    """FLOPs of the ops fused after a contraction, per `fused_ops`, on its output elements."""
    if not op.attrs_known and op.op_type.replace("_MklNative", "_").replace("_Mkl", "_").startswith("_Fused"):
        op.inferred.append("fused_ops not in the trace: FLOPs count the contraction only (a lower bound)")
        return 0
    total = 0
    for name in op.attrs.get("fused_ops") or []:
        if name in _FOLDED_BATCH_NORMS:
            total += 2 * elements
            continue
        per = epilogue_flops("tf", name)
        if per is None:
            return None  # an epilogue we cannot count makes the whole op unknown
        total += per * elements
    return total


def contraction(op: OpInfo, macs: int, output_elements: int):
    """(2 x MACs + fused epilogue FLOPs, MACs), or None when the epilogue is not known."""
    epilogue = fused_epilogue_flops(op, output_elements)
    if epilogue is None:
        return None
    return 2 * macs + epilogue, macs


def matmul_dims(a: TensorSpec, b: TensorSpec, transpose_a: bool, transpose_b: bool):
    """(M, N, K) of A x B under the transposes, or None when K disagrees."""
    m, k = (a.dims[-1], a.dims[-2]) if transpose_a else (a.dims[-2], a.dims[-1])
    k2, n = (b.dims[-1], b.dims[-2]) if transpose_b else (b.dims[-2], b.dims[-1])
    if k != k2:
        return None
    return m, n, k


def transposes(op: OpInfo, a: TensorSpec, b: TensorSpec, names: tuple):
    """The transpose flags: from the attributes, or, without them, from which dimensions agree.

    Returns None when the shapes leave it ambiguous in a way that changes the count.
    """
    if op.attrs_known:
        return bool(op.attrs.get(names[0])), bool(op.attrs.get(names[1]))
    counts = {}
    for flags in ((False, False), (False, True), (True, False), (True, True)):
        dims = matmul_dims(a, b, *flags)
        if dims is not None:
            counts.setdefault(math.prod(dims), flags)
    if len(counts) != 1:
        return None
    flags = next(iter(counts.values()))
    op.inferred.append(f"{names[0]}/{names[1]} inferred from the shapes as {flags[0]}/{flags[1]}")
    return flags


@register("MatMul", "_FusedMatMul", family=FAMILY)
def matmul(op: OpInfo):
    """2·M·N·K + epilogue FLOPs, M·N·K MACs for [M,K] x [K,N] (transpose_a/b honoured)."""
    a, b = op.input(0), op.input(1)
    if a is None or b is None:
        return None
    flags = transposes(op, a, b, ("transpose_a", "transpose_b"))
    dims = None if flags is None else matmul_dims(a, b, *flags)
    if dims is None:
        return None
    m, n, k = dims
    return contraction(op, m * n * k, m * n)


@register("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "_FusedBatchMatMulV2", family=FAMILY)
def batch_matmul(op: OpInfo):
    """2·B·M·N·K + epilogue FLOPs, B·M·N·K MACs; B = broadcast of the batch dims (adj_x/adj_y honoured)."""
    a, b = op.input(0), op.input(1)
    if a is None or b is None:
        return None
    flags = transposes(op, a, b, ("adj_x", "adj_y"))
    dims = None if flags is None else matmul_dims(a, b, *flags)
    if dims is None:
        return None
    m, n, k = dims
    batch_a, batch_b = a.dims[:-2], b.dims[:-2]
    rank = max(len(batch_a), len(batch_b))
    batch = 1
    for axis in range(rank):
        sizes = [s[axis - rank + len(s)] for s in (batch_a, batch_b) if axis - rank + len(s) >= 0]
        batch *= max(sizes)
    return contraction(op, batch * m * n * k, batch * m * n)


def _ellipsis_labels(count: int) -> str:
    """Labels for `count` ellipsis dims, named by distance from the right so they broadcast."""
    return "".join(chr(0x100 + count - 1 - i) for i in range(count))


def _einsum_labels(equation: str, tensors: list):
    """Each label's size, each operand's labels, and the output's labels; '...' expanded."""
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != len(tensors):
        return None
    sizes, expanded, most = {}, [], 0
    for term, tensor in zip(terms, tensors):
        if "..." in term:
            count = tensor.rank - (len(term) - 3)
            most = max(most, count)
            term = term.replace("...", _ellipsis_labels(count))
        if len(term) != tensor.rank:
            return None
        for label, size in zip(term, tensor.dims):
            sizes[label] = max(sizes.get(label, 1), size)
        expanded.append(term)
    if not arrow:  # implicit output: labels seen once, alphabetical
        rhs = "".join(sorted(c for c in sizes if "".join(expanded).count(c) == 1))
    rhs = rhs.replace("...", _ellipsis_labels(most))
    return sizes, expanded, rhs


@register("Einsum", family=FAMILY)
def einsum(op: OpInfo):
    """Two operands: 2·∏(all label sizes) FLOPs, ∏(all label sizes) MACs; one operand: elements − outputs.

    A one-operand equation sums its dropped labels (one add per extra element) or only
    transposes (0 FLOPs).
    """
    equation = op.attrs.get("equation")
    tensors = [op.input(i) for i in range(len(op.inputs))]
    if not equation or any(t is None for t in tensors) or not tensors:
        return None
    parsed = _einsum_labels(equation, tensors)
    if parsed is None:
        return None
    sizes, terms, rhs = parsed
    volume = math.prod(sizes.values())
    out_elements = math.prod(sizes[c] for c in rhs) if rhs else 1
    if len(terms) == 1:
        return max(volume - out_elements, 0), None
    if len(terms) == 2:
        return 2 * volume, volume
    return None
