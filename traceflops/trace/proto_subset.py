"""Message classes from a hand-written description of a protobuf schema subset.

`xplane_schema` (XSpace traces) and `hlo_schema` (XLA modules) each describe
the fields we read, as (name, number, type, label, message type or None
[, oneof index]) tuples; protobuf builds the classes from that, in a private
descriptor pool so TensorFlow's own classes can be loaded in the same process.
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FIELD = descriptor_pb2.FieldDescriptorProto


def _add_fields(message, fields, package: str) -> None:
    for name, number, ftype, label, type_name, *oneof in fields:
        field = message.field.add(name=name, number=number, type=ftype, label=label)
        if type_name:
            field.type_name = f".{package}.{type_name}"
        if oneof and oneof[0] is not None:
            field.oneof_index = oneof[0]


def build_classes(package: str, file_name: str, messages: dict, oneofs: dict = None,
                  map_entries: dict = None) -> dict:
    """{message name: class}. `oneofs`: {message: [oneof names]}; `map_entries`:
    {message: [(entry name, value message)]} for `map<int64, value>` fields."""
    proto = descriptor_pb2.FileDescriptorProto(name=file_name, package=package, syntax="proto3")
    for message_name, fields in messages.items():
        message = proto.message_type.add(name=message_name)
        for oneof in (oneofs or {}).get(message_name, []):
            message.oneof_decl.add(name=oneof)
        _add_fields(message, fields, package)
        for entry_name, value_type in (map_entries or {}).get(message_name, []):
            entry = message.nested_type.add(name=entry_name)
            entry.options.map_entry = True
            _add_fields(entry, [("key", 1, FIELD.TYPE_INT64, FIELD.LABEL_OPTIONAL, None),
                                ("value", 2, FIELD.TYPE_MESSAGE, FIELD.LABEL_OPTIONAL, value_type)], package)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
            for name in messages}
