"""Our XSpace description must agree with TensorFlow's own classes, field by field."""
import pytest

from traceflops.trace import xplane_schema

pytestmark = pytest.mark.tf


def test_every_field_number_matches_tensorflow(tf_runtime):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    for name in ("XSpace", "XPlane", "XLine", "XEvent", "XStat", "XEventMetadata", "XStatMetadata"):
        ours = getattr(xplane_schema, name).DESCRIPTOR
        theirs = getattr(xplane_pb2, name).DESCRIPTOR
        for field in ours.fields:
            assert field.name in theirs.fields_by_name, f"{name}.{field.name} is not in TensorFlow's schema"
            other = theirs.fields_by_name[field.name]
            assert (field.number, field.type) == (other.number, other.type), f"{name}.{field.name}"


def test_round_trip_with_tensorflow_classes(tf_runtime):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    space = xplane_pb2.XSpace(hostnames=["h"], errors=["e"])
    plane = space.planes.add(id=1, name="/host:CPU")
    plane.event_metadata[7].name = "a/b:MatMul"
    plane.event_metadata[7].display_name = "MatMul"
    plane.stat_metadata[3].name = "shape"
    line = plane.lines.add(id=5, name="tf_Compute/1", timestamp_ns=10)
    event = line.events.add(metadata_id=7, offset_ps=2000, duration_ps=3000)
    event.stats.add(metadata_id=3, str_value="(float[2,3];float[3,4])")
    ours = xplane_schema.XSpace()
    ours.ParseFromString(space.SerializeToString())
    assert ours.hostnames == ["h"] and ours.errors == ["e"]
    got = ours.planes[0].lines[0].events[0]
    assert (got.offset_ps, got.duration_ps, got.stats[0].str_value) == (2000, 3000, "(float[2,3];float[3,4])")
    assert ours.planes[0].event_metadata[7].display_name == "MatMul"
    assert ours.SerializeToString() == space.SerializeToString()
