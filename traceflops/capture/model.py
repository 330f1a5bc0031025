"""Capture: the model to run, its inputs and the step function the profiler times."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..errors import ModelError, UsageError
from .tf import import_tf


def load_model(path, allow_unsafe: bool = False, compile: bool = False):
    """A `.keras`, `.h5` or SavedModel directory, loaded with Keras safe mode on by default.

    `compile` also restores the file's compile config (loss, optimizer,
    metrics), which training steps use; inference never needs it.
    """
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or directory")
    import_tf()
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
        tf = import_tf()
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


def embedding_limit(model) -> Optional[int]:
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


def _declared_inputs(model) -> list:
    """[(name, shape, dtype)] the model declares, in `model.inputs` order; [] when it declares none
    (a subclassed model). Names are the keys of a dict input structure, else the Input layers' names."""
    if isinstance(model, SavedModelRunner):
        return list(model.input_specs)
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):  # a subclassed model never called on keras.Input
        inputs = None
    if not inputs:
        return []
    names = [getattr(t, "name", f"input_{i}") for i, t in enumerate(inputs)]
    structure = getattr(model, "_inputs_struct", None)
    if isinstance(structure, dict):
        import keras
        flat_keys = keras.tree.flatten({key: key for key in structure})  # model.inputs' order: sorted keys
        if len(flat_keys) == len(inputs):
            names = list(flat_keys)
    return [(name, list(t.shape), str(t.dtype)) for name, t in zip(names, inputs)]


def _given_shapes(input_shape, names: list) -> dict:
    """`input_shape` (dims after the batch: a tuple, a list of tuples, or {name: tuple}) by input name."""
    if input_shape is None:
        return {}
    if isinstance(input_shape, dict):
        unknown = sorted(set(input_shape) - set(names)) if names else []
        if unknown:
            raise UsageError(f"--input-shape names {', '.join(unknown)}: the model's inputs are "
                             f"{', '.join(names)}")
        return {k: list(v) for k, v in input_shape.items()}
    shapes = [input_shape] if input_shape and all(isinstance(d, int) for d in input_shape) else list(input_shape)
    if names and len(shapes) != len(names):
        raise UsageError(f"--input-shape: {len(shapes)} shape(s) given for {len(names)} inputs "
                         f"({', '.join(names)}); name them as NAME:D1,D2")
    names = names or (["input"] if len(shapes) == 1 else [f"input_{i}" for i in range(len(shapes))])
    return {name: list(shape) for name, shape in zip(names, shapes)}


def input_specs(model, batch_size: int, input_shape=None):
    """[(name, dims, dtype)] with the batch dimension set; `input_shape` fills unknown dimensions
    (or, for a model that declares no inputs, gives them: float32)."""
    declared = _declared_inputs(model)
    given = _given_shapes(input_shape, [name for name, _, _ in declared])
    if not declared:
        if not given:
            raise ModelError(f"model {getattr(model, 'name', '?')!r} declares no inputs (a subclassed model): "
                             "give their shapes with --input-shape D1,D2,... (input_shape= in the API)")
        declared = [(name, [None] + dims, "float32") for name, dims in given.items()]
    specs = []
    for name, shape, dtype in declared:
        dims = [batch_size] + list(given.get(name, list(shape)[1:])) if name in given else list(shape)
        if dims and dims[0] is None:
            dims[0] = batch_size
        if name in given and len(dims) != len(shape) and shape:
            raise UsageError(f"--input-shape {name}: {len(dims) - 1} dimensions given, the input has "
                             f"{len(shape) - 1} after the batch")
        if any(d is None for d in dims):
            raise ModelError(f"input {name!r} has shape {list(shape)} with an unknown dimension beyond the batch; "
                             f"give it with --input-shape {name}:D1,D2,... (input_shape= in the API)")
        specs.append((name, dims, dtype))
    return specs


def pack_inputs(model, specs, tensors: list, by_name: bool = False):
    """The tensors in the structure the model is called with: a dict by name (dict inputs, or shapes
    given by name for a model that declares none), a list (several inputs), or one tensor."""
    structure = getattr(model, "_inputs_struct", None)
    if isinstance(structure, dict) or (by_name and not _declared_inputs(model)):
        return dict(zip([name for name, _, _ in specs], tensors))
    return tensors[0] if len(tensors) == 1 else list(tensors)


def synthetic_inputs(specs, embedding_limit: Optional[int], seed: int = 0):
    tf = import_tf()
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


def build_step_function(model, specs, jit_compile: bool = False, by_name: bool = False):
    """One tf.function for inference with a fully known input signature (no retracing).

    With `jit_compile`, XLA compiles the whole step (as Keras does by default
    for `predict` on GPU); its instructions then appear in the trace as XLA
    events with `hlo_op`/`hlo_module`, and the HLO module itself is stored in
    the trace's `/host:metadata` plane.
    """
    tf = import_tf()
    signature = [tf.TensorSpec(dims, tf.as_dtype(dtype), name=None) for _, dims, dtype in specs]
    if isinstance(model, SavedModelRunner):
        names = [name for name, _, _ in specs]
        serving = model.function

        @tf.function(input_signature=signature, jit_compile=jit_compile or None)
        def step(*xs):
            return serving(**dict(zip(names, xs)))
        return step

    @tf.function(input_signature=signature, jit_compile=jit_compile or None)
    def step(*xs):
        return model(pack_inputs(model, specs, list(xs), by_name), training=False)
    return step
