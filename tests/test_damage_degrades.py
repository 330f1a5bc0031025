"""Damage degrades, never aborts (issue 21, scope 6): a damaged HLO module inside a readable XSpace is one
warning naming the module, the rest priced; an unreadable host file among good ones is named and skipped;
exit 4 only when nothing is readable."""
import json

from traceflops.trace import xplane_schema

from conftest import TRACES, assert_clean_failure, run_cli

GEMM = TRACES / "gpu" / "jax-mi300-gemm.xplane.pb"
CONV = TRACES / "gpu" / "jax-mi300-conv3d.xplane.pb"


def _damage_module(source, target, module_name: str):
    """A copy of `source` whose `Hlo Proto` of `module_name` claims 127 bytes of module and holds 10."""
    space = xplane_schema.XSpace()
    space.ParseFromString(source.read_bytes())
    damaged = 0
    for plane in space.planes:
        if plane.name != "/host:metadata":
            continue
        for meta in plane.event_metadata.values():
            if meta.name == module_name:
                for stat in meta.stats:
                    if stat.bytes_value:
                        stat.bytes_value = b"\x0a\x7f" + stat.bytes_value[:10]
                        damaged += 1
    assert damaged == 1
    target.write_bytes(space.SerializeToString())


def _summary(out):
    return json.loads((out / "summary.json").read_text())


def test_a_damaged_hlo_module_is_one_warning_and_the_rest_is_priced(tmp_path):
    trace = tmp_path / "run" / "host.xplane.pb"
    trace.parent.mkdir()
    _damage_module(GEMM, trace, "jit_dot(49)")
    proc = run_cli("analyze", trace, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = _summary(tmp_path / "out")
    named = [w for w in summary["warnings"] if "HLO module jit_dot(49) is damaged" in w]
    assert len(named) == 1, summary["warnings"]
    assert 0 < summary["coverage"] < 1  # the damaged module's instructions are unknown, the rest priced
    good = run_cli("analyze", GEMM, "--out", tmp_path / "good")
    assert good.returncode == 0 and _summary(tmp_path / "good")["coverage"] == 1.0


def test_an_unreadable_host_file_is_named_and_the_others_are_analysed(tmp_path):
    logdir = tmp_path / "logdir"
    logdir.mkdir()
    (logdir / "good.xplane.pb").write_bytes(CONV.read_bytes())
    (logdir / "bad.xplane.pb").write_bytes(b"\xff\xfe not a protobuf " * 64)
    proc = run_cli("analyze", logdir, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    summary = _summary(tmp_path / "out")
    skipped = [w for w in summary["warnings"] if "bad.xplane.pb" in w and "skipped" in w]
    assert len(skipped) == 1, summary["warnings"]
    assert not any("good.xplane.pb" in w for w in summary["warnings"])
    alone = run_cli("analyze", CONV, "--out", tmp_path / "alone")
    assert alone.returncode == 0
    assert summary["flops_per_step"] == _summary(tmp_path / "alone")["flops_per_step"] > 0


def test_nothing_readable_is_exit_4(tmp_path):
    logdir = tmp_path / "logdir"
    logdir.mkdir()
    for name in ("a", "b"):
        (logdir / f"{name}.xplane.pb").write_bytes(b"\xff\xfe not a protobuf " * 64)
    assert_clean_failure(run_cli("analyze", logdir), 4)
