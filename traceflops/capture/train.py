"""Capture: one full training step (forward, loss, gradients, optimizer update) as a tf.function.

The step is Keras' own `model.train_step((x, y))`, the function `fit` runs per
batch, so the profiled graph is the graph users train with: the compiled loss,
its metrics and the compiled optimizer. A model without a compiled loss or
optimizer gets stated defaults (SGD; a loss chosen from the output layer), and
the choice is reported, never hidden.

Targets are synthetic, of the shape, dtype and range the loss expects (class
indices below the class count for sparse losses, one-hot rows for categorical
ones, 0/1 for binary ones, floats for regression), so that the step computes
what it would compute on real labels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import ModelError
from .model import pack_inputs
from .tf import import_tf

DEFAULT_OPTIMIZER = "SGD"


@dataclass
class TrainingSetup:
    loss: str
    optimizer: str
    defaulted: bool
    target_specs: list  # [(name, dims, dtype, kind)] kind: sparse, onehot, binary, positive, real

    def describe(self) -> dict:
        return {"loss": self.loss, "optimizer": self.optimizer, "defaulted": self.defaulted}


def loss_name(loss) -> str:
    """The name of a compiled loss: a string, a Keras loss object or a function ("" for none)."""
    if loss is None:
        return ""
    if isinstance(loss, str):
        return loss
    return getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__


def _output_layer(tensor):
    history = getattr(tensor, "_keras_history", None)
    return getattr(history, "operation", None) if history is not None else None


def _default_loss(model, tensor) -> str:
    """The loss that fits an output: softmax -> sparse categorical cross-entropy,
    sigmoid -> binary cross-entropy, anything else -> mean squared error."""
    layer = _output_layer(tensor)
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "") if activation is not None else ""
    if type(layer).__name__ == "Softmax" or name == "softmax":
        return "sparse_categorical_crossentropy"
    if name == "sigmoid":
        return "binary_crossentropy"
    return "mean_squared_error"


def _target_kind(loss: str) -> str:
    name = loss.lower().replace("_", "").replace(" ", "")
    if "sparse" in name:
        return "sparse"
    if "categorical" in name or "kldivergence" in name or "kullback" in name:
        return "onehot"
    if "binary" in name or "hinge" in name:
        return "binary"
    if "poisson" in name:
        return "positive"
    return "real"


def _per_output(value, names: list) -> list:
    """A compiled loss given once, as a list, or as a dict keyed by output name."""
    if isinstance(value, dict):
        return [value.get(name) for name in names]
    if isinstance(value, (list, tuple)):
        return list(value) + [None] * (len(names) - len(value))
    return [value] * len(names)


def prepare_training(model, batch_size: int) -> TrainingSetup:
    """Compile `model` with defaults where it has no loss or optimizer; the target specs to feed."""
    import keras
    outputs = list(getattr(model, "outputs", None) or [])
    if not outputs:
        raise ModelError(f"model {getattr(model, 'name', '?')!r}: training needs a Keras model with defined "
                         "outputs (a SavedModel without its Keras model cannot be trained)")
    names = [getattr(o, "name", f"output_{i}") for i, o in enumerate(outputs)]
    compiled = bool(getattr(model, "compiled", False))
    optimizer = getattr(model, "optimizer", None) if compiled else None
    loss = getattr(model, "loss", None) if compiled else None
    losses = _per_output(loss, names) if loss is not None else [None] * len(names)
    defaulted = optimizer is None or any(item is None for item in losses)
    for i, tensor in enumerate(outputs):
        if losses[i] is None:
            if not str(tensor.dtype).startswith(("float", "bfloat")):
                raise ModelError(f"output {names[i]!r} has dtype {tensor.dtype}: no loss can be inferred for it; "
                                 "compile the model with a loss")
            losses[i] = _default_loss(model, tensor)
    if defaulted:
        compiled_loss = losses[0] if len(losses) == 1 else losses
        model.compile(optimizer=optimizer or keras.optimizers.SGD(), loss=compiled_loss,
                      jit_compile=False)
        optimizer = model.optimizer
    specs = []
    for name, tensor, item in zip(names, outputs, losses):
        dims = list(tensor.shape)
        if dims and dims[0] is None:
            dims[0] = batch_size
        if any(d is None for d in dims):
            raise ModelError(f"output {name!r} has shape {list(tensor.shape)} with an unknown dimension beyond "
                             "the batch: no target shape for training")
        kind = _target_kind(loss_name(item))
        target_dims = dims[:-1] if kind == "sparse" and len(dims) > 1 else dims
        dtype = "int32" if kind == "sparse" else "float32"
        specs.append((name, target_dims, dtype, kind, dims[-1] if dims else 1))
    loss_text = ", ".join(loss_name(item) for item in losses)
    return TrainingSetup(loss_text, type(optimizer).__name__, defaulted, specs)


def synthetic_targets(setup: TrainingSetup, seed: int = 1):
    """Targets in the range each loss expects (see the module docstring)."""
    tf = import_tf()
    generator = tf.random.Generator.from_seed(seed)
    targets = []
    for _, dims, _, kind, classes in setup.target_specs:
        if kind == "sparse":
            targets.append(generator.uniform(dims, 0, max(classes, 1), dtype=tf.int32))
        elif kind == "onehot":
            index = generator.uniform(dims[:-1], 0, max(dims[-1], 1), dtype=tf.int32)
            targets.append(tf.one_hot(index, dims[-1], dtype=tf.float32))
        elif kind == "binary":
            targets.append(tf.cast(generator.uniform(dims) > 0.5, tf.float32))
        elif kind == "positive":
            targets.append(generator.uniform(dims, 0.0, 2.0))
        else:
            targets.append(generator.normal(dims))
    return targets


def build_train_step(model, specs, setup: TrainingSetup, inputs, targets, jit_compile: bool = False,
                     by_name: bool = False):
    """One tf.function running Keras' `train_step((x, y))` with a fully known signature."""
    tf = import_tf()
    signature = ([tf.TensorSpec(dims, tf.as_dtype(dtype)) for _, dims, dtype in specs]
                 + [tf.TensorSpec(dims, tf.as_dtype(dtype)) for _, dims, dtype, _, _ in setup.target_specs])
    count = len(specs)
    single_out = len(setup.target_specs) == 1
    x = pack_inputs(model, specs, list(inputs), by_name)
    y = targets[0] if single_out else list(targets)
    build = getattr(model, "_symbolic_build", None)
    if build is not None and not model.optimizer.built:
        # Variables (optimizer slots, metric and loss state) must exist before the
        # function is traced: a tf.function may create variables only once.
        build(data_batch=(x, y, None))
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)

    @tf.function(input_signature=signature, jit_compile=jit_compile or None)
    def train_step(*tensors):
        xs, ys = tensors[:count], tensors[count:]
        return model.train_step((pack_inputs(model, specs, list(xs), by_name), ys[0] if single_out else list(ys)))
    return train_step


def snapshot(model) -> tuple:
    """Values of the model's and its optimizer's variables, to restore after profiling."""
    optimizer = getattr(model, "optimizer", None)
    opt_vars = list(optimizer.variables) if optimizer is not None and optimizer.built else []
    model_vars = list(model.variables)
    return model_vars, [v.numpy() for v in model_vars], opt_vars, [v.numpy() for v in opt_vars]


def restore(saved: Optional[tuple]) -> None:
    """Profiling trains the model; put its weights (and optimizer state, if it had any) back."""
    if saved is None:
        return
    model_vars, model_values, opt_vars, opt_values = saved
    for var, value in zip(model_vars + opt_vars, model_values + opt_values):
        var.assign(value)
