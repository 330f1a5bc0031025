"""A TPU trace (XProf's own, JAX on 4 x TPU v6e) read as XProf reads it: the "XLA Ops" line is the executed
HLO, priced from the HLO modules, against the TPU's own ceilings, and agreeing with XProf's hlo_stats."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, TRACES
import traceflops
from traceflops.roofline.gpu_specs import tpu_ceilings
from traceflops.trace import read_xspace
from traceflops.trace.tpu import as_program_id, module_names, trace_op_flops

TPU_TRACE = TRACES / "tpu" / "jax-v6e-host-offload.xplane.pb"
# Stored without the `.xplane.pb` ending (so that no directory scan takes it for a trace); tested under it.
MANGLED = TRACES / "tpu" / "jax-v6e-host-offload.utf8-mangled.xplane.pb.damaged"
JIT_F = 12190760917235803885  # as the events say it; the metadata plane keys it as -6255983156473747731


@pytest.fixture(scope="module")
def result():
    return traceflops.analyze(TPU_TRACE)


def xprof_hlo_stats(path, tmp_path):
    """{(program id, instruction): (occurrences, FLOPs per occurrence)} from XProf's hlo_stats tool, run here.
    XProf caches its op stats beside the trace: the trace gets a directory of its own."""
    plugin = pytest.importorskip("xprof.convert._pywrap_profiler_plugin")
    work = tmp_path / "xprof"
    work.mkdir()
    data, ok = plugin.xspace_to_tools_data([str(shutil.copy(path, work))], "hlo_stats", {})
    assert ok
    table = json.loads(data)
    columns = [c["id"] for c in table["cols"]]
    out = {}
    for r in table["rows"]:
        v = dict(zip(columns, [c["v"] if c else None for c in r["c"]]))
        out[(int(v["program_id"]), v["hlo_op_name"])] = (v["occurrences"], v["model_flop_rate"] * v["avg_time"] * 1e3)
    return out


def test_program_ids_are_unsigned_64_bit():
    assert as_program_id(-6255983156473747731) == JIT_F
    assert as_program_id(JIT_F) == JIT_F
    assert as_program_id("12190760917235803885") == JIT_F


def test_the_modules_line_names_each_program():
    space = read_xspace(TPU_TRACE)
    plane = next(p for p in space.planes if p.name == "/device:TPU:0")
    names = module_names(plane)
    assert names[JIT_F] == "jit_f" and names[9646411105960254074] == "jit__psum"


def test_the_xla_ops_line_is_what_ran(result):
    ops = result.ops
    assert set(ops["device"]) == {"TPU:0", "TPU:1", "TPU:2", "TPU:3"}
    assert {"broadcast_add_fusion", "all-reduce", "copy-done.4"} <= set(ops["op_name"])
    assert set(ops.loc[ops["op_name"].str.startswith("broadcast_add_fusion"), "hlo_module"]) == {"jit_f"}


def test_coverage_and_no_overlapping_spans_summed(result):
    summary = result.summary
    assert summary["coverage"] >= 0.95
    # The "Async XLA Ops" spans overlap the copies' own events: skipped, so no device is busier than the
    # profile lasted (98.6 s).
    per_device = result.ops.groupby("device")["total_time_us"].sum()
    assert (per_device <= 98.7e6).all(), per_device.to_dict()
    copies = result.ops[result.ops["op_type"].isin(["copy-start", "copy-done"])]
    assert (copies["flops"] == 0).all()


def test_agrees_with_xprof_hlo_stats(result, tmp_path):
    """Total and per-op FLOPs within 2% of XProf's hlo_stats, computed here with the installed xprof."""
    theirs = xprof_hlo_stats(TPU_TRACE, tmp_path)
    assert len(theirs) == 17
    ops = result.ops
    ours_total = float((ops["flops"].astype(float) * ops["occurrences"]).sum())
    xprof_total = sum(n * f for n, f in theirs.values())
    assert ours_total == pytest.approx(xprof_total, rel=0.02)
    for (program, name), (occurrences, flops) in theirs.items():
        rows = ops[ops["op_name"] == name]
        assert len(rows), name
        assert int(rows["occurrences"].sum()) == occurrences, name
        assert np.allclose(rows["flops"].astype(float), flops, rtol=0.02, atol=0), (name, flops)


def test_the_traces_own_counts_agree_with_ours(result):
    """The trace's per-instruction `flops` stat (XLA's own count) beside ours: equal on every priced op."""
    own = trace_op_flops(read_xspace(TPU_TRACE))
    assert own[(JIT_F, "broadcast_add_fusion")] == 1342177280
    for _, row in result.ops.iterrows():
        key = next(((p, n) for (p, n) in own if n == row["op_name"]), None)
        if key is not None:
            assert float(row["flops"]) == pytest.approx(own[key], rel=0.02), row["op_name"]


def test_tpu_ceilings_from_the_plane_stats(result):
    ceilings = result.summary["ceilings"]["TPU:0"] if "TPU:0" in result.summary["ceilings"] else None
    space = read_xspace(TPU_TRACE)
    from traceflops.trace.values import stats_dict
    plane = next(p for p in space.planes if p.name == "/device:TPU:0")
    stats = stats_dict(plane.stats, {k: m.name for k, m in plane.stat_metadata.items()})
    found = tpu_ceilings(stats, "TPU:0")
    assert found["peak_gflops_per_s"]["bfloat16"] == pytest.approx(918e3)
    assert found["bandwidth_gbytes_per_s"] == pytest.approx(1637.993152512)
    assert ceilings is not None
    assert result.summary["model_flops_utilization"] <= 1.0
    assert not result.ops["above_ceiling"].fillna(False).astype(bool).any()


def test_the_mangled_copy_exits_4_with_one_line(tmp_path):
    trace = shutil.copy(MANGLED, tmp_path / "jax-v6e-host-offload.xplane.pb")
    done = subprocess.run([sys.executable, "-m", "traceflops", "analyze", str(trace), "--out", str(tmp_path / "o")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 4
    assert len(done.stderr.strip().splitlines()) == 1 and "not a readable XSpace trace" in done.stderr
