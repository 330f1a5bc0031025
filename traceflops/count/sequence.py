"""Formulas of the Keras layers that hold sublayers or loop: attention, recurrent layers and wrappers.

MultiHeadAttention and Attention are counted in full (QK^T and AV over every
query-key pair), with the causal figure (the pairs a causal mask keeps) beside
it when called with `use_causal_mask=True`. Recurrent layers (SimpleRNN, LSTM,
GRU, or `keras.layers.RNN` of their cells) count their cell's matmuls and gate
arithmetic at every timestep, whether or not they return sequences.
Bidirectional and TimeDistributed count their inner layers as rows of their own
(`outer/inner`).
"""
from __future__ import annotations

import math

import keras

from .activations import activation_cost
from .formulas import LayerCall, LayerCount, NotCounted, elementwise_ops_flops, elements, register_layer_formula
from .layers import contraction, softmax_flops

L = keras.layers


def causal_pairs(queries: int, keys: int) -> int:
    """Query-key pairs a causal (lower-triangular) mask keeps: query i sees keys 0..i."""
    return sum(min(i + 1, keys) for i in range(queries))


def projection_macs(layer, input_shape, contracted: int) -> int:
    """An EinsumDense projection: every input position (the last `contracted` dims folded into the kernel)
    times every kernel element."""
    return elements(input_shape[:len(input_shape) - contracted]) * math.prod(tuple(layer.kernel.shape))


def attention_core(call: LayerCall, heads_batch: int, queries: int, keys: int, key_dim: int, value_dim: int,
                   scaled: bool) -> tuple:
    """(forward MACs, FLOPs, causal MACs, causal FLOPs, backward FLOPs) of scores, softmax and context."""
    def work(pairs):
        macs = heads_batch * pairs * (key_dim + value_dim)
        scores = heads_batch * pairs
        flops = 2 * macs + softmax_flops(scores) + (scores if scaled else 0)
        return macs, flops
    macs, flops = work(queries * keys)
    causal = work(causal_pairs(queries, keys)) if call.kwargs.get("use_causal_mask") else (None, None)
    backward = 0
    if call.needs_backward:  # both operands of each matmul need their gradient; softmax twice forward
        backward = 2 * (2 * macs) + 2 * (flops - 2 * macs)
    return macs, flops, causal[0], causal[1], backward


def split_axes(shape, axes) -> tuple:
    """(positions outside the attention axes, positions along them) of a [batch, ..., features] shape."""
    inner = shape[1:-1]
    axes = [a % len(shape) - 1 for a in axes] if axes is not None else list(range(len(inner)))
    along = elements([inner[a] for a in axes])
    return shape[0] * elements(inner) // along, along


@register_layer_formula(L.MultiHeadAttention)
def multi_head_attention(call: LayerCall) -> LayerCount:
    """Q, K, V and output projections (EinsumDense) + QK^T and AV per head over all pairs + softmax and
    the 1/sqrt(key_dim) scale per score; biases per projection output element."""
    layer = call.layer
    query = call.inputs[0]
    value = call.kwargs.get("value") or (call.inputs[1] if len(call.inputs) > 1 else query)
    key = call.kwargs.get("key") or (call.inputs[2] if len(call.inputs) > 2 else value)
    cfg = call.config
    heads, key_dim = cfg["num_heads"], cfg["key_dim"]
    value_dim = cfg.get("value_dim") or key_dim
    rest, queries = split_axes(query, cfg.get("attention_axes"))
    _, keys = split_axes(key, cfg.get("attention_axes"))
    dense = [(layer.query_dense, query, 1), (layer.key_dense, key, 1), (layer.value_dense, value, 1)]
    projected = [projection_macs(d, shape, n) for d, shape, n in dense]
    out_input = (*query[:-1], heads, value_dim)
    output_macs = projection_macs(layer.output_dense, out_input, 2)
    bias = 0
    if cfg.get("use_bias", True):
        bias = heads * (elements(query[:-1]) * key_dim + elements(key[:-1]) * key_dim
                        + elements(value[:-1]) * value_dim) + elements(call.output_shape)
    macs, flops, causal_macs, causal_flops, core_backward = attention_core(
        call, rest * heads, queries, keys, key_dim, value_dim, scaled=True)
    projection = sum(projected) + output_macs
    bias_size = sum(math.prod(tuple(d.bias.shape)) for d, _, _ in dense + [(layer.output_dense, 0, 0)]
                    if getattr(d, "bias", None) is not None)
    count = contraction(call, projection, bias, bias_size=bias_size)
    if call.needs_backward:  # the output projection always needs its input gradient (it reads V)
        weights = int(call.trains_weights)
        backward_macs = sum(projected) * (weights + int(call.input_needs_grad)) + output_macs * (weights + 1)
        count.backward_flops += 2 * (backward_macs - count.backward_macs) + core_backward
        count.backward_macs = backward_macs + 2 * macs
    count.macs += macs
    count.flops += flops
    if causal_macs is not None:
        count.causal_macs = projection + causal_macs
        count.causal_flops = count.flops - flops + causal_flops
    return count


@register_layer_formula(L.Attention)
def dot_attention(call: LayerCall) -> LayerCount:
    """Luong dot-product attention: QK^T and AV over all pairs, softmax, the scale when use_scale."""
    cfg = call.config
    if cfg.get("score_mode", "dot") != "dot":
        raise NotCounted(f"Attention with score_mode={cfg.get('score_mode')!r}")
    query, value = call.inputs[0], call.inputs[1]
    macs, flops, causal_macs, causal_flops, backward = attention_core(
        call, query[0], query[1], value[1], query[-1], value[-1], scaled=bool(cfg.get("use_scale")))
    backward_macs = 2 * macs if call.needs_backward else None
    return LayerCount(flops=flops, macs=macs, causal_flops=causal_flops, causal_macs=causal_macs,
                      backward_flops=backward, backward_macs=backward_macs)


def cell_step(cell, features: int) -> tuple:
    """(MACs, elementwise FLOPs) per sample and timestep of a SimpleRNN, LSTM or GRU cell."""
    units, bias = cell.units, cell.use_bias
    act = activation_cost(cell.activation, 1)[0]
    add, mul, sub = (elementwise_ops_flops((op,)) for op in ("AddV2", "Mul", "Sub"))
    if isinstance(cell, L.SimpleRNNCell):  # h = act(x W + b + h U)
        return units * (features + units), units * ((add if bias else 0) + add + act)
    gate = activation_cost(cell.recurrent_activation, 1)[0]
    if isinstance(cell, L.LSTMCell):  # z = xW + hU + b; i, f, o = gate(z); c = f*c + i*act(z); h = o*act(c)
        per_unit = 4 * add + (4 * add if bias else 0) + 3 * gate + act + 2 * mul + add + act + mul
        return 4 * units * (features + units), units * per_unit
    if isinstance(cell, L.GRUCell):  # z, r = gate(x + h); hh = act(x_h + r*(h U_h)); h = z*h + (1-z)*hh
        after = bool(cell.reset_after)
        biases = (3 + (3 if after else 0)) * add if bias else 0
        per_unit = biases + 2 * (add + gate) + mul + add + act + mul + sub + mul + add
        return 3 * units * (features + units), units * per_unit
    raise NotCounted(f"recurrent cell {type(cell).__name__}")


@register_layer_formula(L.RNN)
def recurrent(call: LayerCall) -> LayerCount:
    """The cell's matmuls (x W and h U) and gate arithmetic per sample and timestep (every timestep)."""
    x = call.input_shape
    if len(x) != 3:
        raise NotCounted(f"recurrent input of rank {len(x)}")
    batch, steps, features = x
    if steps is None:
        raise NotCounted("the number of timesteps is unknown: give it with --input-shape")
    cell = call.layer.cell
    macs_step, elementwise_step = cell_step(cell, features)
    macs = batch * steps * macs_step
    forward = 2 * macs + batch * steps * elementwise_step
    count = LayerCount(flops=forward, macs=macs)
    if call.needs_backward:  # x W: weights + input (if needed); h U: weights + input (h depends on W)
        units = cell.units
        input_macs = batch * steps * (macs_step - macs_step * units // (features + units))
        recurrent_macs = macs - input_macs
        weights = int(call.trains_weights)
        backward_macs = input_macs * (weights + int(call.input_needs_grad)) + recurrent_macs * (weights + 1)
        count.backward_macs = backward_macs
        count.backward_flops = 2 * backward_macs + 2 * batch * steps * elementwise_step
    return count


def first_shape(shape) -> tuple:
    """A compute_output_shape result's first shape (recurrent layers with return_state give several)."""
    shape = tuple(shape) if not isinstance(shape, list) else shape
    if shape and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def inner_call(call: LayerCall, layer, input_shape) -> LayerCall:
    output = first_shape(layer.compute_output_shape(tuple(input_shape)))
    return LayerCall(layer, [tuple(input_shape)], [output], {}, call.train, call.input_needs_grad)


@register_layer_formula(L.Bidirectional)
def bidirectional(call: LayerCall) -> LayerCount:
    """The forward and backward layers as rows of their own; here, the merge (sum, mul: 1 per output
    element; ave: add and divide, 2; concat and None: 0)."""
    layer, x = call.layer, call.input_shape
    mode = call.config.get("merge_mode", "concat")
    per = {"sum": ("AddV2",), "mul": ("Mul",), "ave": ("AddV2", "RealDiv")}.get(mode, ())
    merge = elementwise_ops_flops(per) * elements(call.output_shape) if per else 0
    children = [(inner.name, inner_call(call, inner, x)) for inner in (layer.forward_layer, layer.backward_layer)]
    backward = merge if call.needs_backward else 0
    return LayerCount(flops=merge, backward_flops=backward, children=children)


@register_layer_formula(L.TimeDistributed)
def time_distributed(call: LayerCall) -> LayerCount:
    """The inner layer on batch x timesteps samples, as a row of its own."""
    x = call.input_shape
    inner = call.layer.layer
    return LayerCount(flops=0, children=[(inner.name, inner_call(call, inner, (x[0] * x[1], *x[2:])))])
