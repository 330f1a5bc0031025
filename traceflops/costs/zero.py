"""Declared zero-FLOP op types, each with the reason it does no arithmetic on tensor data.

Their bytes are still counted (a copy or a transpose moves memory). Integer and
float arithmetic is never declared zero: it has elementwise formulas.
"""
from __future__ import annotations

from .registry import CALL_REASON, declare_zero

MOVES = "moves or reinterprets data"
declare_zero(
    "Pad", "PadV2", "MirrorPad", "Concat", "StridedSlice", "GatherV2", "Gather", "GatherNd",
    "ResourceGather", "SpaceToBatchND", "BatchToSpaceND", "SpaceToDepth", "DepthToSpace", "IdentityN",
    "Squeeze", "ExpandDims", "Pack", "Unpack", "Split", "SplitV", "Tile", "Reverse", "ReverseV2", "OneHot",
    "Snapshot", "Bitcast", "BroadcastTo", "ScatterNd", "TensorScatterUpdate", "Fill", "ZerosLike",
    "OnesLike", "Range", "Where", "PreventGradient", "StopGradient", "CheckNumerics",
    "EnsureShape", "Copy", "CopyHost", "DeepCopy", "Empty", "Placeholder", "PlaceholderWithDefault",
    "Roll", "MatrixDiag", "MatrixDiagV3", "MatrixBandPart", "InvertPermutation",
    "TensorListFromTensor", "TensorListGetItem", "TensorListSetItem", "TensorListStack",
    "TensorListReserve", "TensorListElementShape", "TensorListLength", "_MklToTf",
    reason=MOVES, family="data movement")
# Movers that oneDNN builds also run under their _Mkl / _MklNative spellings.
declare_zero("Reshape", "Transpose", "ConjugateTranspose", "ConcatV2", "Slice", "Identity", "Cast",
             reason=MOVES, family="data movement", variants=True)
declare_zero(
    "ReadVariableOp", "AssignVariableOp", "VarHandleOp", "_Arg", "_Retval", "_DeviceArg", "_DeviceRetval",
    "Const", "HostConst", "_HostRecv", "_HostSend", "_Recv", "_Send", "VariableShape", "DestroyResourceOp",
    reason="reads or writes a variable or an argument", family="data movement")
declare_zero(
    "Shape", "ShapeN", "Size", "Rank", "Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond",
    "ControlTrigger", "Assert", "BroadcastArgs", "BroadcastGradientArgs",
    reason="computes shapes or control flow, not tensor data", family="control flow")
declare_zero("NoOp", reason="computes shapes or control flow, not tensor data", family="control flow",
             variants=True)
declare_zero(
    "StatefulPartitionedCall", "PartitionedCall", "While", "StatelessWhile", "If", "StatelessIf", "Case",
    "StatelessCase", "XlaLaunch", "_XlaRun", "_XlaCompile", "RemoteCall",
    reason=CALL_REASON, family="call")
declare_zero(
    "IteratorGetNext", "IteratorGetNextSync", "IteratorGetNextAsOptional", "MultiDeviceIteratorGetNextFromShard",
    "MultiDeviceIteratorFromStringHandle", "MultiDeviceIteratorInit", "MakeIterator", "AnonymousIteratorV3",
    "IteratorV2", "IteratorToStringHandle", "IteratorFromStringHandleV2", "OptionalHasValue",
    "OptionalGetValue", "OptionalFromValue", "OptionalNone", "DeleteIterator", "ModelDataset",
    reason="input pipeline: hands over dataset elements, no tensor arithmetic", family="input pipeline")
declare_zero(
    "RandomUniform", "RandomUniformInt", "StatelessRandomUniform", "StatelessRandomUniformV2",
    "StatelessRandomUniformInt", "StatelessRandomUniformIntV2", "StatelessRandomUniformFullInt",
    "StatelessRandomUniformFullIntV2", "StatelessRandomGetKeyCounter", "StatelessRandomGetAlg", "RngReadAndSkip",
    reason="generates random bits with integer arithmetic (Philox); the int-to-float step is not counted",
    family="random")
