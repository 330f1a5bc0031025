"""Capture: the model to run, its inputs and the step function the profiler times."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import ModelError
from .tf import _import_tf


def load_model(path, allow_unsafe: bool = False, compile: bool = False):
    """A `.keras`, `.h5` or SavedModel directory, loaded with Keras safe mode on by default.

    `compile` also restores the file's compile config (loss, optimizer,
    metrics), which training steps use; inference never needs it.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or directory")
    _import_tf()
    import keras
    if path.is_dir():
        if not (path / "saved_model.pb").exists():
            raise ModelError(f"{path}: a directory, but not a SavedModel (no saved_model.pb)")
        return SavedModelRunner(path)
    if path.suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelError(f"{path}: not a model file (expected .keras, .h5 or a SavedModel directory)")
    try:
        return keras.saving.load_model(path, compile=compile, safe_mode=not allow_unsafe)
    except Exception as exc:  # Keras raises many types for one cause: the file isn't a loadable model
        message = " ".join(str(exc).split())
        if "Lambda" in message and "safe_mode" in message:
            raise ModelError(f"{path}: the model has a Lambda layer, which Keras safe mode refuses to "
                             "load (it runs arbitrary code); pass --allow-unsafe if you trust this file") from None
        if "Could not locate" in message or "custom" in message.lower():
            raise ModelError(f"{path}: the model uses a custom layer or object that is not registered "
                             f"here ({message[:200]})") from None
        raise ModelError(f"{path}: could not load the model ({type(exc).__name__}: {message[:200]})") from None


class SavedModelRunner:
    """A SavedModel's serving signature, with the input specs of a Keras model."""

    def __init__(self, path):
        tf = _import_tf()
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as exc:
            raise ModelError(f"{path}: could not load the SavedModel ({type(exc).__name__})") from None
        signatures = getattr(loaded, "signatures", {})
        if "serving_default" not in signatures:
            raise ModelError(f"{path}: the SavedModel has no serving_default signature")
        self._loaded = loaded
        self.function = signatures["serving_default"]
        self.name = Path(path).name
        _, kwargs = self.function.structured_input_signature
        self.input_specs = [(key, spec.shape.as_list(), spec.dtype.name) for key, spec in sorted(kwargs.items())]
        self.embedding_limit = None


def _embedding_limit(model) -> Optional[int]:
    """Smallest vocabulary among the model's Embedding layers: integer inputs stay below it."""
    import keras
    limits = []
    stack = [model]
    while stack:
        layer = stack.pop()
        if isinstance(layer, keras.layers.Embedding):
            limits.append(layer.input_dim)
        stack.extend(getattr(layer, "layers", []) or [])
        stack.extend(getattr(layer, "_layers", []) or [] if not hasattr(layer, "layers") else [])
    return min(limits) if limits else None


def input_specs(model, batch_size: int):
    """[(name, shape, dtype)] with the batch dimension set; unknown dims are an error."""
    if isinstance(model, SavedModelRunner):
        raw = model.input_specs
    else:
        inputs = getattr(model, "inputs", None)
        if not inputs:
            raise ModelError(f"model {model.name!r} has no defined inputs (build it with keras.Input first)")
        raw = [(getattr(t, "name", f"input_{i}"), list(t.shape), str(t.dtype)) for i, t in enumerate(inputs)]
    specs = []
    for name, shape, dtype in raw:
        dims = list(shape)
        if dims and dims[0] is None:
            dims[0] = batch_size
        if any(d is None for d in dims):
            raise ModelError(f"input {name!r} has shape {shape} with an unknown dimension beyond the batch; "
                             "rebuild the model with a fixed input shape")
        specs.append((name, dims, dtype))
    return specs


def synthetic_inputs(specs, embedding_limit: Optional[int], seed: int = 0):
    tf = _import_tf()
    generator = tf.random.Generator.from_seed(seed)
    tensors = []
    for _, dims, dtype in specs:
        dt = tf.as_dtype(dtype)
        if dt.is_integer:
            high = embedding_limit or 2
            tensors.append(generator.uniform(dims, 0, high, dtype=tf.int64 if dt == tf.int64 else tf.int32)
                           if dt in (tf.int32, tf.int64) else tf.cast(generator.uniform(dims, 0, high, tf.int32), dt))
        elif dt.is_bool:
            tensors.append(generator.uniform(dims) > 0.5)
        else:
            tensors.append(tf.cast(generator.normal(dims), dt))
    return tensors


def build_step_function(model, specs, jit_compile: bool = False):
    """One tf.function for inference with a fully known input signature (no retracing).

    With `jit_compile`, XLA compiles the whole step (as Keras does by default
    for `predict` on GPU); its instructions then appear in the trace as XLA
    events with `hlo_op`/`hlo_module`, and the HLO module itself is stored in
    the trace's `/host:metadata` plane.
    """
    tf = _import_tf()
    signature = [tf.TensorSpec(dims, tf.as_dtype(dtype), name=None) for _, dims, dtype in specs]
    if isinstance(model, SavedModelRunner):
        names = [name for name, _, _ in specs]
        serving = model.function

        @tf.function(input_signature=signature, jit_compile=jit_compile or None)
        def step(*xs):
            return serving(**dict(zip(names, xs)))
        return step

    single = len(specs) == 1

    @tf.function(input_signature=signature, jit_compile=jit_compile or None)
    def step(*xs):
        return model(xs[0] if single else list(xs), training=False)
    return step
