"""Capture on Keras 3's JAX backend: jitted inference or training steps under `jax.profiler`.

Keras picks its backend once, when it is first imported, from `KERAS_BACKEND`.
So the capture always runs in a child process started with `KERAS_BACKEND=jax`
(`python -c "from traceflops.capture import jax_capture; jax_capture.child_main()"`,
run through child_process.py as the sandboxed TensorFlow capture is: the model's
path, the logdir and the `CaptureRequest` go in, the `CaptureResult` comes back):
the caller's process may already hold Keras on TensorFlow, and TensorFlow is
never imported on this path. The JAX profiler
runs in-process (no profiler server, so there is nothing to isolate).

In the child:
* the model is loaded from its `.keras` file (with its compiled loss and
  optimizer when training);
* one step function is jitted: inference is `model.stateless_call(...,
  training=False)`; training is `jax.value_and_grad` of the model's
  `compute_loss_and_updates` (its compiled loss through `stateless_call`) followed
  by the optimizer's `stateless_apply`; a model saved without a loss or optimizer
  trains with SGD and a loss that fits its output (categorical cross-entropy after
  a softmax, binary cross-entropy after a sigmoid, else mean squared error), and
  the summary says which under `training`;
* the trainable variables are passed as a dict keyed by variable path, so the
  HLO parameters are named after them (`tv['conv2d/kernel']`): instructions XLA
  made without a name (a rewritten weight-gradient convolution) are attributed
  to the layer whose variable they update (`costs/hlo/layers.py`);
* `warmup` calls (at least one: compilation is never profiled), then
  `jax.profiler.start_trace(logdir)`, `steps + 1` calls each inside
  `jax.profiler.StepTraceAnnotation("traceflops_step", step_num=i)` and blocked on
  until its results are ready, and `stop_trace()`. The marker is a TraceMe with
  `step_num` and `_r=1` on the host plane, which the trace stage reads as a step,
  as it does TensorFlow's; the analysis drops the first recorded step.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from pathlib import Path

from ..errors import CaptureError, ModelError, TraceflopsError, UsageError
from .child_process import answer_and_exit, error_answer, raise_answer, read_request, run_child
from .names import CAPTURE_FILE, STEP_MARKER
from .request import CaptureRequest, CaptureResult

_BOOTSTRAP = "from traceflops.capture import jax_capture; jax_capture.child_main()"
INSTALL_HINT = "pip install 'traceflops[jax]'"


def check_jax_installed() -> None:
    """UsageError (one line) when jax or keras is not importable here."""
    missing = [name for name in ("jax", "keras") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"--backend jax needs {' and '.join(missing)}, which is not installed ({INSTALL_HINT})")


def short_device(device: str) -> str:
    """`cpu:0`, `/device:GPU:1`, `gpu` -> `CPU:0`, `GPU:1`, `GPU:0`."""
    kind, _, index = str(device).replace("/device:", "").strip().upper().partition(":")
    return f"{kind}:{int(index or 0)}"


# ---------------------------------------------------------------- parent side

def capture_jax_isolated(model, logdir, request: CaptureRequest) -> CaptureResult:
    """Capture `model` (a `.keras` path or an in-memory Keras model) on the JAX backend in a child
    process. The request's options the JAX path has no use for (host tracer level, inter-op threads,
    XLA switch, input shapes) are ignored: everything is XLA here."""
    import tempfile
    check_jax_installed()
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    scratch = tempfile.mkdtemp(prefix=".traceflops-jax-", dir=str(logdir.parent))
    try:
        message = {"model_path": _model_path(model, scratch), "logdir": str(logdir), "capture": request.to_json()}
        env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2"}
        answer, status = run_child(_BOOTSTRAP, message, os.path.join(scratch, "answer.json"), env)
        if answer is None:
            raise CaptureError(f"the JAX capture process ended without an answer (exit status {status})")
        if "error" in answer:
            raise_answer(answer)
        return CaptureResult(**answer["result"])
    finally:
        import shutil
        shutil.rmtree(scratch, ignore_errors=True)


def _model_path(model, scratch: str) -> str:
    """The model's `.keras` file: the path given, or an in-memory model saved for the child."""
    if isinstance(model, (str, os.PathLike)):
        path = Path(model)
        if not path.exists():
            raise ModelError(f"{path}: no such file or directory")
        if path.is_dir() or path.suffix != ".keras":
            raise ModelError(f"{path}: the JAX backend loads Keras 3 `.keras` files only")
        return str(path.resolve())
    path = os.path.join(scratch, "traceflops_model.keras")
    try:
        model.save(path)
    except Exception as exc:  # any failure to serialise: the child could not get the model
        raise ModelError(f"the model could not be saved for the JAX capture process "
                         f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    return path


# ---------------------------------------------------------------- child side

def child_main() -> None:
    message = read_request()
    try:
        answer = {"result": run_request(message["model_path"], message["logdir"],
                                        CaptureRequest.from_json(message["capture"]))}
    except (TraceflopsError, KeyboardInterrupt) as exc:
        answer = error_answer(exc)
    answer_and_exit(message, answer)


def _import_keras_on_jax():
    os.environ["KERAS_BACKEND"] = "jax"
    try:
        import jax
        import keras
    except ImportError as exc:
        raise UsageError(f"--backend jax: {exc} ({INSTALL_HINT})") from None
    if keras.backend.backend() != "jax":
        raise UsageError(f"Keras was already imported with the {keras.backend.backend()} backend in the "
                         "capture process; it must start with KERAS_BACKEND=jax")
    return jax, keras


def load_model_jax(path: str, train: bool, allow_unsafe: bool = False):
    """The `.keras` file on the JAX backend; ModelError (one line) when it cannot be loaded."""
    _, keras = _import_keras_on_jax()
    try:
        return keras.saving.load_model(path, compile=train, safe_mode=not allow_unsafe)
    except Exception as exc:  # Keras raises many types for one cause: the file isn't loadable here
        message = " ".join(str(exc).split())
        if "Lambda" in message and "safe_mode" in message:
            raise ModelError(f"{path}: the model has a Lambda layer, which Keras safe mode refuses to load; "
                             "pass --allow-unsafe if you trust this file") from None
        raise ModelError(f"{path}: the JAX backend could not load the model ({type(exc).__name__}: "
                         f"{message[:200]})") from None


def _jax_device(jax, device: str):
    kind, _, index = device.replace("/device:", "").upper().partition(":")
    try:
        found = jax.devices(kind.lower())
    except RuntimeError:
        found = []
    number = int(index or 0)
    if number >= len(found):
        seen = ", ".join(str(d) for d in jax.devices())
        raise UsageError(f"--device {device}: JAX sees no such device (it sees: {seen})")
    return found[number]


def run_request(model_path: str, logdir: str, request: CaptureRequest) -> dict:
    """In the child: load, build the step, warm up, record; the CaptureResult as a dict."""
    jax, keras = _import_keras_on_jax()
    model = load_model_jax(model_path, request.train, request.allow_unsafe)
    device = _jax_device(jax, request.device)
    from .jax_steps import build_step
    try:
        with jax.default_device(device):
            step, args, training = build_step(jax, keras, model, request.batch_size, request.train, request.seed)
            times, files, run_dir = _record(jax, step, args, Path(logdir), request)
    except TraceflopsError:
        raise
    except Exception as exc:  # the model could not be traced, compiled or run on JAX
        what = "training" if request.train else "running"
        raise CaptureError(f"{what} the model on JAX failed: {type(exc).__name__}: "
                           f"{' '.join(str(exc).split())[:300]}") from None
    info = {"model": model.name, "device": f"/device:{device.platform.upper()}:{device.id}",
            "batch_size": request.batch_size, "steps": request.steps, "warmup": request.warmup,
            "backend": "jax", "jax": jax.__version__, "keras": keras.__version__, "jit_compile": True,
            "host_tracer_level": None, "inter_op_threads": None, "step_wall_times_us": times,
            "variable_layers": {v.path: v.path.split("/")[0] for v in model.trainable_variables},
            "tensorflow_imported": "tensorflow" in sys.modules}
    if training is not None:
        info["training"] = training
    from ..files import atomic_write_text
    atomic_write_text(Path(run_dir) / CAPTURE_FILE, json.dumps(info))
    return {"logdir": logdir, "run_dir": str(run_dir), "trace_files": [str(f) for f in files],
            "steps_requested": request.steps, "step_wall_times_us": times, "device": info["device"],
            "batch_size": request.batch_size, "model_name": model.name, "inter_op_threads": None,
            "host_tracer_level": 0, "graph_nodes": 0, "extra": {"backend": "jax", "training": training}}


def _run_steps(jax, step, args, count: int, first: int, trained: bool) -> tuple:
    """Run `count` steps, each blocked on; a training step's new state feeds the next one."""
    times = []
    for number in range(first, first + count):
        start = time.perf_counter()
        with jax.profiler.StepTraceAnnotation(STEP_MARKER, step_num=number):
            out = jax.block_until_ready(step(*args))
        times.append((time.perf_counter() - start) * 1e6)
        if trained:
            args = (out[1], out[2], out[3]) + tuple(args[3:])
    return times, args


def _record(jax, step, args, logdir: Path, request: CaptureRequest) -> tuple:
    """Warm up (compile excluded from the trace), then record steps + 1 under the JAX profiler."""
    trained = request.train
    warmup = max(int(request.warmup), 1)
    _, args = _run_steps(jax, step, args, warmup, -warmup, trained)
    before = set(logdir.rglob("*.xplane.pb"))
    jax.profiler.start_trace(str(logdir))
    try:
        times, _ = _run_steps(jax, step, args, int(request.steps) + 1, 0, trained)
    finally:
        jax.profiler.stop_trace()
    files = sorted(p for p in logdir.rglob("*.xplane.pb") if p not in before)
    if not files:
        raise CaptureError(f"{logdir}: the JAX profiler wrote no trace")
    return [round(t, 3) for t in times], files, files[0].parent
