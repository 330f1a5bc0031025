"""Shapes, backend configs and the Cost constructor shared by the HLO instruction formulas."""
from __future__ import annotations

import json
import math
import re
from typing import Optional

from ...ops import canonical_dtype
from ...trace import hlo_schema
from ..registry import UNKNOWN, Cost

XLA = "xla"


def xla_cost(flops: Optional[int], macs: Optional[int] = None, transcendentals: int = 0, dtype: str = "",
             note: str = "", xla_valid_macs: Optional[int] = None) -> Cost:
    """An HLO instruction's Cost: source `xla` when flops are known, else `unknown`; bytes come from
    `ModuleCosts.instruction_bytes`, so they are None here. `xla_valid_macs`: convolutions' valid-window
    FMAs (XLA's own count), beside the textbook `macs`."""
    return Cost(flops, macs, None, XLA if flops is not None else UNKNOWN, dtype, note, transcendentals,
                xla_valid_macs)


def unknown(reason: str, dtype: str = "") -> Cost:
    return xla_cost(None, None, 0, dtype, reason)


# ---------------------------------------------------------------- shapes

def is_array(shape) -> bool:
    name, bits = hlo_schema.PRIMITIVE_TYPES.get(shape.element_type, ("", 0))
    return bits > 0 and not shape.tuple_shapes


def leaves(shape) -> list:
    if shape.tuple_shapes:
        out = []
        for sub in shape.tuple_shapes:
            out.extend(leaves(sub))
        return out
    return [shape] if is_array(shape) else []


def elements(shape) -> int:
    return math.prod(shape.dimensions)


def nbytes(shape) -> int:
    total = 0
    for leaf in leaves(shape):
        bits = hlo_schema.PRIMITIVE_TYPES[leaf.element_type][1]
        total += -(-elements(leaf) * bits // 8)
    return total


def type_name(shape) -> str:
    return hlo_schema.PRIMITIVE_TYPES.get(shape.element_type, (f"type{shape.element_type}", 0))[0]


def dtype_of(shape) -> str:
    found = leaves(shape)
    return canonical_dtype(type_name(found[0])) if found else ""


def shape_text(shape) -> str:
    """`bf16[256,256]`, or `(bf16[256,256], s8[1024])` for a tuple."""
    if shape.tuple_shapes:
        return "(" + ", ".join(shape_text(s) for s in shape.tuple_shapes) + ")"
    return f"{type_name(shape)}[{','.join(str(d) for d in shape.dimensions)}]"


def first_array(shape):
    found = leaves(shape)
    return found[0] if found else None


def has_workspace(shape) -> bool:
    """Library custom calls return (results..., u8/s8[N] scratch workspace)."""
    if not shape.tuple_shapes or len(shape.tuple_shapes) < 2:
        return False
    last = shape.tuple_shapes[-1]
    return type_name(last) in ("u8", "s8") and len(last.dimensions) == 1


# ---------------------------------------------------------------- backend configs

def backend_config(instr):
    """The instruction's backend_config: a dict when it is JSON, else its text, else None."""
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


def mlir_attributes(text: str) -> dict:
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


def int_list(values) -> list:
    return [int(v) for v in values]


def dot_counts(lhs, rhs, lhs_contracting, rhs_contracting, lhs_batch, rhs_batch):
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
