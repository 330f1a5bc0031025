"""Formulas of the Keras built-in layers without sublayers: contractions, pooling, normalization,
activations, merges, preprocessing arithmetic, and the declared-zero data-movement layers.

Textbook convention (docs/count.md): contractions count every kernel tap at every
output position; FLOPs = 2 x MACs + bias adds + the activation per output
element; everything else is priced as the op types it runs (the op registry).
"""
from __future__ import annotations

import math

import keras

from .activations import activation_cost
from .formulas import (LayerCall, LayerCount, NotCounted, declare_zero_layers, elementwise_ops_flops, elements,
                       op_flops, register_layer_formula)

L = keras.layers


def softmax_flops(n: int) -> int:
    return op_flops("Softmax", [(n,)], [(n,)])


def contraction(call: LayerCall, macs: int, bias_elements: int = 0, activation=None,
                backward_macs=None, bias_size=None) -> LayerCount:
    """A contraction of `macs` MACs, `bias_elements` bias adds and an activation over the output.

    Backward: weight gradient (= forward MACs) when the layer trains its weights, input gradient
    (= forward MACs) when its input depends on a trainable weight; the bias gradient's sum
    (BiasAddGrad: bias adds - `bias_size`, the layer's bias elements unless given) and the
    activation's gradient per element."""
    out = elements(call.output_shape)
    act_forward, act_backward = activation_cost(activation, out, softmax_flops)
    count = LayerCount(flops=2 * macs + bias_elements + act_forward, macs=macs)
    if call.needs_backward:
        if backward_macs is None:
            backward_macs = macs * (int(call.trains_weights) + int(call.input_needs_grad))
        bias_grad = 0
        if bias_elements and call.trains_weights:
            if bias_size is None:
                bias_size = math.prod(tuple(call.layer.bias.shape))
            bias_grad = op_flops("BiasAddGrad", [(bias_elements,)], [(bias_size,)])
        count.backward_macs = backward_macs
        count.backward_flops = 2 * backward_macs + bias_grad + act_backward
    return count


def channels_last(call: LayerCall) -> bool:
    return call.config.get("data_format", "channels_last") != "channels_first"


def spatial_and_channels(shape, last: bool) -> tuple:
    return (tuple(shape[1:-1]), shape[-1]) if last else (tuple(shape[2:]), shape[1])


@register_layer_formula(L.Dense)
def dense(call: LayerCall) -> LayerCount:
    """rows x in x units MACs over every leading dimension (Dense on 3-D input: batch x time)."""
    cfg = call.config
    x = call.input_shape
    macs = elements(x[:-1]) * x[-1] * cfg["units"]
    bias = elements(call.output_shape) if cfg.get("use_bias", True) else 0
    return contraction(call, macs, bias, cfg.get("activation"))


@register_layer_formula(L.EinsumDense)
def einsum_dense(call: LayerCall) -> LayerCount:
    """The product of every label's size in the equation (input and kernel)."""
    cfg = call.config
    inputs, _ = cfg["equation"].split("->")
    x_labels, k_labels = inputs.split(",")
    sizes = dict(zip(x_labels, call.input_shape))
    sizes.update(zip(k_labels, tuple(call.layer.kernel.shape)))
    if "." in x_labels + k_labels:
        raise NotCounted("EinsumDense with an ellipsis equation")
    macs = elements([sizes[label] for label in sizes])
    bias = elements(call.output_shape) if cfg.get("bias_axes") else 0
    return contraction(call, macs, bias, cfg.get("activation"))


@register_layer_formula(L.Conv1D)
@register_layer_formula(L.Conv2D)
@register_layer_formula(L.Conv3D)
def convolution(call: LayerCall) -> LayerCount:
    """Output elements x kernel volume x input channels per group (every tap; dilation changes nothing)."""
    cfg = call.config
    last = channels_last(call)
    _, in_channels = spatial_and_channels(call.input_shape, last)
    macs = elements(call.output_shape) * math.prod(cfg["kernel_size"]) * (in_channels // cfg.get("groups", 1))
    bias = elements(call.output_shape) if cfg.get("use_bias", True) else 0
    return contraction(call, macs, bias, cfg.get("activation"))


@register_layer_formula(L.DepthwiseConv1D)
@register_layer_formula(L.DepthwiseConv2D)
def depthwise_convolution(call: LayerCall) -> LayerCount:
    """Output elements (in channels x depth multiplier) x kernel volume."""
    cfg = call.config
    macs = elements(call.output_shape) * math.prod(cfg["kernel_size"])
    bias = elements(call.output_shape) if cfg.get("use_bias", True) else 0
    return contraction(call, macs, bias, cfg.get("activation"))


@register_layer_formula(L.SeparableConv1D)
@register_layer_formula(L.SeparableConv2D)
def separable_convolution(call: LayerCall) -> LayerCount:
    """Depthwise (output positions x in x multiplier x kernel volume) + pointwise (output positions x
    in x multiplier x filters)."""
    cfg = call.config
    last = channels_last(call)
    _, in_channels = spatial_and_channels(call.input_shape, last)
    spatial, filters = spatial_and_channels(call.output_shape, last)
    positions = call.output_shape[0] * elements(spatial)
    middle = in_channels * cfg.get("depth_multiplier", 1)
    macs = positions * middle * (math.prod(cfg["kernel_size"]) + filters)
    bias = elements(call.output_shape) if cfg.get("use_bias", True) else 0
    return contraction(call, macs, bias, cfg.get("activation"))


@register_layer_formula(L.Conv1DTranspose)
@register_layer_formula(L.Conv2DTranspose)
@register_layer_formula(L.Conv3DTranspose)
def transposed_convolution(call: LayerCall) -> LayerCount:
    """Input positions x kernel volume x input channels x filters (each input element against every tap)."""
    cfg = call.config
    macs = elements(call.input_shape) * math.prod(cfg["kernel_size"]) * cfg["filters"]
    bias = elements(call.output_shape) if cfg.get("use_bias", True) else 0
    return contraction(call, macs, bias, cfg.get("activation"))


@register_layer_formula(L.Dot)
def dot(call: LayerCall) -> LayerCount:
    """Output elements x the contracted size (a batched matmul); backward: both operands' gradients."""
    cfg = call.config
    if cfg.get("normalize"):
        raise NotCounted("Dot with normalize=True (the L2 normalisation is not modelled)")
    axes = cfg["axes"]
    axis = axes[0] if isinstance(axes, (list, tuple)) else axes
    x = call.inputs[0]
    macs = elements(call.output_shape) * x[axis]
    return contraction(call, macs, backward_macs=2 * macs if call.input_needs_grad else 0)


def elementwise(call: LayerCall, forward_per_element: int, backward_per_element: int, shape=None) -> LayerCount:
    """An elementwise layer: per-element figures over the output (or `shape`)."""
    n = elements(shape if shape is not None else call.output_shape)
    count = LayerCount(flops=forward_per_element * n)
    if call.needs_backward:
        count.backward_flops = backward_per_element * n
    return count


def pooling(call: LayerCall, op_type: str, grad_op_type: str) -> LayerCount:
    pool = call.config["pool_size"]
    window = [1, *pool, 1]
    x, out = call.input_shape, call.output_shape
    count = LayerCount(flops=op_flops(op_type, [x], [out], ksize=window))
    if call.needs_backward:
        grad_inputs = [x, out, out] if grad_op_type.startswith("Max") else [(len(x),), out]
        count.backward_flops = op_flops(grad_op_type, grad_inputs, [x], ksize=window)
    return count


@register_layer_formula(L.MaxPooling1D)
@register_layer_formula(L.MaxPooling2D)
@register_layer_formula(L.MaxPooling3D)
def max_pooling(call: LayerCall) -> LayerCount:
    """(window - 1) compares per output element (MaxPool)."""
    return pooling(call, "MaxPool", "MaxPoolGrad")


@register_layer_formula(L.AveragePooling1D)
@register_layer_formula(L.AveragePooling2D)
@register_layer_formula(L.AveragePooling3D)
def average_pooling(call: LayerCall) -> LayerCount:
    """window FLOPs per output element (AvgPool)."""
    return pooling(call, "AvgPool", "AvgPoolGrad")


@register_layer_formula(L.GlobalAveragePooling1D)
@register_layer_formula(L.GlobalAveragePooling2D)
@register_layer_formula(L.GlobalAveragePooling3D)
def global_average_pooling(call: LayerCall) -> LayerCount:
    """Input elements (Mean); backward 1 per input element (the divide of the broadcast gradient)."""
    flops = op_flops("Mean", [call.input_shape], [call.output_shape])
    return LayerCount(flops=flops, backward_flops=elements(call.input_shape) if call.needs_backward else 0)


@register_layer_formula(L.GlobalMaxPooling1D)
@register_layer_formula(L.GlobalMaxPooling2D)
@register_layer_formula(L.GlobalMaxPooling3D)
def global_max_pooling(call: LayerCall) -> LayerCount:
    """Input - output elements compares (Max); backward 1 per input element (select)."""
    flops = op_flops("Max", [call.input_shape], [call.output_shape])
    return LayerCount(flops=flops, backward_flops=elements(call.input_shape) if call.needs_backward else 0)


@register_layer_formula(L.BatchNormalization)
def batch_normalization(call: LayerCall) -> LayerCount:
    """FusedBatchNormV3: inference 2 per element + 5 per channel; training (a trainable layer in a
    training step) +3 per element; backward FusedBatchNormGradV3."""
    x = call.input_shape
    axis = call.config.get("axis", -1)
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    channels = elements([x[a] for a in axes])
    flat = (elements(x) // channels, channels)
    training = call.train and call.layer.trainable
    count = LayerCount(flops=op_flops("FusedBatchNormV3", [flat], [flat], is_training=training))
    if call.needs_backward:
        count.backward_flops = op_flops("FusedBatchNormGradV3", [flat, flat, (channels,)], [flat],
                                        is_training=training)
    return count


@register_layer_formula(L.LayerNormalization)
def layer_normalization(call: LayerCall) -> LayerCount:
    """8 per element (_MklLayerNorm); backward twice that."""
    flops = op_flops("_MklLayerNorm", [call.input_shape], [call.output_shape])
    return LayerCount(flops=flops, backward_flops=2 * flops if call.needs_backward else 0)


@register_layer_formula(L.Activation)
def activation_layer(call: LayerCall) -> LayerCount:
    """The activation's per-element figure over the output."""
    forward, backward = activation_cost(call.config.get("activation"), elements(call.output_shape), softmax_flops)
    return LayerCount(flops=forward, backward_flops=backward if call.needs_backward else 0)


def named_activation(name: str):
    def formula(call: LayerCall) -> LayerCount:
        forward, backward = activation_cost(name, elements(call.output_shape), softmax_flops)
        return LayerCount(flops=forward, backward_flops=backward if call.needs_backward else 0)
    formula.__doc__ = f"{name} per output element."
    return formula


register_layer_formula(L.LeakyReLU, named_activation("leaky_relu"))
register_layer_formula(L.ELU, named_activation("elu"))
register_layer_formula(L.Softmax, named_activation("softmax"))


@register_layer_formula(L.ReLU)
def relu_layer(call: LayerCall) -> LayerCount:
    """relu, relu6 (max_value 6) or leaky_relu (negative_slope) per element."""
    cfg = call.config
    max_value, slope, threshold = cfg.get("max_value"), cfg.get("negative_slope") or 0, cfg.get("threshold") or 0
    if threshold:
        raise NotCounted("ReLU with a threshold")
    name = {(None, False): "relu", (6.0, False): "relu6", (None, True): "leaky_relu"}.get(
        (None if max_value is None else float(max_value), bool(slope)))
    if name is None:
        raise NotCounted(f"ReLU with max_value={max_value}, negative_slope={slope}")
    return named_activation(name)(call)


@register_layer_formula(L.PReLU)
def prelu(call: LayerCall) -> LayerCount:
    """relu(x) - alpha * relu(-x): Relu, Neg, Relu, Mul, AddV2 per element; backward twice that."""
    per = elementwise_ops_flops(("Relu", "Neg", "Relu", "Mul", "AddV2"))
    return elementwise(call, per, 2 * per)


def merge(per_element_forward, per_element_backward):
    def formula(call: LayerCall) -> LayerCount:
        n = len(call.inputs)
        return elementwise(call, per_element_forward(n), per_element_backward(n))
    return formula


# n inputs: Add (n-1 adds; gradient copies), Subtract (1; a Neg), Multiply (n-1; each input's gradient
# n-1 multiplies), Average (n-1 adds + 1 divide; 1 divide), Maximum/Minimum (n-1; a select per input).
register_layer_formula(L.Add, merge(lambda n: (n - 1) * elementwise_ops_flops(("AddV2",)), lambda n: 0))
register_layer_formula(L.Subtract, merge(lambda n: elementwise_ops_flops(("Sub",)), lambda n: 1))
register_layer_formula(L.Multiply, merge(lambda n: (n - 1) * elementwise_ops_flops(("Mul",)),
                                         lambda n: n * (n - 1)))
register_layer_formula(L.Average, merge(lambda n: (n - 1) * elementwise_ops_flops(("AddV2",))
                                        + elementwise_ops_flops(("RealDiv",)), lambda n: 1))
register_layer_formula(L.Maximum, merge(lambda n: (n - 1) * elementwise_ops_flops(("Maximum",)), lambda n: n))
register_layer_formula(L.Minimum, merge(lambda n: (n - 1) * elementwise_ops_flops(("Minimum",)), lambda n: n))


@register_layer_formula(L.Rescaling)
def rescaling(call: LayerCall) -> LayerCount:
    """x * scale + offset: Mul, AddV2 per element."""
    return elementwise(call, elementwise_ops_flops(("Mul", "AddV2")), 0)


@register_layer_formula(L.Normalization)
def normalization(call: LayerCall) -> LayerCount:
    """(x - mean) / max(sqrt(var), eps): Sub, RealDiv per element."""
    return elementwise(call, elementwise_ops_flops(("Sub", "RealDiv")), 0)


@register_layer_formula(L.UpSampling2D)
def upsampling_2d(call: LayerCall) -> LayerCount:
    """nearest: 0 (copies); bilinear: ResizeBilinear, 9 per output element."""
    interpolation = call.config.get("interpolation", "nearest")
    if interpolation == "nearest":
        return LayerCount(flops=0)
    if interpolation != "bilinear":
        raise NotCounted(f"UpSampling2D with {interpolation} interpolation")
    return LayerCount(flops=op_flops("ResizeBilinear", [call.input_shape], [call.output_shape]))


@register_layer_formula(L.Embedding)
def embedding(call: LayerCall) -> LayerCount:
    """0: a table lookup; backward: the scatter-add of the gradient rows (1 per output element)."""
    return LayerCount(flops=0, backward_flops=elements(call.output_shape) if call.train and call.trains_weights else 0)


declare_zero_layers("InputLayer", "Reshape", "Flatten", "Permute", "RepeatVector", "Concatenate", "Identity",
                    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
                    "UpSampling1D", "UpSampling3D", reason="moves or copies data")
declare_zero_layers("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                    "GaussianDropout", "AlphaDropout", "ActivityRegularization",
                    reason="identity at inference; its training-time mask is not counted")
declare_zero_layers("GetItem", "Transpose", "ExpandDims", "Squeeze", "Stack", "Slice", "Cast", "Split", "Tile",
                    "BroadcastTo", reason="moves or copies data (a keras.ops operation of a functional graph)")
