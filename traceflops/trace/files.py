"""Trace stage: reading XSpace trace files (`*.xplane.pb`) into protobuf messages.

`read_xspace` gives the whole XSpace (an object per event: for small traces
and tools). The fast path reads `XSpaceView` instead: the same schema with
the events of each line declared as opaque `bytes`, so that protobuf (upb)
never turns the millions of XEvent messages into Python objects (`wire.py`
decodes their bytes with numpy).
"""
from __future__ import annotations

import os
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from . import xplane_schema
from .locate import find_local_files
from ..errors import TraceError

XSPACE_SUFFIX = ".xplane.pb"


def find_trace_files(path) -> list:
    """Every `*.xplane.pb` for a local `path`: the file itself, or the newest run in a logdir (locate.py)."""
    return find_local_files(path, (XSPACE_SUFFIX,))


def read_trace_bytes(path) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TraceError(f"{path}: cannot read the trace ({exc.strerror or exc})") from None
    if not data:
        raise TraceError(f"{path}: the file is empty")
    return data


def file_size(path) -> int:
    """The size of a file in bytes, 0 where it cannot be read."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def read_xspace(path):
    """The whole XSpace message of one file (every event a Python object: for small traces and tools)."""
    data = read_trace_bytes(path)
    space = xplane_schema.XSpace()
    try:
        space.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError or others on damaged bytes
        raise TraceError(f"{path}: not a readable XSpace trace ({type(exc).__name__}: {exc})") from None
    if not space.planes:
        raise TraceError(f"{path}: not an XSpace trace (it has no planes)")
    return space


# ---------------------------------------------------------------- a view of the schema with opaque events

def _view_classes():
    """XSpace classes in which XLine.events is `repeated bytes`: the parser keeps each event's bytes."""
    proto = descriptor_pb2.FileDescriptorProto()
    xplane_schema.XSpace.DESCRIPTOR.file.CopyToProto(proto)
    old, new = f".{proto.package}.", ".traceflops.xplane_view."
    proto.name, proto.package = "traceflops/xplane_view.proto", "traceflops.xplane_view"
    for message in proto.message_type:
        for fld in list(message.field) + [f for nested in message.nested_type for f in nested.field]:
            if fld.type_name.startswith(old):
                fld.type_name = new + fld.type_name[len(old):]
        if message.name == "XLine":
            for fld in message.field:
                if fld.name == "events":
                    fld.type = descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
                    fld.ClearField("type_name")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("traceflops.xplane_view.XSpace"))


XSpaceView = _view_classes()


def read_xspace_metadata(path):
    """One file's XSpace with every line's events left as opaque bytes: planes, their stats
    and their event/stat metadata (where the HLO modules live) without an object per event."""
    space = XSpaceView()
    try:
        space.ParseFromString(read_trace_bytes(path))
    except Exception as exc:  # protobuf raises DecodeError or others on damaged bytes
        raise TraceError(f"{path}: not a readable XSpace trace ({type(exc).__name__}: {exc})") from None
    return space


def read_view(path, data: bytes):
    """The `XSpaceView` of one file's bytes; a TraceError naming the file where it has no planes."""
    space = XSpaceView()
    try:
        space.ParseFromString(data)
    except Exception as exc:  # protobuf raises DecodeError or others on damaged bytes
        # Name the messages as the schema does, not as our view of it.
        text = str(exc).replace("traceflops.xplane_view.", "tensorflow.profiler.")
        raise TraceError(f"{path}: not a readable XSpace trace ({type(exc).__name__}: {text})") from None
    if not space.planes:
        raise TraceError(f"{path}: not an XSpace trace (it has no planes)")
    return space
