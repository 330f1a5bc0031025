"""Source-neutral op descriptions: tensor specs, dtypes and `OpInfo`, what every trace source describes and the costs stage prices.

The graph stage (TensorFlow ops) and the costs stage (HLO instructions seen
through the registry's adapter, `costs/hlo/describe.py`) both build `OpInfo`s;
the formulas read nothing else. This module imports no other stage, so that the
stages depend one way: graph -> ops <- costs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
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


@dataclass
class OpInfo:
    """One op as a formula sees it, whatever its source: its type, input and output tensors, attributes."""
    op_type: str
    inputs: list  # TensorSpec or None (resource handles, unknown)
    outputs: list
    attrs: dict = field(default_factory=dict)
    attrs_known: bool = True  # False when no executed graph gave the node's attributes
    inferred: list = field(default_factory=list)  # what a formula had to infer, for the note

    def input(self, index: int) -> Optional[TensorSpec]:
        if index < len(self.inputs) and self.inputs[index] is not None and self.inputs[index].known:
            return self.inputs[index]
        return None

    def output(self, index: int = 0) -> Optional[TensorSpec]:
        if index < len(self.outputs) and self.outputs[index] is not None and self.outputs[index].known:
            return self.outputs[index]
        return None


def compute_dtype(op: OpInfo) -> str:
    """The dtype the op computes in: its first floating input, else its first input or output."""
    for tensor in list(op.inputs) + list(op.outputs):
        if tensor is not None and tensor.dtype in FLOAT_DTYPES:
            return tensor.dtype
    for tensor in list(op.inputs) + list(op.outputs):
        if tensor is not None:
            return tensor.dtype
    return ""
