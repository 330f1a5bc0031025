"""Keras activations as the op types they run: FLOPs per element forward and backward.

Forward figures are the op registry's (docs/formulas.md); backward figures are
the registry's gradient op types (`ReluGrad`, `SigmoidGrad`...) where TensorFlow
has one, else twice the forward figure (docs/count.md).
"""
from __future__ import annotations

from .formulas import NotCounted, elementwise_ops_flops

# Keras activation name -> (elementwise op types it runs, the gradient op type or None)
ACTIVATION_OPS = {
    "linear": ((), None), "relu": (("Relu",), "ReluGrad"), "relu6": (("Relu6",), "Relu6Grad"),
    "sigmoid": (("Sigmoid",), "SigmoidGrad"), "tanh": (("Tanh",), "TanhGrad"), "elu": (("Elu",), "EluGrad"),
    "selu": (("Selu",), "SeluGrad"), "softplus": (("Softplus",), "SoftplusGrad"),
    "softsign": (("Softsign",), "SoftsignGrad"), "leaky_relu": (("LeakyRelu",), "LeakyReluGrad"),
    "swish": (("Swish",), None), "silu": (("Swish",), None), "mish": (("Mish",), None),
    "gelu": (("GeluExact",), None), "exponential": (("Exp",), None),
}
SOFTMAX_ACTIVATIONS = ("softmax", "log_softmax")



def activation_name(activation) -> str:
    """The Keras name of an activation function or config value ("relu"; "linear" for None)."""
    if activation is None:
        return "linear"
    if isinstance(activation, str):
        return activation
    if isinstance(activation, dict):
        return str(activation.get("config", {}).get("name") or activation.get("class_name") or activation)
    return getattr(activation, "__name__", type(activation).__name__)


def activation_cost(activation, elements: int, softmax_flops=None) -> tuple:
    """(forward FLOPs, backward FLOPs) of applying `activation` to `elements` values.

    `softmax_flops(elements)` prices softmax/log-softmax (the registry's Softmax formula)."""
    name = activation_name(activation)
    if name in SOFTMAX_ACTIVATIONS and softmax_flops is not None:
        forward = softmax_flops(elements)
        return forward, 2 * forward
    if name not in ACTIVATION_OPS:
        raise NotCounted(f"activation {name!r} has no per-element figure")
    op_types, grad = ACTIVATION_OPS[name]
    per = elementwise_ops_flops(op_types)
    backward = elementwise_ops_flops((grad,)) if grad else 2 * per
    return per * elements, backward * elements
