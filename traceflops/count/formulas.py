"""The per-layer formula registry of `traceflops count`: what one call of a Keras layer class costs.

A formula is `formula(call: LayerCall) -> LayerCount`, registered for a layer
class with `register_layer_formula` (user code and the built-in modules alike);
data-movement layers are declared zero with a reason. Lookup follows the class's
MRO, so a subclass of `Dense` is counted as a `Dense` unless it registers its
own. Per-element figures come from the op registry (`traceflops.costs`): a layer
is priced as the op types it runs (`op_flops`, `elementwise_ops_flops`), so the
numbers of docs/formulas.md have one source.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..costs import op_cost
from ..costs.registry import elementwise_flops
from ..ops import OpInfo, TensorSpec

_FORMULAS: dict = {}  # class -> formula
_ZERO: dict = {}  # class name -> reason


@dataclass
class LayerCall:
    """One call of a layer as a formula sees it: static shapes with the batch dimension set.

    `inputs` are the shapes of the tensors among the positional arguments (in
    order), `kwargs` the keyword arguments with tensors as shapes, `outputs` the
    output shapes. `train` says a training step is counted; `input_needs_grad`
    whether any input depends on a trainable weight (then the layer needs an
    input gradient)."""
    layer: object
    inputs: list
    outputs: list
    kwargs: dict = field(default_factory=dict)
    train: bool = False
    input_needs_grad: bool = False

    @property
    def config(self) -> "LayerSettings":
        return LayerSettings(self.layer)

    @property
    def input_shape(self) -> tuple:
        return self.inputs[0]

    @property
    def output_shape(self) -> tuple:
        return self.outputs[0]

    @property
    def trains_weights(self) -> bool:
        """Whether the layer has weights a training step updates (so: weight gradients)."""
        return bool(self.layer.trainable and self.layer.trainable_weights)

    @property
    def needs_backward(self) -> bool:
        """Whether a training step runs this layer's backward at all."""
        return self.train and (self.input_needs_grad or self.trains_weights)


class LayerSettings:
    """A layer's settings read off its attributes (`units`, `kernel_size`...; `_num_heads` where Keras keeps
    one private), with `get` and `[]` like its `get_config()`, which is not called: Keras's serialization
    imports TensorFlow whenever it is installed, even on the JAX backend."""

    def __init__(self, layer):
        self.layer = layer

    def get(self, key: str, default=None):
        for name in (key, "_" + key):
            value = getattr(self.layer, name, None)
            if value is not None:
                return value
        return default

    def __getitem__(self, key: str):
        value = self.get(key)
        if value is None:
            raise NotCounted(f"{type(self.layer).__name__} has no setting {key!r}")
        return value


@dataclass
class LayerCount:
    """One layer call's count. `macs` only for contractions (None otherwise); `flops` forward.

    `backward_macs`/`backward_flops` are filled for training steps; `causal_*` for
    attention called causal (the work over the unmasked pairs); `children` are
    (name, LayerCall) of sublayers counted as rows of their own (`outer/inner`)."""
    flops: int
    macs: Optional[int] = None
    backward_flops: int = 0
    backward_macs: Optional[int] = None
    causal_flops: Optional[int] = None
    causal_macs: Optional[int] = None
    children: list = field(default_factory=list)


class NotCounted(Exception):
    """A layer (or a configuration of it) no formula covers; the message is the reason."""


def register_layer_formula(layer_class, formula: Optional[Callable] = None):
    """Register `formula(call: LayerCall) -> LayerCount` for `layer_class` (and its subclasses).

    Used as a decorator, `@register_layer_formula(MyLayer)`, or called with the formula."""
    def wrap(fn: Callable) -> Callable:
        _FORMULAS[layer_class] = fn
        return fn
    return wrap(formula) if formula is not None else wrap


def declare_zero_layers(*class_names: str, reason: str) -> None:
    """Built-in layers that do no arithmetic (by class name, so that none needs importing)."""
    for name in class_names:
        _ZERO[name] = reason


def formula_for(layer) -> tuple:
    """(formula, None) for the nearest registered class in the layer's MRO, (None, zero reason) for a
    declared-zero layer, (None, None) when neither."""
    for cls in type(layer).__mro__:
        if cls in _FORMULAS:
            return _FORMULAS[cls], None
        if cls.__name__ in _ZERO and cls.__module__.startswith("keras"):
            return None, _ZERO[cls.__name__]
    return None, None


def elements(shape) -> int:
    """Elements of a static shape; NotCounted when a dimension is unknown."""
    if any(d is None for d in shape):
        raise NotCounted(f"shape {tuple(shape)} has an unknown dimension: give it with --input-shape")
    return math.prod(shape)


def op_flops(op_type: str, inputs: list, outputs: list, **attrs) -> int:
    """FLOPs of one op of the op registry over these shapes (float32), as `traceflops.costs` prices it."""
    spec = [TensorSpec("float32", tuple(s)) for s in inputs]
    out = [TensorSpec("float32", tuple(s)) for s in outputs]
    cost = op_cost(OpInfo(op_type, spec, out, dict(attrs)))
    if cost.flops is None:
        raise NotCounted(f"the op registry has no count for {op_type} here")
    return cost.flops


def elementwise_ops_flops(op_types) -> int:
    """FLOPs per element of a chain of elementwise op types (registry figures)."""
    total = 0
    for op_type in op_types:
        per = elementwise_flops(op_type)
        if per is None:
            raise NotCounted(f"no per-element figure for {op_type}")
        total += per
    return total
