"""The XLA HloProto subset we read, described here so that reading HLO needs no TensorFlow.

XLA-compiled programs (JAX, TensorFlow with `jit_compile`) leave their
optimized HLO modules in a trace: the `/host:metadata` plane has one event
metadata per program, keyed by the program id, named `<module>(<program id>)`,
whose stat `Hlo Proto` holds a serialized `xla.HloProto` (field 1: the
`HloModuleProto`). TensorFlow ships the classes only as
`tensorflow.compiler.xla.service.hlo_pb2`, which imports all of TensorFlow.

As in `xplane_schema`, we describe the fields we use (names and numbers from
`xla/service/hlo.proto` and `xla/xla_data.proto`) with `descriptor_pb2`; the
parser skips every field we leave out, so newer modules still parse.
`tests/test_xla.py` pins every field number and wire type against
TensorFlow's own classes and parses the fixture modules with both.

Enum fields (`ShapeProto.element_type`) are declared int32, which has the
same varint wire encoding; `PRIMITIVE_TYPES` names the numbers.
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2

from .proto_subset import build_classes

_PACKAGE = "xla"
_F = descriptor_pb2.FieldDescriptorProto
_OPT, _REP = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED

# (field name, number, type, label, message type or None)
_MESSAGES = {
    "HloProto": [
        ("hlo_module", 1, _F.TYPE_MESSAGE, _OPT, "HloModuleProto"),
    ],
    "HloModuleProto": [
        ("name", 1, _F.TYPE_STRING, _OPT, None),
        ("entry_computation_name", 2, _F.TYPE_STRING, _OPT, None),
        ("computations", 3, _F.TYPE_MESSAGE, _REP, "HloComputationProto"),
        ("id", 5, _F.TYPE_INT64, _OPT, None),
        ("entry_computation_id", 6, _F.TYPE_INT64, _OPT, None),
        ("stack_frame_index", 17, _F.TYPE_MESSAGE, _OPT, "StackFrameIndexProto"),
    ],
    # JAX writes source locations as stack frames (OpMetadata.stack_frame_id, 1-based) into this
    # index; nested messages of StackFrameIndexProto are named `StackFrameIndexProto_<Name>` here.
    "StackFrameIndexProto": [
        ("file_names", 1, _F.TYPE_STRING, _REP, None),
        ("function_names", 2, _F.TYPE_STRING, _REP, None),
        ("file_locations", 3, _F.TYPE_MESSAGE, _REP, "StackFrameIndexProto_FileLocation"),
        ("stack_frames", 4, _F.TYPE_MESSAGE, _REP, "StackFrameIndexProto_StackFrame"),
    ],
    "StackFrameIndexProto_FileLocation": [
        ("file_name_id", 1, _F.TYPE_INT32, _OPT, None),
        ("function_name_id", 2, _F.TYPE_INT32, _OPT, None),
        ("line", 3, _F.TYPE_INT32, _OPT, None),
    ],
    "StackFrameIndexProto_StackFrame": [
        ("file_location_id", 1, _F.TYPE_INT32, _OPT, None),
        ("parent_frame_id", 2, _F.TYPE_INT32, _OPT, None),
    ],
    "HloComputationProto": [
        ("name", 1, _F.TYPE_STRING, _OPT, None),
        ("instructions", 2, _F.TYPE_MESSAGE, _REP, "HloInstructionProto"),
        ("id", 5, _F.TYPE_INT64, _OPT, None),
        ("root_id", 6, _F.TYPE_INT64, _OPT, None),
        ("is_fusion_computation", 7, _F.TYPE_BOOL, _OPT, None),
        ("execution_thread", 8, _F.TYPE_STRING, _OPT, None),
    ],
    "HloInstructionProto": [
        ("name", 1, _F.TYPE_STRING, _OPT, None),
        ("opcode", 2, _F.TYPE_STRING, _OPT, None),
        ("shape", 3, _F.TYPE_MESSAGE, _OPT, "ShapeProto"),
        ("metadata", 7, _F.TYPE_MESSAGE, _OPT, "OpMetadata"),
        ("parameter_number", 9, _F.TYPE_INT64, _OPT, None),
        ("fusion_kind", 11, _F.TYPE_STRING, _OPT, None),
        ("tuple_index", 13, _F.TYPE_INT64, _OPT, None),
        ("dimensions", 14, _F.TYPE_INT64, _REP, None),
        ("window", 15, _F.TYPE_MESSAGE, _OPT, "Window"),
        ("convolution_dimension_numbers", 16, _F.TYPE_MESSAGE, _OPT, "ConvolutionDimensionNumbers"),
        ("custom_call_target", 28, _F.TYPE_STRING, _OPT, None),
        ("dot_dimension_numbers", 30, _F.TYPE_MESSAGE, _OPT, "DotDimensionNumbers"),
        ("ragged_dot_dimension_numbers", 90, _F.TYPE_MESSAGE, _OPT, "RaggedDotDimensionNumbers"),
        ("fft_length", 32, _F.TYPE_INT64, _REP, None),
        ("id", 35, _F.TYPE_INT64, _OPT, None),
        ("operand_ids", 36, _F.TYPE_INT64, _REP, None),
        ("called_computation_ids", 38, _F.TYPE_INT64, _REP, None),
        ("backend_config", 43, _F.TYPE_BYTES, _OPT, None),
        ("feature_group_count", 50, _F.TYPE_INT64, _OPT, None),
        ("batch_group_count", 58, _F.TYPE_INT64, _OPT, None),
        ("comparison_direction", 63, _F.TYPE_STRING, _OPT, None),
    ],
    "ShapeProto": [
        ("element_type", 2, _F.TYPE_INT32, _OPT, None),
        ("dimensions", 3, _F.TYPE_INT64, _REP, None),
        ("tuple_shapes", 4, _F.TYPE_MESSAGE, _REP, "ShapeProto"),
    ],
    "OpMetadata": [
        ("op_type", 1, _F.TYPE_STRING, _OPT, None),
        ("op_name", 2, _F.TYPE_STRING, _OPT, None),
        ("source_file", 3, _F.TYPE_STRING, _OPT, None),
        ("source_line", 4, _F.TYPE_INT32, _OPT, None),
        ("stack_frame_id", 15, _F.TYPE_INT32, _OPT, None),
    ],
    "Window": [
        ("dimensions", 1, _F.TYPE_MESSAGE, _REP, "WindowDimension"),
    ],
    "WindowDimension": [
        ("size", 1, _F.TYPE_INT64, _OPT, None),
        ("stride", 2, _F.TYPE_INT64, _OPT, None),
        ("padding_low", 3, _F.TYPE_INT64, _OPT, None),
        ("padding_high", 4, _F.TYPE_INT64, _OPT, None),
        ("window_dilation", 5, _F.TYPE_INT64, _OPT, None),
        ("base_dilation", 6, _F.TYPE_INT64, _OPT, None),
        ("window_reversal", 7, _F.TYPE_BOOL, _OPT, None),
    ],
    "ConvolutionDimensionNumbers": [
        ("kernel_input_feature_dimension", 3, _F.TYPE_INT64, _OPT, None),
        ("kernel_output_feature_dimension", 4, _F.TYPE_INT64, _OPT, None),
        ("kernel_spatial_dimensions", 6, _F.TYPE_INT64, _REP, None),
        ("input_batch_dimension", 7, _F.TYPE_INT64, _OPT, None),
        ("input_feature_dimension", 8, _F.TYPE_INT64, _OPT, None),
        ("output_batch_dimension", 9, _F.TYPE_INT64, _OPT, None),
        ("output_feature_dimension", 10, _F.TYPE_INT64, _OPT, None),
        ("input_spatial_dimensions", 11, _F.TYPE_INT64, _REP, None),
        ("output_spatial_dimensions", 12, _F.TYPE_INT64, _REP, None),
    ],
    "DotDimensionNumbers": [
        ("lhs_contracting_dimensions", 1, _F.TYPE_INT64, _REP, None),
        ("rhs_contracting_dimensions", 2, _F.TYPE_INT64, _REP, None),
        ("lhs_batch_dimensions", 3, _F.TYPE_INT64, _REP, None),
        ("rhs_batch_dimensions", 4, _F.TYPE_INT64, _REP, None),
    ],
    "RaggedDotDimensionNumbers": [
        ("dot_dimension_numbers", 1, _F.TYPE_MESSAGE, _OPT, "DotDimensionNumbers"),
        ("lhs_ragged_dimensions", 2, _F.TYPE_INT64, _REP, None),
        ("rhs_group_dimensions", 3, _F.TYPE_INT64, _REP, None),
    ],
}

# xla.PrimitiveType numbers (xla/xla_data.proto) -> (lower-case XLA name, bits per element).
# Tuples, tokens and opaque values hold no array data of their own (0 bits).
PRIMITIVE_TYPES = {
    0: ("invalid", 0), 1: ("pred", 8),
    2: ("s8", 8), 3: ("s16", 16), 4: ("s32", 32), 5: ("s64", 64),
    6: ("u8", 8), 7: ("u16", 16), 8: ("u32", 32), 9: ("u64", 64),
    10: ("f16", 16), 11: ("f32", 32), 12: ("f64", 64), 13: ("tuple", 0), 14: ("opaque_type", 0),
    15: ("c64", 64), 16: ("bf16", 16), 17: ("token", 0), 18: ("c128", 128),
    19: ("f8e5m2", 8), 20: ("f8e4m3fn", 8), 21: ("s4", 4), 22: ("u4", 4),
    23: ("f8e4m3b11fnuz", 8), 24: ("f8e5m2fnuz", 8), 25: ("f8e4m3fnuz", 8),
    26: ("s2", 2), 27: ("u2", 2), 28: ("f8e4m3", 8), 29: ("f8e3m4", 8),
    30: ("s1", 1), 31: ("u1", 1), 32: ("f4e2m1fn", 4), 33: ("f8e8m0fnu", 8), 34: ("buffer", 0),
}


_CLASSES = build_classes(_PACKAGE, "traceflops/hlo_subset.proto", _MESSAGES)


def _message_class(name: str):
    return _CLASSES[name]


HloProto = _message_class("HloProto")
HloModuleProto = _message_class("HloModuleProto")
HloComputationProto = _message_class("HloComputationProto")
HloInstructionProto = _message_class("HloInstructionProto")
ShapeProto = _message_class("ShapeProto")
OpMetadata = _message_class("OpMetadata")
StackFrameIndexProto = _message_class("StackFrameIndexProto")
StackFrameIndexProto_FileLocation = _message_class("StackFrameIndexProto_FileLocation")
StackFrameIndexProto_StackFrame = _message_class("StackFrameIndexProto_StackFrame")
Window = _message_class("Window")
WindowDimension = _message_class("WindowDimension")
ConvolutionDimensionNumbers = _message_class("ConvolutionDimensionNumbers")
DotDimensionNumbers = _message_class("DotDimensionNumbers")
RaggedDotDimensionNumbers = _message_class("RaggedDotDimensionNumbers")

MESSAGE_FIELDS = {name: [(f[0], f[1]) for f in fields] for name, fields in _MESSAGES.items()}
