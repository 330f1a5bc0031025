"""Cost formulas of the ops a training step runs: gradients, losses, optimizer updates.

Conventions as everywhere (costs/__init__.py): one multiply-add is 2 FLOPs,
`macs` only for contractions, a transcendental (exp, sqrt...) is 1 FLOP,
per-step scalar arithmetic of an update (bias corrections) is not counted.

The textbook rule for contraction gradients: a layer computing Y = X (*) W
with M MACs has a weight gradient dW = X^T (*) dY and an input gradient
dX = dY (*) W^T of M MACs each. TensorFlow runs them as
Conv2DBackpropFilter / Conv2DBackpropInput (priced in costs/__init__.py) and,
for matmul and einsum layers, as ordinary MatMul / BatchMatMulV2 / Einsum ops
with transpose attributes, which the forward formulas already price.

Integer ops of stateless dropout and random number generation (BitwiseAnd,
shifts...) are counted as 1 operation per element: they are real ALU work on
the data path, and the dtype column says they are integer.
"""
from __future__ import annotations

import math

from ..ops import OpInfo
from .registry import register, register_elementwise


# ---------------------------------------------------------------- convolution gradients

@register("Conv2DBackpropFilter", "Conv3DBackpropFilter", "Conv3DBackpropFilterV2",
          "Conv2DBackpropFilterWithBias", family="conv")
def conv_backprop_filter(op: OpInfo):
    """Weight gradient of a convolution = its forward MACs.

    dW[kh,kw,ci,co] = sum over (n, output position) of x[window] * dY[n,pos,co]:
    one MAC per output-gradient element (input 2, [N,...,C_out]) per kernel
    tap (filter dims[:-2]) per input channel of its group (filter dims[-2],
    C_in/groups); the filter shape is the op's output. Strides and dilations
    change which x each tap reads, not how many MACs there are.
    `...WithBias` (oneDNN) also sums dY for the bias: elements - C_out adds.
    """
    filt, grad = op.output(0), op.input(2)
    if filt is None or grad is None or filt.rank < 3:
        return None
    macs = grad.num_elements * math.prod(filt.dims[:-2]) * filt.dims[-2]
    extra = grad.num_elements - filt.dims[-1] if "WithBias" in op.op_type else 0
    return 2 * macs + extra, macs


@register("DepthwiseConv2dNativeBackpropFilter", family="conv")
def depthwise_backprop_filter(op: OpInfo):
    """Weight gradient of a depthwise convolution = its forward MACs.

    Filter [kh, kw, C, multiplier]: every output-gradient element (input 2,
    [N, H, W, C*multiplier]) meets one kh*kw window of one input channel.
    """
    filt, grad = op.output(0), op.input(2)
    if filt is None or grad is None or filt.rank != 4:
        return None
    macs = grad.num_elements * filt.dims[0] * filt.dims[1]
    return 2 * macs, macs


# ---------------------------------------------------------------- pooling gradients

def _window(op: OpInfo):
    ksize = op.attrs.get("ksize")
    return math.prod(ksize) if ksize else None


@register("MaxPoolGrad", "MaxPool3DGrad", family="pooling")
def max_pool_grad(op: OpInfo):
    """MaxPoolGrad(orig_input, orig_output, grad): per pooled element, (window - 1)
    comparisons to find the max again and 1 add of its gradient into the input
    position: `window` per gradient element (input 2)."""
    grad, window = op.input(2), _window(op)
    if grad is None or window is None:
        return None
    return window * grad.num_elements, None


@register("AvgPoolGrad", "AvgPool3DGrad", family="pooling")
def avg_pool_grad(op: OpInfo):
    """AvgPoolGrad(orig_input_shape, grad): each pooled gradient is divided by the
    window size (1) and added to every input of its window (window): window + 1
    per gradient element (input 1)."""
    grad, window = op.input(1), _window(op)
    if grad is None or window is None:
        return None
    return (window + 1) * grad.num_elements, None


# ---------------------------------------------------------------- normalization and bias gradients

@register("FusedBatchNormGrad", "FusedBatchNormGradV2", "FusedBatchNormGradV3", family="normalization")
def batch_norm_grad(op: OpInfo):
    """FusedBatchNormGrad(dy, x, scale, saved mean, saved inv-std...), per element of x:

    training: x_hat = (x - mean) * inv (2), dy * x_hat (1), the two channel sums
    of dy and dy*x_hat (2), dx = scale*inv * (dy - mean(dy) - x_hat*mean(dy x_hat))
    (mul, sub, sub, mul: 4) = 9; per channel: the means (2) and scale*inv (1) = 3.
    inference (is_training false): x_hat (2), dy*x_hat (1), two sums (2),
    dx = dy * scale*inv (1) = 6; per channel: rsqrt(var+eps) (2), scale*inv (1) = 3.
    """
    x = op.input(1)
    if x is None or not x.rank:
        return None
    fmt = op.attrs.get("data_format") or ""
    channels = x.dims[1] if fmt.startswith("NC") else x.dims[-1]
    per_element = 9 if op.attrs.get("is_training", True) else 6
    return per_element * x.num_elements + 3 * channels, None


@register("BiasAddGrad", family="reduction")
def bias_add_grad(op: OpInfo):
    """Sum of the gradient over every axis but the channel: input elements - channels adds."""
    grad, out = op.input(0), op.output(0)
    if grad is None or out is None:
        return None
    return grad.num_elements - out.num_elements, None


# ---------------------------------------------------------------- activation gradients (per element)

# f'(x) applied to the incoming gradient dy, from TF's cwise_ops_gradients / relu_op functors:
_ACTIVATION_GRADS = {
    "ReluGrad": 1,        # features > 0 ? dy : 0 (select)
    "Relu6Grad": 2,       # 0 < features < 6 ? dy : 0 (two compares)
    "LeakyReluGrad": 2,   # features > 0 ? dy : alpha*dy (compare, mul)
    "EluGrad": 3,         # outputs > 0 ? dy : dy*(outputs+1) (compare, add, mul)
    "SeluGrad": 3,        # outputs > 0 ? dy*scale : dy*(outputs+scale*alpha) (compare, add, mul)
    "SigmoidGrad": 3,     # dy * y * (1 - y)
    "TanhGrad": 3,        # dy * (1 - y*y)
    "RsqrtGrad": 4,       # dy * -0.5 * y^3 (y*y*y: 2, two muls)
    "SqrtGrad": 2,        # dy * 0.5 / y
    "ReciprocalGrad": 3,  # -dy * y * y
    "InvGrad": 3,
    "SoftplusGrad": 5,    # dy * sigmoid(x): neg, exp, add, div (4), mul
    "SoftsignGrad": 4,    # dy / (1 + |x|)^2: abs, add, square, div
}
for _op_type, _per in _ACTIVATION_GRADS.items():
    register_elementwise(_op_type, _per)

# Integer bit operations (stateless dropout, hashing): 1 operation per element (module docstring).
for _op_type in ("BitwiseAnd", "BitwiseOr", "BitwiseXor", "Invert", "LeftShift", "RightShift"):
    register_elementwise(_op_type, 1)


# ---------------------------------------------------------------- losses

@register("SoftmaxCrossEntropyWithLogits", family="softmax")
def softmax_cross_entropy(op: OpInfo):
    """(logits [B,C], labels [B,C]) -> loss [B], backprop [B,C], per logit element:
    log-softmax (max, sub, exp, sum, sub: 5), loss -sum(labels*logp) (mul, sum: 2),
    backprop softmax - labels (div, sub: 2) = 9."""
    logits = op.input(0)
    if logits is None:
        return None
    return 9 * logits.num_elements, None


@register("SparseSoftmaxCrossEntropyWithLogits", family="softmax")
def sparse_softmax_cross_entropy(op: OpInfo):
    """(logits [B,C], class indices [B]): log-softmax (5 per element), backprop
    softmax (1 per element) minus 1 at the label (1 per row), loss -logp[label] (1 per row)."""
    logits = op.input(0)
    if logits is None or not logits.rank:
        return None
    rows = logits.num_elements // max(logits.dims[-1], 1)
    return 6 * logits.num_elements + 2 * rows, None


# ---------------------------------------------------------------- gradient accumulation (embeddings)

@register("UnsortedSegmentSum", "UnsortedSegmentMax", "UnsortedSegmentMin", "UnsortedSegmentProd",
          "SegmentSum", "SegmentMax", "SegmentMin", "SegmentProd", family="reduction")
def segment_reduce(op: OpInfo):
    """Each data row is combined into its segment's row: 1 operation per data element.

    UnsortedSegmentSum is how an embedding's gradient (IndexedSlices of the
    looked-up rows) becomes a dense [vocabulary, dim] gradient.
    """
    data = op.input(0)
    if data is None:
        return None
    return data.num_elements, None


# ---------------------------------------------------------------- variable updates and optimizers

@register("AssignAddVariableOp", "AssignSubVariableOp", family="elementwise")
def variable_update(op: OpInfo):
    """var += value / var -= value: 1 FLOP per element of the value (input 1; input 0 is the handle)."""
    value = op.input(1)
    if value is None:
        return None
    return value.num_elements, None


# FLOPs per updated element, from TF's training_ops.cc functors (scalar factors such as
# Adam's lr*sqrt(1-beta2^t)/(1-beta1^t) are computed once per step and not counted):
_APPLY_FLOPS = {
    "GradientDescent": 2,       # var -= lr * delta
    "Momentum": 4,              # accum = accum*momentum + grad (2); var -= lr*accum (2)
    "KerasMomentum": 4,         # accum = accum*momentum - grad*lr (3); var += accum (1)
    "Adam": 12,                 # m += (g-m)(1-b1) (3); v += (g^2-v)(1-b2) (4); var -= a*m/(sqrt(v)+eps) (5)
    "AdamWithAmsgrad": 13,      # Adam + vhat = max(vhat, v) (1), vhat in the denominator
    "RMSProp": 11,              # ms += (g^2-ms)(1-rho) (4); mom = mom*mu + lr*g/sqrt(ms+eps) (6); var -= mom
    "CenteredRMSProp": 16,      # RMSProp + mg += (g-mg)(1-rho) (3), denominator ms - mg^2 (+2)
    "Adagrad": 6,               # accum += g^2 (2); var -= lr*g/sqrt(accum) (4)
    "AdagradV2": 7,             # Adagrad with + epsilon in the denominator
    "Adadelta": 16,             # accum (4); update = sqrt(au+eps)/sqrt(accum+eps)*g (6); au (4); var -= lr*u (2)
    "AdaMax": 10,               # m (3); v = max(b2*v, |g|) (3); var -= lr_t * m/(v+eps) (4)
    "ProximalGradientDescent": 6,  # prox = var - lr*g (2); sign(prox)*max(|prox|-lr*l1, 0)/(1+lr*l2) (4)
    "PowerSign": 7,             # m (3); var -= lr * exp(logbase*sign_decay*sign(g)*sign(m)) * g (4+)
    "AddSign": 7,               # m (3); var -= lr * (alpha + sign_decay*sign(g)*sign(m)) * g (4+)
}
# Nesterov variants (attribute use_nesterov) do more per element:
_NESTEROV_FLOPS = {"Momentum": 7, "KerasMomentum": 7, "Adam": 15}


def _apply_kind(op_type: str) -> str:
    name = op_type.lstrip("_").replace("MklNative", "").replace("Mkl", "")
    return name.replace("Resource", "", 1).replace("Apply", "", 1)


@register(*[prefix + kind for kind in _APPLY_FLOPS for prefix in ("ResourceApply", "Apply")], family="optimizer")
def apply_update(op: OpInfo):
    """A fused optimizer update: its per-element FLOPs (table above) x the gradient's elements.

    The gradient is the only full-size tensor input (variables and slots come
    in as resource handles, hyper-parameters as scalars), so the largest known
    input gives the element count.
    """
    kind = _apply_kind(op.op_type)
    sizes = [t.num_elements for t in op.inputs if t is not None and t.known]
    if not sizes or kind not in _APPLY_FLOPS:
        return None
    per = _NESTEROV_FLOPS.get(kind, _APPLY_FLOPS[kind]) if op.attrs.get("use_nesterov") else _APPLY_FLOPS[kind]
    return per * max(sizes), None
