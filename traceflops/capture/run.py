"""Capture: run a model for inference under the profiler and write a logdir XProf can open."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import CaptureError, UsageError
from . import profiler
from .graph_record import graph_record
from .options import validate_capture_options
from .model import SavedModelRunner, _embedding_limit, build_step_function, input_specs, synthetic_inputs
from .profiler import _run_steps, _trace_level2, _trace_level3
from .tf import _import_tf

GRAPH_FILE = "traceflops_graph.json"
CAPTURE_FILE = "traceflops_capture.json"


@dataclass
class CaptureResult:
    logdir: str
    run_dir: str
    trace_files: list
    steps_requested: int
    step_wall_times_us: list
    device: str
    batch_size: int
    model_name: str
    inter_op_threads: Optional[int]
    host_tracer_level: int
    graph_nodes: int
    extra: dict = field(default_factory=dict)


def set_threading(inter_op_threads: Optional[int]) -> Optional[int]:
    """Serialize op execution (one inter-op thread) so that per-op times add up.

    With several inter-op threads, independent ops run at once and each one's
    time includes contention with the others; with one, every op has the whole
    machine's intra-op threads to itself and the ops of a step tile its wall
    time. Must happen before TensorFlow's runtime starts.
    """
    tf = _import_tf()
    if inter_op_threads is None:
        return tf.config.threading.get_inter_op_parallelism_threads() or None
    try:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    except RuntimeError:
        pass  # runtime already started (a notebook): keep what it has
    return tf.config.threading.get_inter_op_parallelism_threads() or None


def resolve_device(device: str) -> str:
    """`CPU:0`, `GPU:1`, `/device:GPU:1` to TensorFlow's full name; error if TF does not see it."""
    tf = _import_tf()
    text = device.strip()
    short = text.split("device:")[-1].lstrip("/").upper()
    if ":" not in short:
        short += ":0"
    kind, _, index = short.partition(":")
    if kind not in ("CPU", "GPU") or not index.isdigit():
        raise UsageError(f"--device {device!r}: expected CPU:0 or GPU:N")
    seen = [d.name for d in tf.config.list_logical_devices()]
    wanted = f"/device:{kind}:{int(index)}"
    if wanted not in seen:
        listed = ", ".join(s.replace("/device:", "") for s in seen) or "none"
        raise UsageError(f"--device {device}: TensorFlow sees no such device (it sees: {listed})")
    return wanted


def capture(model, logdir, batch_size: int = 1, steps: int = 10, warmup: int = 3,
            device: str = "CPU:0", host_tracer_level: int = 3, inter_op_threads: Optional[int] = 1,
            seed: int = 0, jit_compile: bool = False) -> CaptureResult:
    """Run `model` for inference under the profiler and write a logdir XProf can open."""
    validate_capture_options(batch_size, steps, warmup, host_tracer_level, device)
    threads = set_threading(inter_op_threads)
    tf = _import_tf()
    from tensorflow.python.eager import context
    device_name = resolve_device(device)
    specs = input_specs(model, batch_size)
    limit = model.embedding_limit if isinstance(model, SavedModelRunner) else _embedding_limit(model)
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    with tf.device(device_name):
        inputs = synthetic_inputs(specs, limit, seed)
        step_fn = build_step_function(model, specs, jit_compile)
        try:
            concrete = step_fn.get_concrete_function(*[tf.TensorSpec(d, tf.as_dtype(t)) for _, d, t in specs])
            # Partition graphs are only reported for the call that instantiates the function.
            context.enable_run_metadata()
            try:
                _run_steps(step_fn, inputs, 1, first_step=-1)
                run_metadata = context.export_run_metadata()
            finally:
                context.disable_run_metadata()
            warm_times = _run_steps(step_fn, inputs, max(warmup, 1), first_step=-1 - max(warmup, 1))
            step_time_us = statistics.median(warm_times)
            before = {p for p in logdir.rglob("*.xplane.pb")}
            if host_tracer_level == 3:
                device_level = 1 if "GPU" in device_name else 0
                times = _trace_level3(logdir, step_fn, inputs, steps, step_time_us, device_level)
            else:
                times = _trace_level2(logdir, step_fn, inputs, steps)
            # As many unprofiled calls again, now warm for sure: with the later warm-up calls they are the
            # baseline of the profiler's overhead (summary: profiler_overhead).
            unprofiled = warm_times[1:] + _run_steps(step_fn, inputs, max(warmup, 1), first_step=-1000)
        except (UsageError, CaptureError):
            raise
        except Exception as exc:
            message = " ".join(str(exc).split())[:300]
            raise CaptureError(f"running the model failed: {type(exc).__name__}: {message}") from None
    new_files = sorted(p for p in logdir.rglob("*.xplane.pb") if p not in before)
    if not new_files:
        raise CaptureError(f"{logdir}: the profiler wrote no trace")
    run_dir = new_files[0].parent
    record = graph_record(run_metadata, concrete)
    _write_json(run_dir / GRAPH_FILE, record)
    name = getattr(model, "name", "model")
    server_note = profiler._SERVICE.note if (profiler._SERVICE is not None and host_tracer_level == 3) else ""
    capture_info = {"model": name, "device": device_name, "batch_size": batch_size, "steps": steps,
                    "profiler_server": server_note,
                    "warmup": warmup, "host_tracer_level": host_tracer_level, "jit_compile": jit_compile,
                    "inter_op_threads": threads, "step_wall_times_us": times,
                    # Calls timed the same way without the profiler (warm-up after the first, and after the trace).
                    "unprofiled_step_wall_times_us": unprofiled,
                    "tensorflow": tf.__version__}
    _write_json(run_dir / CAPTURE_FILE, capture_info)
    return CaptureResult(str(logdir), str(run_dir), [str(f) for f in new_files], steps, times,
                         device_name, batch_size, name, threads, host_tracer_level, len(record["nodes"]))


def _write_json(path: Path, data) -> None:
    from ..files import atomic_write_text
    atomic_write_text(path, json.dumps(data))
