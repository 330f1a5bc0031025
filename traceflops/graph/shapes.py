"""Parsing the profiler's `shape` strings into tensor specs (`traceflops/ops.py` describes tensors and dtypes).

The profiler records input shapes as `(float[256,512];float[512,128];int32[])`:
one entry per input, `dtype[dims]`, scalars as `dtype[]`, resource handles and
other non-tensors as empty entries. Unknown dimensions (`?` or `-1`) make a
shape partial; counts that need them become unknown.
"""
from __future__ import annotations

import re
from typing import Optional

# The tensor description and dtype tables are the op-description module's; re-exported for the
# graph stage's callers.
from ..ops import CANONICAL_DTYPE, DTYPE_BYTES, FLOAT_DTYPES, TensorSpec, canonical_dtype, total_bytes  # noqa: F401

_DIM = re.compile(r"^[0-9]+$")
_ENTRY = re.compile(r"^\s*([A-Za-z0-9_]+)\s*\[([^\]]*)\]\s*$")


def parse_tensor(text: str) -> Optional[TensorSpec]:
    """`float[4,32]` to a TensorSpec; an empty or non-tensor entry gives None."""
    match = _ENTRY.match(text)
    if not match:
        return None
    dims = []
    for part in match.group(2).split(","):
        part = part.strip()
        if not part:
            continue
        if part in ("?", "-1"):
            dims.append(None)
        elif _DIM.match(part):
            dims.append(int(part))
        else:
            return None  # a damaged entry: unreadable, like a non-tensor one
    return TensorSpec(canonical_dtype(match.group(1)), tuple(dims))


def parse_shape_list(text: Optional[str]) -> Optional[list]:
    """`(float[4,32];int32[])` to [TensorSpec, TensorSpec]; None when nothing was recorded.

    Entries that are not tensors (resource handles) become None in the list, so
    positions still line up with the op's inputs.
    """
    if not isinstance(text, str):
        return None  # None or NaN: nothing recorded
    text = text.strip()
    if not (text.startswith("(") and text.endswith(")")):
        return None
    body = text[1:-1]
    if not body:
        return []
    return [parse_tensor(entry) for entry in body.split(";")]
