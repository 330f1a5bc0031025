"""The XSpace builder the tests and the synthetic traces use: interning, stat types, raw ids."""
import pytest

from traceflops.testing import synthetic
from traceflops.testing.builder import Ref, Uint64, XSpaceBuilder, field_bytes, varint
from traceflops.trace import load_trace, xplane_schema


def test_metadata_is_interned_per_plane_stats_and_refs_sharing_ids():
    space = XSpaceBuilder(hostnames=["h"], errors=["e"], warnings=["w"])
    host = space.plane("/host:CPU", stats={"cores": 8})
    line = host.line(3, "tf_Compute/3", timestamp_ns=10, duration_ps=99)
    line.event("a/MatMul:MatMul", 0, 5, {"shape": Ref("(float[2,3];float[3,4])")}, display_name="MatMul")
    line.event("a/MatMul:MatMul", 7, 5, {"shape": Ref("(float[2,3];float[3,4])")})
    line.event("ExecutorState::Process", 20, 1, [("id", -4), ("iter_num", 0)])
    device = space.plane("/device:GPU:0", stats={"memory_bandwidth": Uint64(2**63), "clock": 1.5})
    device.line(1, "stream 1").event("kernel", 0, 2, {"kernel_details": b"\x01", "correlation_id": 3})

    parsed = xplane_schema.XSpace.FromString(space.to_bytes())
    assert (list(parsed.hostnames), list(parsed.errors), list(parsed.warnings)) == (["h"], ["e"], ["w"])
    cpu, gpu = parsed.planes
    assert (cpu.id, cpu.name, gpu.id, gpu.name) == (0, "/host:CPU", 1, "/device:GPU:0")
    assert {k: (m.id, m.name) for k, m in cpu.stat_metadata.items()} == {
        1: (1, "cores"), 2: (2, "shape"), 3: (3, "(float[2,3];float[3,4])"), 4: (4, "id"), 5: (5, "iter_num")}
    assert {k: (m.name, m.display_name) for k, m in cpu.event_metadata.items()} == {
        1: ("a/MatMul:MatMul", "MatMul"), 2: ("ExecutorState::Process", "")}
    (line,) = cpu.lines
    assert (line.id, line.name, line.timestamp_ns, line.duration_ps) == (3, "tf_Compute/3", 10, 99)
    assert [(e.metadata_id, e.offset_ps, e.duration_ps) for e in line.events] == [(1, 0, 5), (1, 7, 5), (2, 20, 1)]
    assert [(s.metadata_id, s.WhichOneof("value"), s.ref_value) for s in line.events[1].stats] == [(2, "ref_value", 3)]
    assert [(s.metadata_id, s.int64_value) for s in line.events[2].stats] == [(4, -4), (5, 0)]
    assert (cpu.stats[0].metadata_id, cpu.stats[0].int64_value) == (1, 8)
    assert [(s.WhichOneof("value"), getattr(s, s.WhichOneof("value"))) for s in gpu.stats] == [
        ("uint64_value", 2**63), ("double_value", 1.5)]
    kernel_stats = gpu.lines[0].events[0].stats
    assert [(s.WhichOneof("value"), getattr(s, s.WhichOneof("value"))) for s in kernel_stats] == [
        ("bytes_value", b"\x01"), ("int64_value", 3)]


def test_explicit_and_raw_ids_are_written_as_given():
    space = XSpaceBuilder()
    plane = space.plane("/host:CPU", id=-3)
    assert plane.stat_metadata("shape", id=9) == 9 and plane.stat_metadata("shape") == 9
    assert plane.stat_metadata("dup", id=4) == 4 and plane.stat_metadata("shape", id=5) == 5  # a name twice
    assert plane.event_metadata("x:Y", "Y", id=-2, stats=[(77, None), (9, Ref(999))]) == -2
    line = plane.line(0, "")
    line.event(metadata_id=55, duration_ps=-1, num_occurrences=2, stats=[(77, "s")])
    parsed = xplane_schema.XSpace.FromString(space.to_bytes()).planes[0]
    assert parsed.id == -3 and sorted(parsed.stat_metadata) == [4, 5, 9]
    assert parsed.stat_metadata[5].name == "shape"
    meta = parsed.event_metadata[-2]
    assert (meta.id, meta.name, meta.display_name) == (-2, "x:Y", "Y")
    assert [(s.metadata_id, s.WhichOneof("value")) for s in meta.stats] == [(77, None), (9, "ref_value")]
    assert meta.stats[1].ref_value == 999
    event = parsed.lines[0].events[0]
    assert (event.metadata_id, event.duration_ps, event.WhichOneof("data"), event.num_occurrences) == \
           (55, -1, "num_occurrences", 2)
    with pytest.raises(TypeError, match="no XStat value type for list"):
        plane.line(1, "l").event("e", 0, 1, {"bad": [1]})


def test_written_space_parses_into_events(tmp_path):
    space = XSpaceBuilder(hostnames=["h"])
    line = space.plane("/host:CPU").line(1, "tf_Compute/1", timestamp_ns=1000)
    line.event("a/MatMul:MatMul", 0, 4_000, {"shape": Ref("(float[2,3];float[3,4])")}, display_name="MatMul")
    path = space.write(tmp_path / "run" / "h.xplane.pb")
    events = load_trace(path).events
    assert events[["op_name", "op_type", "start_ps", "duration_ps"]].values.tolist() == [
        ["a/MatMul", "MatMul", 1_000_000, 4_000]]
    assert events["shape"].astype(str).tolist() == ["(float[2,3];float[3,4])"]


def test_wire_helpers():
    assert varint(0) == b"\x00" and varint(300) == b"\xac\x02" and varint(-1) == b"\xff" * 9 + b"\x01"
    assert field_bytes(3, b"ab") == b"\x1a\x02ab"


def test_synthetic_metadata_comes_from_the_builders_interning():
    host = xplane_schema.XSpace.FromString(synthetic.synthetic_trace(50, num_names=3, ops_per_step=50)).planes[0]
    stats = [host.stat_metadata[k].name for k in sorted(host.stat_metadata)]
    assert stats[:5] == ["shape", "step_num", "_r", "id", "iter_num"]
    events = [host.event_metadata[k].name for k in sorted(host.event_metadata)]
    assert len(events) == 3 + 1 + 6 and events[3] == "model/StatefulPartitionedCall:StatefulPartitionedCall"
    assert events[4:] == ["traceflops_step", "step", "TFE_Py_ExecuteCancelable", "ExecutorState::Process",
                          "ExecutorState::Process Scheduled", "ThreadpoolListener::StartRegion"]


def test_the_analysis_pipeline_imports_no_testing_helper():
    """traceflops.testing (this builder, the synthetic traces) is for tests and benchmarks only."""
    import ast
    from pathlib import Path
    package = Path(__file__).resolve().parent.parent / "traceflops"
    users = []
    for path in package.rglob("*.py"):
        if "testing" in path.relative_to(package).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")] + [a.name for a in node.names]
            if any(name.split(".")[-1] == "testing" or ".testing" in name or name.startswith("testing")
                   for name in names):
                users.append(f"{path.relative_to(package)}:{node.lineno}")
    assert users == []
