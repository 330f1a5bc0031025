"""Which execution unit's roof each op is judged against: matrix units for contractions, vector units otherwise.

A contraction (an op of family `conv` or `matmul/einsum`, or with priced MACs > 0: dots, convolutions,
GEMM and convolution custom calls, fusions holding a dot) runs on the matrix units (NVIDIA tensor
cores, AMD MFMA matrix cores, TPU MXU) where the device's ceilings carry a
`tensor_core_gflops_per_s` rate for its dtype; everything else runs on the vector units
(`peak_gflops_per_s`). A float32 contraction on an NVIDIA GPU whose tensor cores do TF32 (Ampere
and later) is judged against the TF32 rate: XLA's default precision (`PrecisionConfig` DEFAULT,
JAX's default matmul precision) lets cuBLAS/cuDNN/Triton use TF32 there. Ceilings without matrix
rates (measured CPU ceilings) give every op its vector roof, as before.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..costs import family_of
from ..graph.shapes import canonical_dtype

REFERENCE_DTYPE = "float32"
CONTRACTION_FAMILIES = ("conv", "matmul/einsum")
SHORT = {"float64": "f64", "float32": "f32", "float16": "f16", "bfloat16": "bf16", "tf32": "tf32",
         "float8": "f8", "int8": "int8", "int4": "int4", "float4": "f4"}


def short_dtype(dtype: str) -> str:
    return SHORT.get(dtype, dtype)


def tf32_allowed(ceilings: dict) -> bool:
    """True where float32 contractions run as TF32 on the matrix units: an NVIDIA GPU with a TF32 rate."""
    vendor = str(ceilings.get("vendor") or "")
    return (ceilings.get("source") == "theoretical" and not vendor.startswith(("AMD", "Google"))
            and bool((ceilings.get("tensor_core_gflops_per_s") or {}).get("tf32")))


def is_contraction(table: pd.DataFrame) -> np.ndarray:
    """Per row: a contraction (family conv / matmul/einsum, or priced MACs > 0)."""
    macs = pd.to_numeric(table["macs"], errors="coerce").astype(float).to_numpy() if "macs" in table \
        else np.full(len(table), np.nan)
    families = table["op_type"].fillna("").astype(str).map(family_of).to_numpy()
    with np.errstate(invalid="ignore"):
        return np.isin(families, CONTRACTION_FAMILIES) | (macs > 0)


def _vector(dtype: str, peaks: dict) -> tuple:
    name = canonical_dtype(str(dtype)) if dtype else ""
    if name in peaks:
        return name, float(peaks[name])
    return REFERENCE_DTYPE, float(peaks[REFERENCE_DTYPE])


def matrix_roof(dtype: str, ceilings: dict):
    """(roof label, ceiling dtype, GFLOP/s) of a contraction of `dtype` on the matrix units, or None."""
    matrix = ceilings.get("tensor_core_gflops_per_s") or {}
    name = canonical_dtype(str(dtype)) if dtype else ""
    if name == "float32" and tf32_allowed(ceilings):
        return "matrix tf32", "float32", float(matrix["tf32"])
    if matrix.get(name):
        return f"matrix {short_dtype(name)}", name, float(matrix[name])
    return None


def unit_roofs(table: pd.DataFrame, ceilings: dict) -> list:
    """[(roof label, ceiling dtype, GFLOP/s, highest GFLOP/s at that dtype on the device)] per row."""
    peaks = ceilings["peak_gflops_per_s"]
    contraction = is_contraction(table)
    out = []
    for dtype, contracts in zip(table["dtype"].fillna(""), contraction):
        name, vector = _vector(dtype, peaks)
        on_matrix = matrix_roof(dtype, ceilings)
        highest = max(vector, on_matrix[2]) if on_matrix else vector
        if contracts and on_matrix:
            out.append((*on_matrix, highest))
        else:
            out.append((f"vector {short_dtype(name)}", name, vector, highest))
    return out


def model_roof(table: pd.DataFrame, dtype: str, ceilings: dict) -> tuple:
    """(roof label, GFLOP/s) the model FLOPs utilization is measured against: the matrix units at the
    reference dtype where the model's contractions ran on them, else the vector units."""
    on_matrix = matrix_roof(dtype, ceilings)
    if on_matrix and len(table) and is_contraction(table).any():
        return on_matrix[0], on_matrix[2]
    return f"vector {short_dtype(dtype)}", float(ceilings["peak_gflops_per_s"][dtype])
