"""Theoretical GPU and TPU ceilings (peak FLOP/s per dtype, memory bandwidth) from a trace's plane stats.

A `/device:GPU:N` plane carries `core_count` (NVIDIA: SMs; AMD: compute units),
`clock_rate` (kHz), `compute_cap_major/minor`, `memory_bandwidth` (bytes/s)
and sometimes `device_vendor`. The peak of one dtype is

    SMs x FLOPs per cycle per SM x clock,

with FLOPs per cycle per SM from the tables below (one FMA = 2 FLOPs, dense
math: no structured-sparsity doubling). CUDA-core (SIMT / vector) rates and
tensor-core (matrix-core) rates are kept apart: `peak_gflops_per_s` is what
ordinary kernels can reach, `tensor_core_gflops_per_s` what only
tensor-core GEMM/convolution/attention kernels can.

The tables were derived from the vendors' published peak numbers divided by
(SM count x boost clock) of a reference part of each architecture, so they
reproduce e.g. V100 SXM2 float32 = 80 x 128 x 1.53 GHz = 15.67 TFLOP/s and
A100 float32 = 108 x 128 x 1.41 GHz = 19.5 TFLOP/s. The trace's clock is the
one the driver reported (usually the boost clock); sustained clocks under load
are often lower, so these are upper bounds.
"""
from __future__ import annotations

from typing import Optional

# NVIDIA, by compute capability: FLOPs per cycle per SM on CUDA cores.
_NVIDIA_CUDA_CORES = {
    # V100: 64 FP32 lanes, 32 FP64 lanes, FP16 as half2 on the FP32 lanes.
    (7, 0): {"float32": 128, "float64": 64, "float16": 256},
    # T4 / Turing: 64 FP32 lanes, FP64 at 1/32, FP16 half2.
    (7, 5): {"float32": 128, "float64": 4, "float16": 256},
    # A100: 64 FP32 lanes, 32 FP64 lanes, FP16 at 4x FP32, BF16 at 2x.
    (8, 0): {"float32": 128, "float64": 64, "float16": 512, "bfloat16": 256},
    # GA10x (A10, A40, RTX 30): 128 FP32 lanes, FP64 at 1/64, FP16 = BF16 = FP32 rate.
    (8, 6): {"float32": 256, "float64": 4, "float16": 256, "bfloat16": 256},
    # Ada (L4, L40, RTX 40): as GA10x.
    (8, 9): {"float32": 256, "float64": 4, "float16": 256, "bfloat16": 256},
    # H100: 128 FP32 lanes, 64 FP64 lanes, FP16 and BF16 at 2x FP32.
    (9, 0): {"float32": 256, "float64": 128, "float16": 512, "bfloat16": 512},
    # B200: 128 FP32 lanes, 64 FP64 lanes; FP16/BF16 SIMT assumed at 2x FP32 as on H100.
    (10, 0): {"float32": 256, "float64": 128, "float16": 512, "bfloat16": 512},
}
# NVIDIA tensor cores, dense, FP32 accumulation for the float formats.
_NVIDIA_TENSOR_CORES = {
    (7, 0): {"float16": 1024},  # 8 tensor cores x 64 FMA
    (7, 5): {"float16": 1024, "int8": 2048, "int4": 4096},
    (8, 0): {"float16": 2048, "bfloat16": 2048, "tf32": 1024, "float64": 128, "int8": 4096},
    (8, 6): {"float16": 1024, "bfloat16": 1024, "tf32": 512, "int8": 2048},
    (8, 9): {"float16": 1024, "bfloat16": 1024, "tf32": 512, "float8": 2048, "int8": 2048},
    (9, 0): {"float16": 4096, "bfloat16": 4096, "tf32": 2048, "float64": 256, "float8": 8192, "int8": 8192},
    (10, 0): {"float16": 8192, "bfloat16": 8192, "tf32": 4096, "float64": 128, "float8": 16384,
              "int8": 16384, "float4": 32768},
}
_NVIDIA_REFERENCE = {
    (7, 0): "V100 SXM2 (80 SMs, 1.53 GHz): FP32 15.7, FP16 tensor 125 TFLOP/s",
    (7, 5): "T4 (40 SMs, 1.59 GHz): FP32 8.1, FP16 tensor 65 TFLOP/s",
    (8, 0): "A100 (108 SMs, 1.41 GHz): FP32 19.5, FP64 9.7, FP16/BF16 tensor 312, TF32 156 TFLOP/s",
    (8, 6): "A40 (84 SMs, 1.74 GHz): FP32 37.4, FP16 tensor 149.7 TFLOP/s; GeForce GA10x run FP16 with "
            "FP32 accumulation at half this tensor rate",
    (8, 9): "L4 (58 SMs, 2.04 GHz): FP32 30.3, FP16 tensor 121 TFLOP/s dense; L40 and GeForce Ada list "
            "FP32-accumulate tensor rates at half this",
    (9, 0): "H100 SXM (132 SMs): FP32 67 TFLOP/s at 1.98 GHz, FP16 tensor 989 TFLOP/s dense at 1.83 GHz",
    (10, 0): "B200 (148 SMs): FP16/BF16 tensor about 2.25 PFLOP/s dense; FP32 SIMT about 75-80 TFLOP/s",
}
# AMD CDNA, by the (major, minor) HIP reports for the gfx target: FLOPs per cycle per CU.
_AMD_VECTOR = {  # packed FP32 (two FP32 per lane per cycle); FP16 vector rates are not published, so left out
    (9, 0): {"float32": 256, "float64": 128},  # gfx90a MI200 (CDNA2); gfx908 MI100 reports 9.0 too
    (9, 4): {"float32": 256, "float64": 128},  # gfx942, MI300 (CDNA3)
    (9, 5): {"float32": 256, "float64": 128},  # gfx950, MI350/355 (CDNA4)
}
_AMD_MATRIX = {
    (9, 0): {"float16": 1024, "bfloat16": 1024, "float32": 256, "float64": 256, "int8": 1024},
    (9, 4): {"float16": 2048, "bfloat16": 2048, "tf32": 1024, "float32": 256, "float64": 256,
             "float8": 4096, "int8": 4096},
    (9, 5): {"float16": 4096, "bfloat16": 4096, "float32": 256, "float64": 128, "float8": 8192,
             "int8": 8192, "float4": 16384},
}
_AMD_REFERENCE = {
    (9, 0): "MI250X (220 CUs, 1.7 GHz): FP32 vector 47.9 (packed 95.7), FP16 matrix 383 TFLOP/s",
    (9, 4): "MI300X (304 CUs, 2.1 GHz): FP32 vector 163.4 (packed), FP16/BF16 matrix 1307 TFLOP/s dense",
    (9, 5): "MI355X (256 CUs, 2.4 GHz): FP32 vector 157.3, FP16/BF16 matrix 2.5 PFLOP/s dense",
}


# Every dtype a ceiling table states for every generation (no dtype left to fall back to float32).
FLOAT_DTYPES = ("float64", "float32", "float16", "bfloat16")


def complete_tables(vector: dict, matrix: dict) -> tuple:
    """(vector, matrix) per-cycle tables with every FLOAT_DTYPES row: a dtype the vector units lack
    (bfloat16 on V100/T4, FP16/BF16 vector on CDNA) runs at their float32 rate (converted to float32);
    a dtype the matrix units lack runs on the vector units (float32 and float64 on NVIDIA tensor
    cores before Ampere's FP64 MMA; float32 is then a TF32 question, see `tf32_allowed`)."""
    vector = dict(vector)
    for dtype in FLOAT_DTYPES:
        vector.setdefault(dtype, vector.get("float32", 0))
    matrix = dict(matrix)
    for dtype in FLOAT_DTYPES:
        matrix.setdefault(dtype, vector[dtype])
    return vector, matrix


def _stats_of(plane_stats):
    """A PlaneInfo (with .name and .stats) or a plain stats dict."""
    if hasattr(plane_stats, "stats"):
        return plane_stats.stats, getattr(plane_stats, "name", "")
    return dict(plane_stats), ""


def _device_name(plane_name: str) -> str:
    return plane_name[len("/device:"):] if plane_name.startswith("/device:") else plane_name


def gpu_ceilings(plane_stats, device: Optional[str] = None) -> dict:
    """Peak FLOP/s per dtype (CUDA cores and tensor cores apart) and memory bandwidth of one GPU.

    `plane_stats`: a `trace.PlaneInfo` of a `/device:GPU:N` plane, or its stats
    dict (then pass `device`, e.g. "GPU:4"). Rates are GFLOP/s (1e9), bandwidth
    GB/s (1e9 bytes/s). A compute capability outside the tables gives empty
    rate dicts and says so in `theoretical.assumptions`.
    """
    stats, plane_name = _stats_of(plane_stats)
    device = device or _device_name(plane_name)
    units = int(stats.get("core_count") or 0)
    clock_khz = float(stats.get("clock_rate") or 0)
    clock_hz = clock_khz * 1e3
    cc = (int(stats.get("compute_cap_major") or 0), int(stats.get("compute_cap_minor") or 0))
    vendor = str(stats.get("device_vendor") or "").strip()
    is_amd = vendor.lower().startswith("amd") or "advanced micro" in vendor.lower()
    bandwidth = stats.get("memory_bandwidth")
    assumptions = []
    if is_amd:
        vector, matrix, refs = _AMD_VECTOR, _AMD_MATRIX, _AMD_REFERENCE
        unit_name = "compute units"
        assumptions.append("AMD: core_count is compute units; the CDNA per-CU rates are best effort, derived "
                           "from AMD's published peaks; float32 vector is packed FP32; compute capability 9.0 "
                           "is taken as gfx90a (MI200); FP16/BF16 vector rates are not published and left out")
    else:
        vector, matrix, refs = _NVIDIA_CUDA_CORES, _NVIDIA_TENSOR_CORES, _NVIDIA_REFERENCE
        unit_name = "SMs"
        if not vendor:
            assumptions.append("no device_vendor stat: assumed NVIDIA")
    per_cycle = vector.get(cc, {})
    per_cycle_tensor = matrix.get(cc, {})
    if per_cycle:
        per_cycle, per_cycle_tensor = complete_tables(per_cycle, per_cycle_tensor)
        assumptions.append("every float dtype has a vector and a matrix row: a dtype a unit lacks runs at the "
                           "vector float32 rate (vector) or on the vector units (matrix)")
    if not per_cycle:
        assumptions.append(f"compute capability {cc[0]}.{cc[1]} is not in the {'AMD' if is_amd else 'NVIDIA'} "
                           "table: no FLOP/s ceilings")
    else:
        assumptions.append(f"per-{'CU' if is_amd else 'SM'} rates reproduce {refs[cc]}")
    assumptions.append("dense math (no structured sparsity); one FMA = 2 FLOPs; the reported clock is used as "
                       "the sustained clock, so ceilings are upper bounds")
    if not units or not clock_hz:
        assumptions.append("core_count or clock_rate missing: no FLOP/s ceilings")
        per_cycle, per_cycle_tensor = {}, {}

    def rates(table):
        return {dtype: units * flops * clock_khz / 1e6 for dtype, flops in table.items()}

    return {
        "device": device,
        "vendor": "AMD" if is_amd else (vendor or "NVIDIA"),
        "peak_gflops_per_s": rates(per_cycle),
        "tensor_core_gflops_per_s": rates(per_cycle_tensor),
        "bandwidth_gbytes_per_s": None if not bandwidth else float(bandwidth) / 1e9,
        "source": "theoretical",
        "theoretical": {
            "compute_capability": f"{cc[0]}.{cc[1]}",
            "units": units,
            "unit_name": unit_name,
            "clock_ghz": clock_hz / 1e9,
            "flops_per_cycle_per_unit": dict(per_cycle),
            "tensor_flops_per_cycle_per_unit": dict(per_cycle_tensor),
            "assumptions": assumptions,
        },
    }


def trace_gpu_ceilings(trace) -> dict:
    """`gpu_ceilings` of every GPU plane of a trace, keyed by device (`GPU:0`, ...)."""
    out = {}
    for plane in trace.planes:
        if plane.name.startswith("/device:GPU:") and plane.stats:
            out[_device_name(plane.name)] = gpu_ceilings(plane)
    return out


def tpu_ceilings(plane_stats, device: Optional[str] = None) -> dict:
    """Peak FLOP/s and HBM bandwidth of one TPU core, as its plane states them (`peak_teraflops_per_second`,
    `peak_hbm_bw_gigabytes_per_second`); empty rates where the plane does not say them.

    The plane states one compute peak, the matrix unit's (MXU, bfloat16 inputs); XProf's roofline
    measures every op against it, and so does this ceiling for every dtype (a vector op's share of
    it is then a lower bound, never a claim above what the chip can do)."""
    stats, plane_name = _stats_of(plane_stats)
    device = device or _device_name(plane_name)
    peak = stats.get("peak_teraflops_per_second")
    hbm = stats.get("peak_hbm_bw_gigabytes_per_second")
    peak_g = float(peak) * 1e3 if isinstance(peak, (int, float)) and peak > 0 else None
    rates = {dtype: peak_g for dtype in ("bfloat16", "float32", "float16")} if peak_g else {}
    return {
        "device": device,
        "vendor": "Google",
        "peak_gflops_per_s": rates,
        "tensor_core_gflops_per_s": dict(rates),  # the MXU's; float32 dots run as bfloat16 passes on it
        "bandwidth_gbytes_per_s": float(hbm) if isinstance(hbm, (int, float)) and hbm > 0 else None,
        "source": "theoretical",
        "theoretical": {
            "device_type": str(stats.get("device_type_string") or ""),
            "unit_name": "TPU cores",
            "assumptions": ["TPU: peak_teraflops_per_second (the MXU's peak) and peak_hbm_bw_gigabytes_per_second "
                            "from the trace's plane stats; the one compute peak is used for every dtype, as "
                            "XProf's roofline does"],
        },
    }


def trace_tpu_ceilings(trace) -> dict:
    """`tpu_ceilings` of every TPU plane of a trace, keyed by device (`TPU:0`, ...)."""
    return {_device_name(plane.name): tpu_ceilings(plane) for plane in trace.planes
            if plane.name.startswith("/device:TPU:") and plane.stats}

