"""Tensor shapes and dtypes: parsing the profiler's `shape` strings, and byte sizes.

The profiler records input shapes as `(float[256,512];float[512,128];int32[])`:
one entry per input, `dtype[dims]`, scalars as `dtype[]`, resource handles and
other non-tensors as empty entries. Unknown dimensions (`?` or `-1`) make a
shape partial; counts that need them become unknown.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Sequence

# Bytes per element, keyed by the dtype names the profiler and TensorFlow print.
DTYPE_BYTES = {
    "float": 4, "float32": 4, "double": 8, "float64": 8, "half": 2, "float16": 2,
    "bfloat16": 2, "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e4m3fnuz": 1, "float8_e5m2fnuz": 1,
    "int8": 1, "uint8": 1, "int16": 2, "uint16": 2, "int32": 4, "uint32": 4, "int64": 8, "uint64": 8,
    "bool": 1, "complex64": 8, "complex128": 16, "qint8": 1, "quint8": 1, "qint32": 4,
    # XLA primitive type spellings.
    "f32": 4, "f64": 8, "f16": 2, "bf16": 2, "s8": 1, "u8": 1, "s16": 2, "u16": 2,
    "s32": 4, "u32": 4, "s64": 8, "u64": 8, "pred": 1, "c64": 8, "c128": 16,
    "f8e4m3fn": 1, "f8e5m2": 1, "f8e4m3fnuz": 1, "f8e5m2fnuz": 1,
}
# Canonical names, so that per-dtype FLOP totals group float and float32 together.
CANONICAL_DTYPE = {
    "float": "float32", "double": "float64", "half": "float16", "f32": "float32", "f64": "float64",
    "f16": "float16", "bf16": "bfloat16", "s8": "int8", "u8": "uint8", "s16": "int16", "u16": "uint16",
    "s32": "int32", "u32": "uint32", "s64": "int64", "u64": "uint64", "pred": "bool",
    "c64": "complex64", "c128": "complex128", "f8e4m3fn": "float8_e4m3fn", "f8e5m2": "float8_e5m2",
}
FLOAT_DTYPES = {"float32", "float64", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2",
                "float8_e4m3fnuz", "float8_e5m2fnuz", "complex64", "complex128"}


def canonical_dtype(name: str) -> str:
    name = name.strip().lower()
    return CANONICAL_DTYPE.get(name, name)


@dataclass(frozen=True)
class TensorSpec:
    """One tensor: dtype name and dimensions (None where a dimension is unknown)."""
    dtype: str
    dims: tuple

    @property
    def known(self) -> bool:
        return all(d is not None and d >= 0 for d in self.dims)

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def num_elements(self) -> Optional[int]:
        return math.prod(self.dims) if self.known else None

    @property
    def itemsize(self) -> Optional[int]:
        return DTYPE_BYTES.get(self.dtype)

    @property
    def num_bytes(self) -> Optional[int]:
        n, size = self.num_elements, self.itemsize
        return None if n is None or size is None else n * size

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join('?' if d is None else str(d) for d in self.dims)}]"


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


def total_bytes(tensors: Sequence[Optional[TensorSpec]]) -> Optional[int]:
    """Sum of tensor bytes; None if any tensor's size is unknown. None entries (handles) add 0."""
    total = 0
    for tensor in tensors:
        if tensor is None:
            continue
        size = tensor.num_bytes
        if size is None:
            return None
        total += size
    return total
