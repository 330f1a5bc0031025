"""Capture: run a model (inference, or full training steps) under the profiler and write a logdir XProf can open."""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import CaptureError, ModelError, UsageError
from . import train as train_stage
from .graph_record import graph_record
from .layers import recording_layer_scopes
from .model import SavedModelRunner, build_step_function, embedding_limit, input_specs, pack_inputs, synthetic_inputs
from .names import CAPTURE_FILE, GRAPH_FILE
from .profiler import ServerPolicy, run_steps, trace_level2, trace_level3
from .request import CaptureRequest, CaptureResult
from .tf import import_tf


def set_threading(inter_op_threads: Optional[int]) -> Optional[int]:
    """Serialize op execution (one inter-op thread) so that per-op times add up.

    With several inter-op threads, independent ops run at once and each one's
    time includes contention with the others; with one, every op has the whole
    machine's intra-op threads to itself and the ops of a step tile its wall
    time. Must happen before TensorFlow's runtime starts.
    """
    tf = import_tf()
    if inter_op_threads is None:
        return tf.config.threading.get_inter_op_parallelism_threads() or None
    try:
        tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    except RuntimeError:
        pass  # runtime already started (a notebook): keep what it has
    return tf.config.threading.get_inter_op_parallelism_threads() or None


def resolve_device(device: str) -> str:
    """`CPU:0`, `GPU:1`, `/device:GPU:1` to TensorFlow's full name; error if TF does not see it."""
    tf = import_tf()
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


@dataclass
class _Run:
    """What running the step under the profiler gave."""
    record: dict  # the executed graph as JSON-able data (graph_record.py), with the layer scopes
    warm_times_us: list  # unprofiled steps after compilation
    times_us: list  # the profiled steps
    unprofiled_us: list  # warm steps timed the same way without the profiler (profiler_overhead)
    training: object  # train.TrainingSetup or None
    before: set  # trace files that existed before the capture
    window: dict  # level 3: the session's requested length, and whether it was ended once the steps were done


def capture(model, logdir, batch_size: int = 1, steps: int = 10, warmup: int = 3,
            device: str = "CPU:0", host_tracer_level: int = 3, inter_op_threads: Optional[int] = 1,
            seed: int = 0, jit_compile: bool = False, train: bool = False, input_shape=None) -> CaptureResult:
    """Run `model` under the profiler and write a logdir XProf can open.

    With `train`, each step is a full training step (capture/train.py); the
    model's weights and optimizer state are restored afterwards. `input_shape` gives
    the dimensions after the batch of inputs the model leaves unknown (a tuple, a
    list of tuples, or a dict by input name), or of every input of a subclassed model.
    """
    request = CaptureRequest(batch_size=batch_size, steps=steps, warmup=warmup, device=device,
                             host_tracer_level=host_tracer_level, inter_op_threads=inter_op_threads, seed=seed,
                             jit_compile=jit_compile, train=train, input_shape=input_shape)
    return run_capture(model, logdir, request)


def run_capture(model, logdir, request: CaptureRequest, server: ServerPolicy = ServerPolicy()) -> CaptureResult:
    """`capture` of a `CaptureRequest`; `server` says where a level-3 profiler server may listen (the
    default: only inside its thread's own network namespace)."""
    request.validate()
    _check_arguments(model, request.train)
    threads = set_threading(request.inter_op_threads)
    tf = import_tf()
    device_name = resolve_device(request.device)
    specs = input_specs(model, request.batch_size, request.input_shape)
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    with tf.device(device_name):
        run = _run_under_profiler(model, specs, logdir, device_name, request, server)
    new_files = sorted(p for p in logdir.rglob("*.xplane.pb") if p not in run.before)
    if not new_files:
        raise CaptureError(f"{logdir}: the profiler wrote no trace")
    run_dir = new_files[0].parent
    record = run.record
    _write_json(run_dir / GRAPH_FILE, record)
    info = _capture_info(model, device_name, request, threads, run, tf.__version__)
    _write_json(run_dir / CAPTURE_FILE, info)
    return CaptureResult(str(logdir), str(run_dir), [str(f) for f in new_files], request.steps, run.times_us,
                         device_name, request.batch_size, info["model"], threads, request.host_tracer_level,
                         len(record["nodes"]), extra={"training": info["training"]} if "training" in info else {})


def _run_under_profiler(model, specs, logdir: Path, device_name: str, request: CaptureRequest,
                        server: ServerPolicy) -> _Run:
    """Build the step, record its executed graph at the first call, warm up, then profile."""
    tf = import_tf()
    from tensorflow.python.eager import context
    limit = model.embedding_limit if isinstance(model, SavedModelRunner) else embedding_limit(model)
    inputs = synthetic_inputs(specs, limit, request.seed)
    saved, training, by_name = None, None, request.shapes_by_name
    try:
        if request.train:
            saved = train_stage.snapshot(model)
            step_fn, inputs, training = _training_step(model, specs, request.batch_size, inputs,
                                                       request.seed, request.jit_compile, by_name)
        else:
            _build(model, specs, inputs, by_name)
            step_fn = build_step_function(model, specs, request.jit_compile, by_name)
        with recording_layer_scopes(model) as layer_scopes:
            concrete = step_fn.get_concrete_function(*[tf.TensorSpec(t.shape, t.dtype) for t in inputs])
        # Partition graphs are only reported for the call that instantiates the function.
        context.enable_run_metadata()
        try:
            run_steps(step_fn, inputs, 1, first_step=-1)
            run_metadata = context.export_run_metadata()
        finally:
            context.disable_run_metadata()
        warmup = max(request.warmup, 1)
        warm_times = run_steps(step_fn, inputs, warmup, first_step=-1 - warmup)
        # As many unprofiled calls again, warm for sure, just before the capture: with the later warm-up
        # calls they are the baseline of the profiler's overhead (summary: profiler_overhead).
        unprofiled = warm_times[1:] + run_steps(step_fn, inputs, warmup, first_step=-1000)
        before = set(logdir.rglob("*.xplane.pb"))

        def record_graph() -> dict:
            try:
                return graph_record(run_metadata, concrete)
            except Exception as exc:  # said as what failed, not as a failure of the model's run
                raise CaptureError(f"recording the executed graph failed: {type(exc).__name__}: "
                                   f"{cause_of(exc)}") from None
        if request.host_tracer_level == 3:
            # The executed graph is written down while the profiler server collects the trace.
            traced = trace_level3(logdir, step_fn, inputs, request.steps, statistics.median(unprofiled),
                                  1 if "GPU" in device_name else 0, server, while_collecting=record_graph)
            times, record = traced.times_us, traced.collected_meanwhile
            window = {"profiler_server": traced.server_note, "profiler_window_ms": traced.window_ms,
                      "profiler_session_ended_early": traced.ended_early}
        else:
            times, record, window = trace_level2(logdir, step_fn, inputs, request.steps), record_graph(), {}
    except (UsageError, CaptureError, ModelError):
        raise
    except Exception as exc:
        what = "training" if request.train else "running"
        raise CaptureError(f"{what} the model failed: {type(exc).__name__}: {cause_of(exc)}") from None
    finally:
        train_stage.restore(saved)
    record["layer_scopes"] = layer_scopes
    return _Run(record, warm_times, times, unprofiled, training, before, window)


def _capture_info(model, device_name: str, request: CaptureRequest, threads, run: _Run, version: str) -> dict:
    """traceflops_capture.json: what ran, how, and what the analysis must warn about."""
    info = {"model": getattr(model, "name", "model"), "device": device_name, "batch_size": request.batch_size,
            "steps": request.steps, "profiler_server": "", "warmup": request.warmup,
            "host_tracer_level": request.host_tracer_level, "jit_compile": request.jit_compile,
            "inter_op_threads": threads, "step_wall_times_us": run.times_us,
            "unprofiled_step_wall_times_us": run.unprofiled_us, "tensorflow": version, **run.window}
    if run.training is not None:
        info["training"] = run.training.describe()
    threads_asked = request.inter_op_threads
    if threads_asked and threads != threads_asked:
        info["capture_warnings"] = [
            f"{threads or 'default'} inter-op threads, not the {threads_asked} asked for: TensorFlow had already "
            "started in this process, so ops may have run at once and their times overlap (a fresh process, "
            "or traceflops.profile with a model file, sets it)"]
    return info


def _check_arguments(model, train: bool):
    if train and isinstance(model, SavedModelRunner):
        raise ModelError(f"{model.name}: --train needs a Keras model (.keras or .h5); a SavedModel's "
                         "serving signature has no loss, optimizer or trainable Keras layers")


def cause_of(exc: Exception) -> str:
    """The line of an exception's message that names the cause: TensorFlow and Keras put the trace of
    the failing call first and the cause last (`... Exception encountered when calling ...`)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        if not line.startswith(("File ", "Traceback", "^", "Arguments received", "•", "Call arguments")):
            return line[:300]
    return (lines[-1] if lines else type(exc).__name__)[:300]


def _build(model, specs, inputs: list, by_name: bool) -> None:
    """Call the model once, eagerly, so that its weights exist before the step is traced (a subclassed
    model builds on its first call)."""
    if isinstance(model, SavedModelRunner) or getattr(model, "built", False) and _has_inputs(model):
        return
    model(pack_inputs(model, specs, list(inputs), by_name), training=False)


def _has_inputs(model) -> bool:
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):
        return False


def _training_step(model, specs, batch_size: int, inputs: list, seed: int, jit_compile: bool, by_name: bool):
    """The training step function, its inputs (features then targets) and the training setup."""
    _build(model, specs, inputs, by_name)
    setup = train_stage.prepare_training(model, batch_size)
    targets = train_stage.synthetic_targets(setup, seed + 1)
    step_fn = train_stage.build_train_step(model, specs, setup, inputs, targets, jit_compile, by_name)
    return step_fn, list(inputs) + list(targets), setup


def _write_json(path: Path, data) -> None:
    from ..files import atomic_write_text
    atomic_write_text(path, json.dumps(data))
