"""The jitted steps the JAX capture profiles (see jax_capture.py): inputs, inference, training."""
from __future__ import annotations

from typing import Optional


def input_specs(model, batch_size: int) -> list:
    """[(name, shape, dtype)] with the batch dimension set; unknown dims are a ModelError."""
    from ..errors import ModelError
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ModelError(f"model {model.name!r} has no defined inputs (build it with keras.Input first)")
    specs = []
    for i, tensor in enumerate(inputs):
        dims = list(tensor.shape)
        if dims and dims[0] is None:
            dims[0] = batch_size
        if any(d is None for d in dims):
            raise ModelError(f"input {getattr(tensor, 'name', i)!r} has shape {tuple(tensor.shape)} with an "
                             "unknown dimension beyond the batch; rebuild the model with a fixed input shape")
        specs.append((getattr(tensor, "name", f"input_{i}"), dims, str(tensor.dtype)))
    return specs


def _embedding_limit(model) -> Optional[int]:
    import keras
    limits = [layer.input_dim for layer in model._flatten_layers() if isinstance(layer, keras.layers.Embedding)]
    return min(limits) if limits else None


def synthetic_inputs(model, batch_size: int, seed: int):
    """Random inputs of the model's input shapes (integers below the smallest embedding vocabulary)."""
    import numpy as np
    rng = np.random.default_rng(seed)
    limit = _embedding_limit(model) or 2
    values = []
    for _, dims, dtype in input_specs(model, batch_size):
        if "int" in dtype:
            values.append(rng.integers(0, limit, size=dims).astype(dtype))
        elif "bool" in dtype:
            values.append(rng.random(dims) > 0.5)
        else:
            values.append(rng.standard_normal(dims).astype(dtype))
    return values[0] if len(values) == 1 else values


def _loss_name(loss) -> str:
    if isinstance(loss, str):
        return loss
    return getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__


def fitting_loss(model) -> str:
    """A loss that fits the model's (first) output: after a softmax, categorical cross-entropy;
    after a sigmoid, binary cross-entropy; otherwise mean squared error."""
    layer = model.layers[-1] if model.layers else None
    activation = getattr(getattr(layer, "activation", None), "__name__", "")
    if activation == "softmax":
        return "categorical_crossentropy"
    if activation == "sigmoid":
        return "binary_crossentropy"
    return "mean_squared_error"


def ensure_compiled(keras, model) -> dict:
    """Compile with SGD and a fitting loss when the file had no loss or optimizer; what trains."""
    optimizer = getattr(model, "optimizer", None)
    loss = getattr(model, "loss", None)
    defaulted = optimizer is None or loss is None
    if defaulted:
        optimizer = optimizer or keras.optimizers.SGD()
        loss = loss or fitting_loss(model)
        model.compile(optimizer=optimizer, loss=loss)
    return {"loss": _loss_name(model.loss), "optimizer": type(model.optimizer).__name__,
            "defaulted": defaulted, "backend": "jax"}


def synthetic_targets(model, loss_name: str, batch_size: int, seed: int):
    """Targets the loss accepts, shaped like the model's outputs."""
    import numpy as np
    rng = np.random.default_rng(seed + 1)
    targets = []
    for tensor in model.outputs:
        dims = [batch_size if d is None else d for d in tensor.shape]
        if "sparse" in loss_name:
            targets.append(rng.integers(0, dims[-1], size=dims[:-1]).astype("int32"))
        elif "categorical" in loss_name:
            targets.append(np.eye(dims[-1], dtype="float32")[rng.integers(0, dims[-1], size=dims[:-1])])
        elif "binary" in loss_name:
            targets.append((rng.random(dims) > 0.5).astype("float32"))
        else:
            targets.append(rng.standard_normal(dims).astype("float32"))
    return targets[0] if len(targets) == 1 else targets


def build_step(jax, keras, model, batch_size: int, train: bool, seed: int = 0):
    """(jitted step, its first arguments, training description or None).

    Trainable variables travel as a dict keyed by variable path, so the HLO parameters carry the
    layer they belong to (`tv['dense/kernel']`)."""
    x = synthetic_inputs(model, batch_size, seed)
    paths = [v.path for v in model.trainable_variables]
    if len(set(paths)) != len(paths):  # duplicate paths: fall back to positions
        paths = [f"{i}:{p}" for i, p in enumerate(paths)]
    tv = dict(zip(paths, [v.value for v in model.trainable_variables]))
    ntv = [v.value for v in model.non_trainable_variables]
    if not train:
        def step(tv, ntv, x):
            y, _ = model.stateless_call([tv[p] for p in paths], ntv, x, training=False)
            return y
        return jax.jit(step), (tv, ntv, x), None
    training = ensure_compiled(keras, model)
    y = synthetic_targets(model, training["loss"], batch_size, seed)
    model.optimizer.build(model.trainable_variables)
    ov = [v.value for v in model.optimizer.variables]
    mv = [v.value for v in model.metrics_variables]
    grad_fn = jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)

    def step(tv, ntv, ov, x, y):
        values = [tv[p] for p in paths]
        (loss, aux), grads = grad_fn(values, ntv, mv, x, y, None, training=True, optimizer_variables=ov)
        new_values, new_ov = model.optimizer.stateless_apply(ov, grads, values)
        return loss, dict(zip(paths, new_values)), aux[2], new_ov
    return jax.jit(step), (tv, ntv, ov, x, y), training
