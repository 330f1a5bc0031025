"""Stage 4: analytic FLOP, MAC and byte counts per op, as a registry of small formulas.

Conventions (docs/formulas.md has the full table):
* one fused multiply-add is 2 FLOPs; `macs` is reported for contraction ops
  (matmul, convolution, einsum families) and is None for every other op;
* bytes = sum of input and output tensor sizes at their dtypes;
* an op type with no formula is `unknown` (flops None), never a silent 0;
  ops that only move or reinterpret data are declared `zero` with bytes;
* without the executed graph (a trace recorded elsewhere) attributes are
  unknown: formulas infer what the shapes determine (matmul transposes from
  which dimensions agree) and the count's source is `shapes`, with a note
  saying what was inferred; what shapes cannot determine stays unknown.

Each formula takes an `OpInfo` (type, attributes, input and output tensors)
and returns `(flops, macs)`; it returns None when the shapes it needs are
missing, which makes the count unknown.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Optional

from ..graph.shapes import FLOAT_DTYPES, TensorSpec, total_bytes

FORMULA, ZERO, UNKNOWN, SHAPES = "formula", "zero", "unknown", "shapes"


@dataclass
class OpInfo:
    op_type: str
    inputs: list  # TensorSpec or None (resource handles, unknown)
    outputs: list
    attrs: dict = field(default_factory=dict)
    attrs_known: bool = True  # False when no executed graph gave the node's attributes
    inferred: list = field(default_factory=list)  # what a formula had to infer, for the note

    def input(self, index: int) -> Optional[TensorSpec]:
        if index < len(self.inputs) and self.inputs[index] is not None and self.inputs[index].known:
            return self.inputs[index]
        return None

    def output(self, index: int = 0) -> Optional[TensorSpec]:
        if index < len(self.outputs) and self.outputs[index] is not None and self.outputs[index].known:
            return self.outputs[index]
        return None


@dataclass
class Cost:
    flops: Optional[int]
    macs: Optional[int]
    bytes: Optional[int]
    source: str
    dtype: str = ""
    note: str = ""


FORMULAS: dict = {}
ZERO_OPS: dict = {}


def register(*op_types: str):
    """Register one formula under several op types (the plain op and its variants)."""
    def wrap(fn: Callable):
        for op_type in op_types:
            FORMULAS[op_type] = fn
        return fn
    return wrap


def mkl(*names: str) -> list:
    """An op type with its oneDNN spellings: Conv2D, _MklConv2D, _MklNativeConv2D."""
    out = []
    for name in names:
        base = name.lstrip("_")
        out += [name, f"_Mkl{base}", f"_MklNative{base}"]
    return out


# ---------------------------------------------------------------- elementwise

# FLOPs per output element for elementwise ops and fused epilogues. A
# transcendental (exp, log, tanh, erf, rsqrt...) counts as one FLOP.
ELEMENTWISE_FLOPS = {
    # binary arithmetic and comparisons
    "Add": 1, "AddV2": 1, "Sub": 1, "Mul": 1, "RealDiv": 1, "Div": 1, "DivNoNan": 1, "FloorDiv": 1,
    "FloorMod": 1, "Mod": 1, "Maximum": 1, "Minimum": 1, "Pow": 1, "SquaredDifference": 2,
    "MulNoNan": 1, "Atan2": 1, "BiasAdd": 1, "BiasAddV1": 1,
    "Greater": 1, "GreaterEqual": 1, "Less": 1, "LessEqual": 1, "Equal": 1, "NotEqual": 1,
    "LogicalAnd": 1, "LogicalOr": 1, "LogicalNot": 1,
    # unary arithmetic and transcendentals
    "Neg": 1, "Abs": 1, "Square": 1, "Sqrt": 1, "Rsqrt": 1, "Reciprocal": 1, "Inv": 1, "Exp": 1,
    "Expm1": 1, "Log": 1, "Log1p": 1, "Sin": 1, "Cos": 1, "Tan": 1, "Tanh": 1, "Erf": 1, "Erfc": 1,
    "Floor": 1, "Ceil": 1, "Round": 1, "Rint": 1, "Sign": 1, "IsNan": 1, "IsFinite": 1, "Asin": 1,
    "Acos": 1, "Atan": 1, "Sinh": 1, "Cosh": 1, "Asinh": 1, "Acosh": 1, "Atanh": 1,
    # activations: max(x,0) is 1; relu6 min(max(x,0),6) is 2; sigmoid 1/(1+exp(-x)) is
    # neg, exp, add, div = 4; elu is exp, sub, compare-select = 3; selu adds 2 multiplies;
    # leaky relu is mul then max = 2; softplus log(1+exp(x)) = 3; softsign x/(1+|x|) = 3;
    # swish x*sigmoid(x) = 5; mish x*tanh(softplus(x)) = 5.
    "Relu": 1, "Relu6": 2, "Sigmoid": 4, "Elu": 3, "Selu": 5, "LeakyRelu": 2, "Softplus": 3,
    "Softsign": 3, "Swish": 5, "_MklSwish": 5, "Mish": 5, "_FusedMish": 5,
    # gelu exact 0.5*x*(1+erf(x/sqrt2)): div, erf, add, mul, mul = 5;
    # gelu tanh 0.5*x*(1+tanh(c*(x+0.044715*x^3))): x^3 (2), mul, add, mul, tanh, add, mul, mul = 9.
    "GeluExact": 5, "GeluApproximate": 9, "Gelu": 5,
    # a*x+b*y style blends
    "Select": 1, "SelectV2": 1, "ClipByValue": 2, "AddN": None,  # AddN handled below
}
# Fused-epilogue spellings in `fused_ops` that differ from an op type.
_EPILOGUE_ALIASES = {"BiasAdd": "BiasAdd", "Relu": "Relu", "Relu6": "Relu6", "Elu": "Elu",
                     "LeakyRelu": "LeakyRelu", "Tanh": "Tanh", "Sigmoid": "Sigmoid",
                     "GeluApproximate": "GeluApproximate", "GeluExact": "GeluExact", "Add": "Add",
                     "AddV2": "AddV2", "Mul": "Mul", "_FusedHardSwish": "Swish", "_MklSwish": "Swish",
                     "Swish": "Swish", "Mish": "Mish", "_FusedMish": "Mish"}


def _output_or_broadcast(op: OpInfo) -> Optional[TensorSpec]:
    out = op.output(0)
    if out is not None:
        return out
    tensors = [t for t in op.inputs if t is not None]
    if not tensors or not all(t.known for t in tensors):
        return None
    rank = max(t.rank for t in tensors)
    dims = []
    for axis in range(rank):
        sizes = [t.dims[axis - rank + t.rank] for t in tensors if axis - rank + t.rank >= 0]
        dims.append(max(sizes))
    return TensorSpec(tensors[0].dtype, tuple(dims))


def _elementwise(op: OpInfo):
    per_element = ELEMENTWISE_FLOPS[op.op_type]
    out = _output_or_broadcast(op)
    if out is None:
        return None
    return per_element * out.num_elements, None


for _name, _per in ELEMENTWISE_FLOPS.items():
    if _per is not None:
        FORMULAS[_name] = _elementwise
        FORMULAS.setdefault(f"_Mkl{_name.lstrip('_')}", _elementwise)


@register("AddN", "_MklAddN")
def addn(op: OpInfo):
    """n inputs summed: n-1 adds per output element."""
    out = _output_or_broadcast(op)
    if out is None:
        return None
    return (len([t for t in op.inputs if t is not None]) - 1) * out.num_elements, None


def _epilogue_flops(op: OpInfo, elements: int) -> Optional[int]:
    """FLOPs of the ops fused after a contraction, per `fused_ops`, on its output elements."""
    if not op.attrs_known and op.op_type.replace("_MklNative", "_").replace("_Mkl", "_").startswith("_Fused"):
        op.inferred.append("fused_ops not in the trace: FLOPs count the contraction only (a lower bound)")
        return 0
    total = 0
    for name in op.attrs.get("fused_ops") or []:
        if name in ("FusedBatchNorm", "FusedBatchNormV3", "_FusedBatchNormEx"):
            total += 2 * elements  # folded inference batch norm: x*scale' + offset'
            continue
        canonical = _EPILOGUE_ALIASES.get(name, name)
        per = ELEMENTWISE_FLOPS.get(canonical)
        if per is None:
            return None  # an epilogue we cannot count makes the whole op unknown
        total += per * elements
    return total


# ---------------------------------------------------------------- contractions

def _matmul_dims(a: TensorSpec, b: TensorSpec, transpose_a: bool, transpose_b: bool):
    m, k = (a.dims[-1], a.dims[-2]) if transpose_a else (a.dims[-2], a.dims[-1])
    k2, n = (b.dims[-1], b.dims[-2]) if transpose_b else (b.dims[-2], b.dims[-1])
    if k != k2:
        return None
    return m, n, k


def _transposes(op: OpInfo, a: TensorSpec, b: TensorSpec, names: tuple):
    """The transpose flags: from the attributes, or, without them, from which dimensions agree.

    Returns None when the shapes leave it ambiguous in a way that changes the count.
    """
    if op.attrs_known:
        return bool(op.attrs.get(names[0])), bool(op.attrs.get(names[1]))
    counts = {}
    for flags in ((False, False), (False, True), (True, False), (True, True)):
        dims = _matmul_dims(a, b, *flags)
        if dims is not None:
            counts.setdefault(math.prod(dims), flags)
    if len(counts) != 1:
        return None
    flags = next(iter(counts.values()))
    op.inferred.append(f"{names[0]}/{names[1]} inferred from the shapes as {flags[0]}/{flags[1]}")
    return flags


def _contraction(op: OpInfo, macs: int, output_elements: int):
    epilogue = _epilogue_flops(op, output_elements)
    if epilogue is None:
        return None
    return 2 * macs + epilogue, macs


@register(*mkl("MatMul", "_FusedMatMul"), "_MklNativeFusedMatMul", "_MklFusedMatMul")
def matmul(op: OpInfo):
    """[M,K] x [K,N]: M*N*K MACs (transposes from transpose_a/b)."""
    a, b = op.input(0), op.input(1)
    if a is None or b is None:
        return None
    flags = _transposes(op, a, b, ("transpose_a", "transpose_b"))
    dims = None if flags is None else _matmul_dims(a, b, *flags)
    if dims is None:
        return None
    m, n, k = dims
    return _contraction(op, m * n * k, m * n)


@register(*mkl("BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "_FusedBatchMatMulV2"),
          "_MklFusedBatchMatMulV2")
def batch_matmul(op: OpInfo):
    """[..., M, K] x [..., K, N] with broadcast batch dims: batch*M*N*K MACs."""
    a, b = op.input(0), op.input(1)
    if a is None or b is None:
        return None
    flags = _transposes(op, a, b, ("adj_x", "adj_y"))
    dims = None if flags is None else _matmul_dims(a, b, *flags)
    if dims is None:
        return None
    m, n, k = dims
    batch_a, batch_b = a.dims[:-2], b.dims[:-2]
    rank = max(len(batch_a), len(batch_b))
    batch = 1
    for axis in range(rank):
        sizes = [s[axis - rank + len(s)] for s in (batch_a, batch_b) if axis - rank + len(s) >= 0]
        batch *= max(sizes)
    return _contraction(op, batch * m * n * k, batch * m * n)


def _ellipsis_labels(count: int) -> str:
    """Labels for `count` ellipsis dims, named by distance from the right so they broadcast."""
    return "".join(chr(0x100 + count - 1 - i) for i in range(count))


def _einsum_labels(equation: str, tensors: list):
    """Each label's size, each operand's labels, and the output's labels; '...' expanded."""
    lhs, arrow, rhs = equation.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != len(tensors):
        return None
    sizes, expanded, most = {}, [], 0
    for term, tensor in zip(terms, tensors):
        if "..." in term:
            count = tensor.rank - (len(term) - 3)
            most = max(most, count)
            term = term.replace("...", _ellipsis_labels(count))
        if len(term) != tensor.rank:
            return None
        for label, size in zip(term, tensor.dims):
            sizes[label] = max(sizes.get(label, 1), size)
        expanded.append(term)
    if not arrow:  # implicit output: labels seen once, alphabetical
        rhs = "".join(sorted(c for c in sizes if "".join(expanded).count(c) == 1))
    rhs = rhs.replace("...", _ellipsis_labels(most))
    return sizes, expanded, rhs


@register(*mkl("Einsum"))
def einsum(op: OpInfo):
    """Two operands: product of every label's size MACs; one operand: a reduction or a transpose."""
    equation = op.attrs.get("equation")
    tensors = [op.input(i) for i in range(len(op.inputs))]
    if not equation or any(t is None for t in tensors) or not tensors:
        return None
    parsed = _einsum_labels(equation, tensors)
    if parsed is None:
        return None
    sizes, terms, rhs = parsed
    volume = math.prod(sizes.values())
    out_elements = math.prod(sizes[c] for c in rhs) if rhs else 1
    if len(terms) == 1:
        return max(volume - out_elements, 0), None  # summed labels: one add per extra element
    if len(terms) == 2:
        return 2 * volume, volume
    return None


def _conv_output(op: OpInfo) -> Optional[TensorSpec]:
    return op.output(0)


def _channels_axis(op: OpInfo, rank: int) -> int:
    fmt = op.attrs.get("data_format") or ""
    return 1 if fmt.startswith("NC") else rank - 1


@register(*mkl("Conv2D", "Conv3D", "Conv", "_FusedConv2D", "_FusedConv3D"),
          "_MklNativeFusedConv2D", "_MklFusedConv2D", "_MklNativeFusedConv3D", "_MklFusedConv3D",
          "_MklNativePadWithConv2D", "_MklPadWithConv2D", "_MklNativePadWithFusedConv2D",
          "_MklPadWithFusedConv2D", "_MklConv2DWithBias", "_MklNativeConv2DWithBias")
def conv(op: OpInfo):
    """MACs = output elements x kernel spatial volume x input channels per group."""
    filt, out = op.input(1), _conv_output(op)
    if filt is None or out is None:
        return None
    kernel_volume = math.prod(filt.dims[:-2])
    in_channels_per_group = filt.dims[-2]
    macs = out.num_elements * kernel_volume * in_channels_per_group
    return _contraction(op, macs, out.num_elements)


@register(*mkl("DepthwiseConv2dNative", "_FusedDepthwiseConv2dNative"),
          "_MklNativeFusedDepthwiseConv2dNative", "_MklFusedDepthwiseConv2dNative",
          "_MklDepthwiseConv2dNative")
def depthwise_conv(op: OpInfo):
    """Filter [kh, kw, C, multiplier]: every output element is one kh*kw window: out x kh x kw MACs."""
    filt, out = op.input(1), _conv_output(op)
    if filt is None or out is None:
        return None
    macs = out.num_elements * filt.dims[0] * filt.dims[1]
    return _contraction(op, macs, out.num_elements)


@register(*mkl("Conv2DBackpropInput", "Conv3DBackpropInputV2", "Conv3DBackpropInput",
               "DepthwiseConv2dNativeBackpropInput"))
def conv_transpose(op: OpInfo):
    """Transposed conv: input (out_backprop) elements x kernel volume x output channels per group.

    Conv2DBackpropInput(input_sizes, filter [kh,kw,C_out,C_in], out_backprop
    [N,H,W,C_in]) produces [N,H',W',C_out]: each input element scatters into a
    kh*kw window for each of C_out channels (filter dim -2).
    """
    filt, grad = op.input(1), op.input(2)
    if filt is None or grad is None:
        return None
    if op.op_type.lstrip("_").replace("MklNative", "").replace("Mkl", "").startswith("Depthwise"):
        macs = grad.num_elements * filt.dims[0] * filt.dims[1]
    else:
        macs = grad.num_elements * math.prod(filt.dims[:-2]) * filt.dims[-2]
    return 2 * macs, macs


# ---------------------------------------------------------------- normalization, softmax, pooling

@register(*mkl("FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "_FusedBatchNormEx"))
def batch_norm(op: OpInfo):
    """Inference: scale' = scale*rsqrt(var+eps) and offset' = offset-mean*scale' per channel
    (add, rsqrt, mul, mul, sub = 5 per channel), then y = x*scale'+offset' (2 per element);
    a fused side input adds 1 and a fused activation its own cost per element.
    Training (is_training) also computes mean and variance: +3 per element (sum, sub-square, sum)."""
    x = op.input(0)
    if x is None:
        return None
    channels = x.dims[_channels_axis(op, x.rank)] if x.rank else 1
    per_element = 2 + (3 if op.attrs.get("is_training") else 0)
    if op.attrs.get("num_side_inputs"):
        per_element += 1
    activation = op.attrs.get("activation_mode")
    if activation and activation != "Identity":
        per_element += ELEMENTWISE_FLOPS.get(activation, 1)
    return per_element * x.num_elements + 5 * channels, None


@register(*mkl("Softmax", "LogSoftmax"))
def softmax(op: OpInfo):
    """Per row of n: max (n-1), subtract (n), exp (n), sum (n-1), divide (n) ~ 5 per element;
    log-softmax: max, sub, exp, sum, log (per row), sub = also 5 per element."""
    x = op.input(0)
    if x is None:
        return None
    return 5 * x.num_elements, None


def _window(op: OpInfo) -> Optional[int]:
    ksize = op.attrs.get("ksize")
    if not ksize:
        return None
    return math.prod(ksize)


@register(*mkl("MaxPool", "MaxPoolV2", "MaxPool3D"))
def max_pool(op: OpInfo):
    """(window - 1) comparisons per output element (SAME-padded border windows counted full)."""
    out, window = op.output(0), _window(op)
    if out is None or window is None:
        return None
    return (window - 1) * out.num_elements, None


@register(*mkl("AvgPool", "AvgPool3D"))
def avg_pool(op: OpInfo):
    """(window - 1) adds and 1 divide per output element."""
    out, window = op.output(0), _window(op)
    if out is None or window is None:
        return None
    return window * out.num_elements, None


# ---------------------------------------------------------------- reductions

@register(*mkl("Sum", "Max", "Min", "Prod", "Any", "All", "ArgMax", "ArgMin", "EuclideanNorm"))
def reduce(op: OpInfo):
    """Reducing n values to one takes n-1 operations: input elements - output elements."""
    x, out = op.input(0), op.output(0)
    if x is None or out is None:
        return None
    return x.num_elements - out.num_elements, None


@register(*mkl("Mean"))
def reduce_mean(op: OpInfo):
    """Sum (input - output adds) then one divide per output: input elements in all."""
    x = op.input(0)
    if x is None:
        return None
    return x.num_elements, None


@register(*mkl("_MklLayerNorm"), "_MklNativeLayerNorm")
def layer_norm(op: OpInfo):
    """Per row of n: mean (n), variance (sub, square, sum: 3n), rsqrt(1), normalize (sub, mul: 2n),
    scale and shift (2n): 8 per element."""
    x = op.input(0)
    if x is None:
        return None
    return 8 * x.num_elements, None


# ---------------------------------------------------------------- zero-FLOP ops

_ZERO_REASONS = {
    "moves or reinterprets data": [
        "Reshape", "Transpose", "ConjugateTranspose", "Pad", "PadV2", "MirrorPad", "ConcatV2", "Concat",
        "Slice", "StridedSlice", "GatherV2", "Gather", "GatherNd", "ResourceGather", "SpaceToBatchND",
        "BatchToSpaceND", "SpaceToDepth", "DepthToSpace", "Identity", "IdentityN", "Cast", "Squeeze",
        "ExpandDims", "Pack", "Unpack", "Split", "SplitV", "Tile", "Reverse", "ReverseV2", "OneHot",
        "Snapshot", "Bitcast", "BroadcastTo", "ScatterNd", "TensorScatterUpdate", "Fill", "ZerosLike",
        "OnesLike", "Range", "Where", "TopKV2", "PreventGradient", "StopGradient", "CheckNumerics",
        "EnsureShape", "Copy", "CopyHost", "DeepCopy", "Empty", "Placeholder", "PlaceholderWithDefault",
        "ResizeNearestNeighbor", "Roll", "MatrixDiag", "MatrixDiagV3", "MatrixBandPart", "InvertPermutation",
        "_MklTranspose", "_MklConjugateTranspose", "_MklNativeTranspose", "_MklReshape", "_MklSlice",
        "_MklConcatV2", "_MklNativeConcatV2", "_MklIdentity", "_MklToTf", "_MklCast",
        "TensorListFromTensor", "TensorListGetItem", "TensorListSetItem", "TensorListStack",
        "TensorListReserve", "TensorListElementShape", "TensorListLength",
    ],
    "reads or writes a variable or an argument": [
        "ReadVariableOp", "AssignVariableOp", "VarHandleOp", "_Arg", "_Retval", "_DeviceArg",
        "_DeviceRetval", "Const", "HostConst", "_HostRecv", "_HostSend", "_Recv", "_Send",
        "VariableShape", "DestroyResourceOp",
    ],
    "computes shapes or control flow, not tensor data": [
        "Shape", "ShapeN", "Size", "Rank", "NoOp", "Enter", "Exit", "Merge", "Switch", "NextIteration",
        "LoopCond", "ControlTrigger", "StatelessWhile", "While", "If", "StatelessIf", "StatefulPartitionedCall",
        "PartitionedCall", "Assert", "BroadcastArgs", "BroadcastGradientArgs", "_MklNativeNoOp",
    ],
}
_CALL_REASON = ("runs a nested function or loop: its time here excludes the nested ops, "
                "which are reported on their own")
_ZERO_REASONS[_CALL_REASON] = [
    "StatefulPartitionedCall", "PartitionedCall", "While", "StatelessWhile", "If", "StatelessIf",
    "Case", "StatelessCase", "XlaLaunch", "_XlaRun", "_XlaCompile", "RemoteCall"]
_ZERO_REASONS["input pipeline: hands over dataset elements, no tensor arithmetic"] = [
    "IteratorGetNext", "IteratorGetNextSync", "IteratorGetNextAsOptional", "MultiDeviceIteratorGetNextFromShard",
    "MultiDeviceIteratorFromStringHandle", "MultiDeviceIteratorInit", "MakeIterator", "AnonymousIteratorV3",
    "IteratorV2", "IteratorToStringHandle", "IteratorFromStringHandleV2", "OptionalHasValue",
    "OptionalGetValue", "OptionalFromValue", "OptionalNone", "DeleteIterator", "ModelDataset"]
_ZERO_REASONS["generates random bits with integer arithmetic (Philox); the int-to-float step is not counted"] = [
    "RandomUniform", "RandomUniformInt", "StatelessRandomUniform", "StatelessRandomUniformV2",
    "StatelessRandomUniformInt", "StatelessRandomUniformIntV2", "StatelessRandomUniformFullInt",
    "StatelessRandomUniformFullIntV2", "StatelessRandomGetKeyCounter", "StatelessRandomGetAlg", "RngReadAndSkip"]
for _reason, _ops in _ZERO_REASONS.items():
    for _op in _ops:
        ZERO_OPS[_op] = _reason

# A small epsilon-free integer op set counted as zero would hide work; keep
# integer arithmetic as formulas (they are elementwise) and report its dtype.


def is_function_call(op_type: str) -> bool:
    """A call of a traced function runs under the function's own name (`__inference_step_287`)."""
    return op_type.startswith(("__inference_", "__forward_", "__backward_"))


def compute_dtype(op: OpInfo) -> str:
    """The dtype the op computes in: its first floating input, else its first input or output."""
    for tensor in list(op.inputs) + list(op.outputs):
        if tensor is not None and tensor.dtype in FLOAT_DTYPES:
            return tensor.dtype
    for tensor in list(op.inputs) + list(op.outputs):
        if tensor is not None:
            return tensor.dtype
    return ""


def op_cost(op: OpInfo) -> Cost:
    """The cost of one execution of `op`: formula, declared zero, or unknown."""
    known_in = [t for t in op.inputs if t is not None]
    size = total_bytes(list(op.inputs) + list(op.outputs)) if (known_in or op.outputs) else None
    dtype = compute_dtype(op)
    if op.op_type in ZERO_OPS:
        return Cost(0, None, size, ZERO, dtype, ZERO_OPS[op.op_type])
    if is_function_call(op.op_type):
        return Cost(0, None, size, ZERO, dtype, _CALL_REASON)
    formula = FORMULAS.get(op.op_type)
    if formula is None:
        return Cost(None, None, size, UNKNOWN, dtype, "no formula for this op type")
    result = formula(op)
    if result is None:
        return Cost(None, None, size, UNKNOWN, dtype, "shapes or attributes the formula needs are missing")
    flops, macs = result
    if op.inferred:
        return Cost(int(flops), None if macs is None else int(macs), size, SHAPES, dtype,
                    f"{formula.__name__}; " + "; ".join(op.inferred))
    return Cost(int(flops), None if macs is None else int(macs), size, FORMULA, dtype, formula.__name__)


# Training-step ops (gradients, losses, optimizer updates): registered on import.
from . import training  # noqa: E402,F401
