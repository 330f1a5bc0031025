"""Compute and memory ceilings of a device, for the roofline.

Three entry points:

* `measure_peaks(device)` runs TensorFlow on the device: a GEMM sweep per
  dtype (the compute ceiling) and a streaming add over a buffer far larger
  than the last-level cache (the memory-bandwidth ceiling);
* `theoretical_cpu()` derives the CPU's paper peak from /proc/cpuinfo: cores x
  SIMD lanes x FMA pipes x 2 x clock, with every guess listed;
* `get_ceilings(device)` returns the measured ceilings, cached per machine,
  device and TensorFlow version so that a profile run does not pay the ~15 s
  measurement each time.

Measured ceilings are what TensorFlow's own kernels reach on this machine,
which is the fair yardstick for the ops it runs: an op at 100% of the
measured GEMM rate cannot get faster by a better kernel choice inside TF.

TensorFlow is imported only inside `measure_peaks`, so a cache hit stays cheap.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import socket
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

from ..files import atomic_write_text
from .peaks_sweep import (DEFAULT_DTYPES, DEFAULT_GEMM_SIZES, DEFAULT_REPEATS, DEFAULT_TIME_BUDGET_S,  # noqa: F401
                          MAX_BUFFER_BYTES, MIN_BUFFER_BYTES, default_buffer_bytes, last_level_cache_bytes,
                          read_text, run_measurement, timed_calls)

CACHE_FORMAT = 1
# SIMD register width in bits by CPU flag (widest first): float32 lanes = bits / 32.
SIMD_BITS_BY_FLAG = (("avx512f", 512), ("avx2", 256), ("fma", 256))
DEFAULT_SIMD_BITS = 128
# Assumed for AVX2/AVX-512 server cores (Intel Xeon since Skylake-SP Gold/Platinum, AMD Zen 4/5).
ASSUMED_FMA_PIPES = 2
# AMX TMUL: one TDPBF16PS (16x32 by 32x16 bf16 tile -> 16x16 float32, 8192 MACs) per 16 cycles.
AMX_BF16_FLOPS_PER_CYCLE = 1024


# ---------------------------------------------------------------- machine facts

def _cpuinfo_fields(cpuinfo_text: str) -> dict:
    """The first processor block of /proc/cpuinfo as {key: value}."""
    fields = {}
    for line in cpuinfo_text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    fields = _cpuinfo_fields(read_text("/proc/cpuinfo") or "")
    return fields.get("model name") or platform.processor() or platform.machine() or "unknown"


def _physical_cores(cpuinfo_fields: dict) -> tuple:
    """(cores this process may use, note): logical CPUs in its affinity / threads per core."""
    try:
        logical = len(os.sched_getaffinity(0))
    except AttributeError:
        logical = os.cpu_count() or 1
    siblings = int(cpuinfo_fields.get("siblings", 0) or 0)
    cores_per_package = int(cpuinfo_fields.get("cpu cores", 0) or 0)
    threads_per_core = siblings // cores_per_package if siblings and cores_per_package else 1
    threads_per_core = max(threads_per_core, 1)
    cores = max(logical // threads_per_core, 1)
    note = (f"{cores} cores = {logical} logical CPUs in this process's affinity / "
            f"{threads_per_core} thread(s) per core (siblings / cpu cores in /proc/cpuinfo)")
    return cores, note


def _max_clock_ghz(cpuinfo_fields: dict) -> tuple:
    """(GHz, where it came from): cpufreq's max when present, else /proc/cpuinfo 'cpu MHz'."""
    max_khz = (read_text("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") or "").strip()
    if max_khz.isdigit():
        return round(int(max_khz) / 1e6, 3), "cpufreq cpuinfo_max_freq (maximum boost clock)"
    mhz = cpuinfo_fields.get("cpu MHz")
    if mhz:
        return round(float(mhz) / 1e3, 3), (
            "/proc/cpuinfo 'cpu MHz' (no cpufreq in sysfs: under a hypervisor this is usually the "
            "nominal/TSC clock, and turbo can beat it, so measured rates may exceed this 'theoretical' figure)")
    return None, "no clock found in cpufreq or /proc/cpuinfo"


def theoretical_from(flags: set, cores: int, clock_ghz: float) -> tuple:
    """({dtype: GFLOP/s}, assumptions) from CPU flags, core count and clock. Pure, for tests."""
    simd_bits = next((bits for flag, bits in SIMD_BITS_BY_FLAG if flag in flags), DEFAULT_SIMD_BITS)
    wide = simd_bits >= 256
    pipes = ASSUMED_FMA_PIPES if wide else 1
    assumptions = [
        f"{simd_bits}-bit SIMD ({'avx512f' if simd_bits == 512 else 'avx2/fma' if wide else 'SSE'}): "
        f"{simd_bits // 32} float32 lanes",
        f"{pipes} FMA pipe(s) per core" + (" (assumed for AVX2/AVX-512 server cores; some parts, e.g. "
                                           "Xeon Silver/Bronze, have 1 AVX-512 FMA unit)" if wide else ""),
        "an FMA counts as 2 FLOPs; all cores busy at once, at the stated clock",
    ]
    float32_per_cycle = (simd_bits // 32) * pipes * 2
    peaks = {"float32": cores * float32_per_cycle * clock_ghz}
    if "amx_bf16" in flags:
        peaks["bfloat16"] = cores * AMX_BF16_FLOPS_PER_CYCLE * clock_ghz
        assumptions.append(f"bfloat16 on AMX: {AMX_BF16_FLOPS_PER_CYCLE} FLOP/cycle/core (one 16x32x16 "
                           "TDPBF16PS per 16 cycles); oneDNN uses AMX for large bf16 GEMMs")
    elif "avx512_bf16" in flags:
        peaks["bfloat16"] = 2 * peaks["float32"]
        assumptions.append("bfloat16 via AVX512_BF16 VDPBF16PS: 2 products per float32 lane, so 2x float32")
    if "amx_fp16" in flags:
        peaks["float16"] = cores * AMX_BF16_FLOPS_PER_CYCLE * clock_ghz
        assumptions.append("float16 on AMX-FP16 at the AMX bf16 rate")
    elif "avx512_fp16" in flags:
        peaks["float16"] = 2 * peaks["float32"]
        assumptions.append("float16 via AVX512_FP16: 32 half lanes per register, so 2x float32")
    return peaks, assumptions


def theoretical_cpu() -> dict:
    """Paper peak of this CPU: cores x SIMD lanes x FMA pipes x 2 x clock, with its assumptions.

    Returns {"peak_gflops_per_s": {dtype: GFLOP/s}, "bandwidth_gbytes_per_s": None,
    "bandwidth_note": why, "cores", "clock_ghz", "assumptions": [...]}.
    """
    fields = _cpuinfo_fields(read_text("/proc/cpuinfo") or "")
    flags = set(fields.get("flags", "").split())
    cores, core_note = _physical_cores(fields)
    clock_ghz, clock_note = _max_clock_ghz(fields)
    result = {"peak_gflops_per_s": {}, "bandwidth_gbytes_per_s": None,
              "bandwidth_note": ("unknown on CPU: channel count and DIMM speed are not visible to a "
                                 "process (and a VM shares them); use the measured figure"),
              "cores": cores, "clock_ghz": clock_ghz, "cpu_model": fields.get("model name", ""),
              "assumptions": [core_note, f"clock {clock_ghz} GHz from {clock_note}"]}
    if clock_ghz is None:
        result["assumptions"].append("no clock: no theoretical compute peak")
        return result
    peaks, assumptions = theoretical_from(flags, cores, clock_ghz)
    result["peak_gflops_per_s"] = {dtype: round(value, 1) for dtype, value in peaks.items()}
    result["assumptions"] += assumptions
    return result


def _no_theoretical(device: str) -> dict:
    return {"peak_gflops_per_s": {}, "bandwidth_gbytes_per_s": None,
            "assumptions": [f"no theoretical figures computed for {device} (only CPUs are modelled)"]}


# ---------------------------------------------------------------- measurement

def _waits_for_kernels(device: str) -> bool:
    """Whether a call must fetch a value to wait for its kernels: CPU ops finish before eager returns."""
    return "CPU" not in device.upper()


def _gemm_call(tf, device: str, size: int, dtype_name: str):
    with tf.device(device):
        dtype = tf.as_dtype(dtype_name)
        lhs = tf.cast(tf.random.normal([size, size], dtype=tf.float32), dtype)
        rhs = tf.cast(tf.random.normal([size, size], dtype=tf.float32), dtype)
    matmul = tf.function(lambda a, b: tf.matmul(a, b))
    wait = _waits_for_kernels(device)

    def call():
        with tf.device(device):
            product = matmul(lhs, rhs)
            if wait:  # one element is enough to wait for the kernel on a GPU
                product[0, 0].numpy()
    return call


def _stream_calls(tf, device: str, buffer_bytes: int):
    """(in-place call, bytes it moves, allocating call, bytes it moves) over float32 buffers."""
    elements = buffer_bytes // 4
    with tf.device(device):
        source = tf.ones([elements], tf.float32)
        target = tf.Variable(tf.zeros([elements], tf.float32))
    add_in_place = tf.function(lambda x: (target.assign_add(x, read_value=False), None)[1])
    double = tf.function(lambda x: x * 2.0)
    wait = _waits_for_kernels(device)

    def in_place():
        with tf.device(device):
            add_in_place(source)
            if wait:
                target[0].numpy()

    def allocating():
        with tf.device(device):
            doubled = double(source)
            if wait:
                doubled[0].numpy()
    # In place reads both buffers and writes one; x*2 reads one and writes a fresh one.
    return in_place, 3 * elements * 4, allocating, 2 * elements * 4


def _measure_bandwidth(tf, device: str, buffer_bytes: int, repeats: int) -> dict:
    in_place, in_place_bytes, allocating, allocating_bytes = _stream_calls(tf, device, buffer_bytes)
    in_place_s = timed_calls(in_place, repeats)[0]
    allocating_s = timed_calls(allocating, repeats)[0]
    rates = {"in_place_add": in_place_bytes / in_place_s / 1e9,
             "allocating_mul": allocating_bytes / allocating_s / 1e9}
    best = max(rates, key=rates.get)
    return {
        "gbytes_per_s": round(rates[best], 2), "best_op": best,
        "by_op": {name: round(rate, 2) for name, rate in rates.items()},
        "ops": {"in_place_add": "Variable.assign_add(x): reads 2 buffers, writes 1, allocates nothing",
                "allocating_mul": "x * 2.0: reads 1 buffer, writes a freshly allocated one (page faults "
                                  "included, as a large op output sees them)"},
        "bytes_counted": "read + write (write-allocate traffic not counted)",
    }


def measure_peaks(device: str = "CPU:0", sizes: Sequence[int] = DEFAULT_GEMM_SIZES,
                  dtypes: Sequence[str] = DEFAULT_DTYPES, repeats: int = DEFAULT_REPEATS,
                  buffer_bytes: Optional[int] = None,
                  time_budget_s: float = DEFAULT_TIME_BUDGET_S) -> dict:
    """Measure the device's compute ceiling per dtype and its streaming bandwidth through TensorFlow.

    GEMM: square `tf.matmul` in a tf.function for each size (median of `repeats`
    calls after a warm-up), best size kept; larger sizes are skipped when the
    cubic extrapolation of the last one would overrun the dtype's share of
    `time_budget_s`. float32 always runs first; a dtype that errors or runs
    below 5% of float32 is skipped and the reason kept in `measured`.
    Bandwidth: in-place add and allocating x*2 over `buffer_bytes` per buffer
    (default `default_buffer_bytes()`), the faster one kept.

    Returns {"device", "peak_gflops_per_s", "bandwidth_gbytes_per_s", "source": "measured", "measured"}.
    Raises MissingExtraError when TensorFlow is not installed.
    """
    from ..capture.tf import import_tf
    tf = import_tf()

    result = run_measurement(lambda size, name: _gemm_call(tf, device, size, name),
                             lambda size, count: _measure_bandwidth(tf, device, size, count),
                             sizes, dtypes, repeats, buffer_bytes, time_budget_s)
    result["measured"].update(
        intra_op_threads=tf.config.threading.get_intra_op_parallelism_threads() or "default",
        inter_op_threads=tf.config.threading.get_inter_op_parallelism_threads() or "default",
        tensorflow_version=tf.__version__)
    return {"device": device, **result}


# ---------------------------------------------------------------- cache

def cache_directory(cache_dir: Optional[str] = None) -> Path:
    """`cache_dir`, else $TRACEFLOPS_CACHE_DIR, else $XDG_CACHE_HOME/traceflops, else ~/.cache/traceflops."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("TRACEFLOPS_CACHE_DIR"):
        return Path(os.environ["TRACEFLOPS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "traceflops"


def tensorflow_version() -> str:
    """The installed TensorFlow's version, without importing it when it is not loaded yet."""
    import sys
    if "tensorflow" in sys.modules and hasattr(sys.modules["tensorflow"], "__version__"):
        return sys.modules["tensorflow"].__version__
    from importlib import metadata
    for distribution in ("tensorflow", "tensorflow-cpu", "tf-nightly", "tensorflow-macos"):
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"


def cache_key(device: str, backend: str = "tensorflow") -> dict:
    key = {"host": socket.gethostname(), "cpu_model": cpu_model(), "device": device,
           "tensorflow": tensorflow_version()}
    if backend == "jax":  # measured through JAX (peaks_jax.py): its own cache entry
        from importlib import metadata
        key.update(tensorflow=None, backend="jax", jax=metadata.version("jax"))
    return key


def measuring_backend(backend: Optional[str] = None) -> str:
    """`jax` when asked for, or when TensorFlow is not installed but JAX is; else `tensorflow` (which
    names the missing extra when neither is installed)."""
    if backend in ("jax", "tensorflow"):
        return backend
    from ..capture.tf import installed
    return "jax" if not installed("tensorflow") and installed("jax") else "tensorflow"


def _cache_file(directory: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{key['host']}-{key['device']}")
    return directory / f"ceilings-{safe}-{digest}.json"


def _load_cached(path: Path, key: dict, measure_options: dict) -> Optional[dict]:
    """The cache record (its "ceilings" the measurement) when the file is readable and made for this
    key and these options."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("format") != CACHE_FORMAT or record.get("key") != key:
        return None
    if measure_options and record.get("measure_options") != measure_options:
        return None
    measured = record.get("ceilings")
    return record if isinstance(measured, dict) and "peak_gflops_per_s" in measured else None


def write_json_atomic(path: Path, payload) -> None:
    """Write JSON next to `path` under a temporary name, then rename it over `path`."""
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True))


def get_ceilings(device: str = "CPU:0", refresh: bool = False, cache_dir: Optional[str] = None,
                 measure_options: Optional[dict] = None, backend: Optional[str] = None,
                 before_measuring: Optional[Callable[[], None]] = None) -> dict:
    """Measured ceilings of `device`, from the cache unless `refresh` or the cache does not fit.

    The cache file is per host name + CPU model + device + TensorFlow version;
    `measure_options` (keyword arguments of `measure_peaks`) are stored with it
    and, when given, must match for a cached result to be reused. `before_measuring` is called before a
    measurement (`profile`: wait for its capture process to be gone, so the machine is quiet). `backend` `jax` (the default
    when TensorFlow is not installed) measures through JAX (`peaks_jax.py`), cached apart.

    Returns {"device", "peak_gflops_per_s": {dtype: GFLOP/s}, "bandwidth_gbytes_per_s",
    "source": "measured", "measured": {...}, "theoretical": {"peak_gflops_per_s",
    "bandwidth_gbytes_per_s", "assumptions"}, "cached": bool, "cache_file": str, "written_at" (epoch
    seconds), "measured_at", "age" (text), "confidence" (trust.confidence), "remeasured_because"}.

    A cached measurement that is implausible (`trust.implausible`: low confidence, far under the
    theoretical peak, or no stated conditions) is measured again, and `remeasured_because` says why.
    """
    measure_options = dict(measure_options or {})
    backend = measuring_backend(backend)
    key = cache_key(device, backend)
    path = _cache_file(cache_directory(cache_dir), key)
    from .trust import describe_age, implausible
    is_cpu = "CPU" in device.upper()
    theoretical = theoretical_cpu() if is_cpu else _no_theoretical(device)
    record = None if refresh else _load_cached(path, key, measure_options)
    measured = record["ceilings"] if record else None
    remeasured_because = None
    if measured is not None and is_cpu:
        remeasured_because = implausible(measured, theoretical["peak_gflops_per_s"].get("float32"))
        if remeasured_because:
            measured = None
    cached = measured is not None
    written_at = record.get("written_at_epoch") if cached else None
    if not cached:
        if before_measuring is not None:
            before_measuring()
        if backend == "jax":
            from .peaks_jax import measure_peaks_jax
            measured = measure_peaks_jax(device, **measure_options)
        else:
            measured = measure_peaks(device, **measure_options)
        written_at = time.time()
        write_json_atomic(path, {"format": CACHE_FORMAT, "key": key, "measure_options": measure_options,
                                 "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                                 "written_at_epoch": written_at, "ceilings": measured})
    conditions = measured.get("measured", {}).get("conditions") or {}
    return {
        "device": device,
        "peak_gflops_per_s": dict(measured["peak_gflops_per_s"]),
        "bandwidth_gbytes_per_s": measured["bandwidth_gbytes_per_s"],
        "source": measured.get("source", "measured"),
        "measured": measured.get("measured", {}),
        "theoretical": theoretical,
        "cached": cached,
        "cache_file": str(path),
        "written_at": written_at,
        "measured_at": conditions.get("measured_at"),
        "age": describe_age(written_at),
        "confidence": conditions.get("confidence"),
        "remeasured_because": remeasured_because,
    }
