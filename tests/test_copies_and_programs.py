"""Copies and programs (issue 21, scopes 3-4): every memcpy goes to memcpy.csv with its bandwidth and never
counts as unknown; a kernel without a launching op keeps its own row under its kernel name; programs
sharing a module name are told apart (`jit_dot#49`), each with its own rows, notes and `program_id`."""
import pandas as pd
import pytest

import traceflops

from conftest import TRACES

GPU = TRACES / "gpu"


@pytest.fixture(scope="module")
def legacy():
    return traceflops.analyze(GPU / "jax-mi300-conv3d-legacy.xplane.pb")


@pytest.fixture(scope="module")
def gemm():
    return traceflops.analyze(GPU / "jax-mi300-gemm.xplane.pb")


def test_memcpy_other_lines_are_copies_with_their_bandwidth(legacy):
    """Its device-to-device copies on `Stream #N(MemcpyOther)` lines were an unnamed op, 19.9% of op time."""
    assert legacy.summary["coverage"] >= 0.99
    copies = legacy.memcpy
    assert set(copies["name"]) == {"CopyDeviceToDevice"}
    assert copies["stream"].str.endswith("(MemcpyOther)").all()
    assert copies["occurrences"].sum() == 53
    assert (copies["total_bytes"] == copies["occurrences"] * 655360).all()
    assert (copies["gbytes_per_s"] > 0).all()
    assert not (legacy.ops["op_name"].fillna("") == "").any()
    assert not (legacy.ops["flops_source"] == "unknown").any()


def test_runtime_copy_kernels_are_copies_and_orphan_kernels_keep_their_names():
    result = traceflops.analyze(GPU / "jax-mi300-conv3d.xplane.pb")
    assert set(result.memcpy["name"]) == {"__amd_rocclr_copyBuffer.kd"}
    assert result.memcpy["occurrences"].sum() == 35
    ops = result.ops
    assert not (ops["op_name"].fillna("") == "").any()  # no unnamed "unknown" row
    orphans = ops[ops["flops_source"] == "unknown"]
    assert set(orphans["op_name"]) == {"Im3d2Col.kd", "input_transpose_fusion_1.kd"}
    assert (orphans["note"].str.contains("no launching op recorded")).all()


def test_programs_sharing_a_name_are_rows_of_their_own(gemm, tmp_path):
    gemms = gemm.ops[gemm.ops["op_name"] == "custom-call.1"]
    assert len(gemms) == 5
    assert set(gemms["program_id"]) == {49, 79, 34, 64, 21}
    assert set(gemms["hlo_module"]) == {f"jit_dot#{p}" for p in (49, 79, 34, 64, 21)}
    by_program = gemms.set_index("program_id")
    shapes = {49: (8192, 8192, 4096), 79: (16384, 4096, 1024), 34: (4096, 4096, 4096), 64: (2048, 2048, 8192),
              21: (1024, 1024, 1024)}
    for program, (m, n, k) in shapes.items():
        row = by_program.loc[program]
        assert row["flops"] == 2 * m * n * k
        assert f"M {m} x N {n} x K {k}" in row["note"]
    assert gemm.summary["coverage"] == 1.0
    gemm.write(tmp_path)
    table = pd.read_csv(tmp_path / "ops.csv")
    assert "program_id" in table.columns
    assert set(table.loc[table["op_name"] == "custom-call.1", "program_id"]) == {49, 79, 34, 64, 21}


def test_a_module_name_of_one_program_is_left_as_it_is(legacy):
    assert set(legacy.ops["hlo_module"]) == {"jit_forward_3d_conv"}


@pytest.mark.parametrize("name, copy", [
    ("MemcpyH2D", True), ("Memset 3", True), ("CopyDeviceToDevice", True), ("CopyHostToDevice", True),
    ("__amd_rocclr_copyBuffer.kd", True), ("__amd_rocclr_fillBufferAligned.kd", False),
    ("copy_fusion", False), ("loop_transpose_fusion.kd", False), ("Cijk_Ailk_Bljk", False)])
def test_which_device_events_are_copies(name, copy):
    from traceflops.trace.planes import is_copy_event
    assert is_copy_event(name) is copy


@pytest.mark.parametrize("line, copies_only", [
    ("Stream #7(MemcpyOther)", True), ("Stream #3(MemcpyH2D,MemcpyD2H)", True), ("Stream #2(Memset)", True),
    ("Stream #14(Compute,Memset)", False), ("Stream #1(Kernel)", False), ("Stream #134(Compute)", False)])
def test_which_stream_lines_carry_only_copies(line, copies_only):
    from traceflops.trace.planes import is_copy_line
    assert is_copy_line(line) is copies_only
