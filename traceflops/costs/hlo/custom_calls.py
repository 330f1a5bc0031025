"""Custom-call targets in the registry: cuBLAS(Lt)/hipBLAS(Lt) GEMMs, cuDNN/MIOpen convolutions, Transformer
Engine fused attention, and the custom calls that only move or annotate data.

Each is a `custom_call:` key, with a `pattern` where targets vary (`__cublas$lt$matmul`,
`__cudnn$convBiasActivationForward`); `describe.custom_call_cost` finds a target's entry (its own
key first, else the first pattern it matches, in registration order). Epilogue and activation FLOPs
come from the one epilogue table (`costs/epilogues.py`)."""
from __future__ import annotations

import math

import numpy as np

from ..epilogues import epilogue_flops
from ..registry import CUSTOM_CALL, INSTRUCTION, declare_zero, register
from .common import (backend_config, dot_counts, dtype_of, elements, first_array, int_list, leaves,
                     mlir_attributes, unknown, xla_cost)
from .instructions import conv_cost

# NVTE_Mask_Type (transformer_engine/common/include/transformer_engine/fused_attn.h).
_TE_MASKS = {0: "none", 1: "padding", 2: "causal", 3: "padding_causal", 4: "causal_bottom_right",
             5: "padding_causal_bottom_right"}

declare_zero(*(f"{CUSTOM_CALL}:{target}" for target in (
    "Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape", "AllocateBuffer", "MoveToHost", "MoveToDevice",
    "PadToStatic", "SliceToDynamic", "annotate_device_placement", "LayoutConstraint")),
    reason="moves or annotates data")


def _gemm_extras(gemm: dict) -> tuple:
    """FLOPs per output element of alpha scaling, beta x C and the epilogue, with their notes."""
    extra, notes = 0, []
    alpha = gemm.get("alpha_real", 1)
    if gemm.get("alpha_imag", 0) or (alpha not in (1, 1.0, None)):
        extra += 1
        notes.append("alpha scaling")
    if gemm.get("beta", 0) not in (0, 0.0, None):
        extra += 2
        notes.append("beta x C accumulate")
    epilogue = gemm.get("epilogue", "DEFAULT")
    per = epilogue_flops("cublaslt", epilogue)
    if per is None:
        notes.append(f"epilogue {epilogue} not counted")
    elif per:
        extra += per
        notes.append(f"epilogue {epilogue}")
    return extra, notes


@register(f"{CUSTOM_CALL}:__cublas$gemm", family="matmul/einsum", signature=INSTRUCTION,
          pattern=r"^__(cu|hip|roc)blas(\$lt)?\$(gemm|matmul)")
def gemm_call(mc, instr):
    """2 x batch x M x N x K + epilogue FLOPs per output element (dimension numbers from backend_config)."""
    lhs, rhs = mc.operand_shape(instr, 0), mc.operand_shape(instr, 1)
    out = first_array(instr.shape)
    if lhs is None or rhs is None or out is None:
        return unknown("GEMM operands missing")
    config = backend_config(instr)
    gemm = config.get("gemm_backend_config", {}) if isinstance(config, dict) else {}
    dn = gemm.get("dot_dimension_numbers")
    if dn is not None:
        counts = dot_counts(lhs, rhs, int_list(dn.get("lhs_contracting_dimensions", [])),
                            int_list(dn.get("rhs_contracting_dimensions", [])),
                            int_list(dn.get("lhs_batch_dimensions", [])), int_list(dn.get("rhs_batch_dimensions", [])))
        how = "backend_config dot_dimension_numbers"
    else:
        counts = gemm_counts_from_shapes(lhs, rhs, out)
        how = "operand shapes (no dot_dimension_numbers)"
    if counts is None:
        return unknown("GEMM shapes and dimension numbers disagree", dtype_of(lhs))
    batch, m, n, k = counts
    macs = batch * m * n * k
    extra, notes = _gemm_extras(gemm)
    note = f"GEMM custom call from {how}: 2 x batch {batch} x M {m} x N {n} x K {k}"
    if notes:
        note += " + " + ", ".join(notes)
    return xla_cost(2 * macs + extra * batch * m * n, macs, 0, dtype_of(lhs), note)


def gemm_counts_from_shapes(lhs, rhs, out):
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


def _conv_extras(instr, target: str, conv: dict) -> tuple:
    """FLOPs per output element of a fused cuDNN convolution's bias, scales, side input and activation."""
    extra, notes = 0, []
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
    per = epilogue_flops("cudnn", activation)
    if per is None:
        notes.append(f"activation {activation} not counted")
    elif per:
        extra += per
        notes.append(f"activation {activation}")
    if "Graph" in target:
        notes.append("graph epilogue not counted")
    return extra, notes


@register(f"{CUSTOM_CALL}:__cudnn$convForward", family="conv", signature=INSTRUCTION,
          pattern=r"^__(cudnn|miopen)\$conv")
def conv_call(mc, instr):
    """2 x textbook MACs (forward, backward-input or backward-filter; every kernel tap) + fused epilogue;
    XLA's valid-window count in `xla_valid_macs`."""
    target = instr.custom_call_target
    result = first_array(instr.shape)
    a, b = mc.operand_shape(instr, 0), mc.operand_shape(instr, 1)
    if result is None or a is None or b is None:
        return unknown("convolution custom-call operands missing")
    if "BackwardInput" in target:  # (dy, w) -> dx
        input_shape, kernel_shape, output_shape, label = result, b, a, "convolution backward-input"
    elif "BackwardFilter" in target:  # (x, dy) -> dw
        input_shape, kernel_shape, output_shape, label = a, result, b, "convolution backward-filter"
    else:  # (x, w[, bias, side input]) -> y
        input_shape, kernel_shape, output_shape, label = a, b, result, "convolution forward"
    config = backend_config(instr)
    conv = config.get("cudnn_conv_backend_config", {}) if isinstance(config, dict) else {}
    extra, notes = _conv_extras(instr, target, conv)
    extra_note = (" + " + ", ".join(notes)) if notes else ""
    return conv_cost(instr, input_shape, kernel_shape, output_shape, label, extra, extra_note)


def attention_pairs(sq: int, skv: int, mask: str, left: int, right: int) -> int:
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


@register(f"{CUSTOM_CALL}:te_fused_attn_forward", family="matmul/einsum", signature=INSTRUCTION,
          pattern=r"^te_fused_attn_(forward|backward)(_ffi)?$")
def te_attention(mc, instr):
    """Transformer Engine fused attention: the QK^T and PV matmuls (and, backward, the
    recomputed QK^T plus dV, dP, dQ, dK) over the (query, key) pairs left after masking."""
    backward = "backward" in instr.custom_call_target
    attrs = mlir_attributes(backend_config(instr) if instr.backend_config else "")
    needed = ["input_batch", "attn_heads", "q_max_seqlen", "kv_max_seqlen", "qk_head_dim", "v_head_dim",
              "mask_type"]
    dtype = mc.input_dtype(instr)
    if any(k not in attrs for k in needed):
        return unknown("fused attention: backend_config lacks batch/heads/sequence/head-dim attributes "
                       "(an opaque descriptor)", dtype)
    b, h = attrs["input_batch"], attrs["attn_heads"]
    sq, skv = attrs["q_max_seqlen"], attrs["kv_max_seqlen"]
    dqk, dv = attrs["qk_head_dim"], attrs["v_head_dim"]
    mask = _TE_MASKS.get(attrs["mask_type"])
    if mask is None:
        return unknown(f"fused attention: mask type {attrs['mask_type']} (arbitrary mask) has no "
                       "determinable work", dtype)
    # The attention output O (forward result, backward operand) is [b, sq, h, dv] in some layout.
    shapes = [instr.shape] + [mc.operand_shape(instr, i) for i in range(len(instr.operand_ids))]
    o_elements = b * sq * h * dv
    if not any(elements(leaf) == o_elements for s in shapes if s is not None for leaf in leaves(s)):
        return unknown("fused attention: no operand or result has the b x sq x h x dv elements the "
                       "backend_config implies", dtype)
    pairs = attention_pairs(sq, skv, mask, attrs.get("window_size_left", -1), attrs.get("window_size_right", -1))
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
    return xla_cost(2 * macs, macs, 0, dtype, note)


@register(f"{CUSTOM_CALL}:__cudnn$fmha", family="matmul/einsum", signature=INSTRUCTION,
          pattern=r"^__cudnn\$fmha|^__cudnn\$fhma")
def cudnn_attention(mc, instr):
    """Unknown: cuDNN fused-attention custom calls are not modelled yet."""
    return unknown("cuDNN fused-attention custom calls are not modelled yet (no fixture to check "
                   "their operand layout against)", mc.input_dtype(instr))
