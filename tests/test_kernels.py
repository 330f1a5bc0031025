"""Per-kernel tables on a synthetic two-GPU trace (every number by hand) and on real GPU traces."""
import math

import pandas as pd

import traceflops
import pytest

from conftest import TRACES
from traceflops.trace import hlo_schema
from traceflops.testing.builder import Uint64, XSpaceBuilder
from traceflops.roofline.gpu_specs import gpu_ceilings
from traceflops.join.kernels import KERNEL_COLUMNS, MEMCPY_COLUMNS, kernel_coverage, kernel_table, parse_kernel_details
from traceflops.trace import load_trace

GPU = TRACES / "gpu"
US = 1_000_000  # picoseconds per microsecond


# ---------------------------------------------------------------- building a trace

def _shape(dims, element_type=11):
    return hlo_schema.ShapeProto(element_type=element_type, dimensions=dims)


def hlo_module():
    """jit_f (program 7): dot.1 = f32[32,64] x f32[64,16]; fusion.2 = exp(dot.1 * dot.1)."""
    proto = hlo_schema.HloProto()
    m = proto.hlo_module
    m.name, m.id, m.entry_computation_id, m.entry_computation_name = "jit_f", 7, 1, "main"
    entry = m.computations.add(name="main", id=1, root_id=4)
    fused = m.computations.add(name="fused_computation", id=2, root_id=13, is_fusion_computation=True)
    entry.instructions.add(name="p0", opcode="parameter", id=1, shape=_shape([32, 64]))
    entry.instructions.add(name="p1", opcode="parameter", id=2, shape=_shape([64, 16]), parameter_number=1)
    dot = entry.instructions.add(name="dot.1", opcode="dot", id=3, operand_ids=[1, 2], shape=_shape([32, 16]))
    dot.dot_dimension_numbers.lhs_contracting_dimensions.append(1)
    dot.dot_dimension_numbers.rhs_contracting_dimensions.append(0)
    dot.metadata.op_name = "jit(f)/dot_general"
    entry.instructions.add(name="fusion.2", opcode="fusion", fusion_kind="kLoop", id=4, operand_ids=[3, 3],
                           called_computation_ids=[2], shape=_shape([32, 16]))
    fused.instructions.add(name="q0", opcode="parameter", id=10, shape=_shape([32, 16]))
    fused.instructions.add(name="q1", opcode="parameter", id=11, shape=_shape([32, 16]), parameter_number=1)
    fused.instructions.add(name="m", opcode="multiply", id=12, operand_ids=[10, 11], shape=_shape([32, 16]))
    fused.instructions.add(name="e", opcode="exponential", id=13, operand_ids=[12], shape=_shape([32, 16]))
    return proto


V100 = {"clock_rate": 1_530_000, "core_count": 80, "memory_bandwidth": Uint64(898_048_000_000),
        "memory_size": Uint64(16_945_512_448), "compute_cap_major": 7, "compute_cap_minor": 0}
A100 = {"clock_rate": 1_410_000, "core_count": 108, "memory_bandwidth": Uint64(1_555_200_000_000),
        "compute_cap_major": 8, "compute_cap_minor": 0, "device_vendor": "Nvidia"}
MATMUL = "model/dense/MatMul:MatMul#shape=(float[64,128];float[128,256])#"
CONV = "model/conv/Conv2D:Conv2D#shape=(float[8,32,32,3];float[3,3,3,16])#"
SGEMM_DETAILS = "regs:128 static_shared:16384 dynamic_shared:0 grid:4,2,1 block:256,1,1 occ_pct:25.0"
EIGEN_DETAILS = "regs:16 shm:0 grid:160,1,1 block:1024,1,1"


def build_space():
    space = XSpaceBuilder(hostnames=["synthetic"])
    host = space.plane("/host:CPU")
    host.line(1, "tf_Compute/1", timestamp_ns=1_000_000).event(
        "model/dense/MatMul:MatMul", 0, 30 * US, {"shape": "(float[64,128];float[128,256])"}, display_name="MatMul")

    gpu0 = space.plane("/device:GPU:0", V100)
    compute = gpu0.line(7, "Stream #7(Compute)", timestamp_ns=1_000_000)
    at = 0

    def launch(line, name, duration, stats):
        nonlocal at
        line.event(name, at, duration, stats)
        at += duration + US

    for _ in range(2):  # MatMul runs twice: a GEMM and its split-K reduction each time
        launch(compute, "volta_sgemm_128x64_nn", 10 * US,
               {"annotation": MATMUL, "kernel_details": SGEMM_DETAILS, "correlation_id": 1})
        launch(compute, "splitKreduce_kernel", 1 * US,
               {"annotation": MATMUL, "kernel_details": EIGEN_DETAILS, "correlation_id": 2})
    launch(compute, "void Eigen::internal::EigenMetaKernel<scalar_sum_op>", 2 * US,
           {"tf_op": "model/add:AddV2", "shape": "(float[64,256];float[256])", "kernel_details": EIGEN_DETAILS})
    launch(compute, "void Eigen::internal::EigenMetaKernel<scalar_cast_op>", 1_500_000,
           {"tf_op": "model/Cast:Cast", "shape": "(float[64,256])", "kernel_details": EIGEN_DETAILS})
    launch(compute, "implicit_convolve_sgemm", 8 * US, {"annotation": CONV})
    launch(compute, "nchwToNhwcKernel", 1 * US, {"annotation": CONV})
    copies = gpu0.line(8, "Stream #8(MemcpyH2D)", timestamp_ns=1_000_000)
    copies.event("MemcpyH2D", 0, 100 * US, {"memcpy_details": "size:1048576 dest:0 async:1",
                                             "annotation": "n/_1:_Recv"})
    copies.event("MemcpyH2D", 200 * US, 50 * US, {"memcpy_details": "size:1048576 dest:0 async:1",
                                                   "annotation": "n/_1:_Recv"})

    gpu1 = space.plane("/device:GPU:1", A100)
    stream = gpu1.line(9, "Stream #9(Compute)", timestamp_ns=1_000_000)
    at = 0
    xla = {"tf_op": "XlaModule:", "hlo_module": "jit_f", "program_id": 7}
    launch(stream, "sm80_xmma_gemm_f32f32_f32_nn_n", 4 * US, {**xla, "hlo_op": "dot.1"})
    launch(stream, "loop_exp_fusion", 1 * US, {**xla, "hlo_op": "fusion.2"})
    # The same fusion, recorded without a program id: joined on (module, instruction).
    launch(stream, "loop_exp_fusion", 1 * US, {"hlo_module": "jit_f", "hlo_op": "fusion.2"})
    launch(stream, "loop_fusion_99", 500_000, {**xla, "hlo_op": "fusion.99"})
    launch(stream, "void Eigen::internal::EigenMetaKernel<scalar_product_op>", 500_000,
           {"tf_op": "model/mul:Mul", "shape": "(half[1024];half[])"})

    space.plane("/host:metadata").event_metadata("jit_f(7)", stats={"Hlo Proto": hlo_module().SerializeToString()})
    return space


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path = build_space().write(tmp_path_factory.mktemp("synthetic") / "synthetic.xplane.pb")
    trace = load_trace(path)
    kernels, memcpys = kernel_table(trace)
    return trace, kernels, memcpys


def one(frame, **where):
    mask = pd.Series(True, index=frame.index)
    for key, value in where.items():
        mask &= frame[key] == value
    rows = frame[mask]
    assert len(rows) == 1, where
    return rows.iloc[0]


# ---------------------------------------------------------------- the synthetic trace

def test_synthetic_columns_and_rows(synthetic):
    _, kernels, memcpys = synthetic
    assert list(kernels.columns) == KERNEL_COLUMNS and list(memcpys.columns) == MEMCPY_COLUMNS
    assert len(kernels) == 11 and kernels["occurrences"].sum() == 13
    assert set(kernels["device"]) == {"GPU:0", "GPU:1"}


def test_gemm_op_flops_go_to_the_gemm_kernel(synthetic):
    _, kernels, _ = synthetic
    gemm = one(kernels, kernel_name="volta_sgemm_128x64_nn")
    per_run = 2 * 64 * 128 * 256  # [64,128] x [128,256]
    assert (gemm.op_name, gemm.op_type, gemm.occurrences) == ("model/dense/MatMul", "MatMul", 2)
    assert gemm.total_flops == 2 * per_run and gemm.flops == per_run  # issue 13: per occurrence, totals named
    assert gemm.total_time_us == 20.0 and gemm.avg_time_us == 10.0
    assert gemm.gflops_per_s == pytest.approx(2 * per_run / 20e-6 / 1e9, rel=1e-12)  # 419.4304
    assert gemm.total_bytes == 2 * (64 * 128 + 128 * 256) * 4  # inputs only: outputs are not in a trace
    # offline there is no graph: the transposes were inferred from the shapes, and the row says so
    assert (gemm.flops_source, gemm["dtype"], gemm.stream) == ("shapes", "float32", "Stream #7(Compute)")
    assert "inferred from the shapes as False/False" in gemm.note
    assert (gemm.grid, gemm.block, gemm.registers, gemm.shared_mem_bytes, gemm.occupancy_pct) == \
           ("4,2,1", "256,1,1", 128, 16384, 25.0)
    split = one(kernels, kernel_name="splitKreduce_kernel")
    assert (split.flops, split.bytes, split.flops_source, split.gflops_per_s) == (0, 0, "split", 0)
    assert "volta_sgemm_128x64_nn" in split.note


def test_elementwise_and_zero_kernels(synthetic):
    _, kernels, _ = synthetic
    add = one(kernels, op_type="AddV2")
    assert add.flops == 64 * 256 and add.gflops_per_s == pytest.approx(64 * 256 / 2e-6 / 1e9, rel=1e-12)
    assert add["shape"] == "(float[64,256];float[256])"
    cast = one(kernels, op_type="Cast")
    assert (cast.flops, cast.flops_source, cast.gflops_per_s) == (0, "zero", 0)
    mul = one(kernels, op_type="Mul")
    assert (mul.device, mul.flops, mul["dtype"]) == ("GPU:1", 1024, "float16")
    assert mul.gflops_per_s == pytest.approx(1024 / 0.5e-6 / 1e9, rel=1e-12)  # 2.048


def test_unknown_op_keeps_all_its_kernels_unknown(synthetic):
    _, kernels, _ = synthetic
    conv = one(kernels, kernel_name="implicit_convolve_sgemm")
    assert conv.flops_source == "unknown" and math.isnan(conv.flops) and math.isnan(conv.gflops_per_s)
    helper = one(kernels, kernel_name="nchwToNhwcKernel")
    assert helper.flops_source == "unknown" and math.isnan(helper.flops)
    assert "not the op's main kernel" in helper.note


def test_xla_kernels_join_their_hlo_instruction(synthetic):
    _, kernels, _ = synthetic
    dot = one(kernels, hlo_op="dot.1")
    assert (dot.op_name, dot.op_type, dot.hlo_module, dot.program_id) == ("dot.1", "dot", "jit_f", 7)
    assert dot.flops == 2 * 32 * 16 * 64 and dot.flops_source == "xla"
    assert dot.gflops_per_s == pytest.approx(65536 / 4e-6 / 1e9, rel=1e-12)  # 16.384
    assert dot.bytes == (32 * 64 + 64 * 16 + 32 * 16) * 4 and dot.framework_op == "jit(f)/dot_general"
    fusions = kernels[kernels["hlo_op"] == "fusion.2"]
    assert len(fusions) == 2  # one row with program id 7, one without
    assert (fusions["flops"] == 2 * 32 * 16).all()  # multiply + exp per element
    assert list(fusions["gflops_per_s"]) == pytest.approx([1024 / 1e-6 / 1e9] * 2, rel=1e-12)
    assert fusions["program_id"].isna().sum() == 1
    missing = one(kernels, hlo_op="fusion.99")
    assert missing.flops_source == "unknown" and "not found" in missing.note


def test_full_analysis_builds_the_same_kernel_table(synthetic):
    """One priced record feeds every table: the analysis' kernels.csv is the kernel table."""
    trace, kernels, memcpys = synthetic
    result = traceflops.analyze(trace.paths[0])
    pd.testing.assert_frame_equal(result.kernels, kernels)
    pd.testing.assert_frame_equal(result.memcpy, memcpys)


def test_synthetic_coverage(synthetic):
    _, kernels, _ = synthetic
    total = 20 + 2 + 2 + 1.5 + 8 + 1 + 4 + 1 + 1 + 0.5 + 0.5
    unknown = 8 + 1 + 0.5  # the Conv2D kernels and the unmatched HLO instruction
    assert kernels["total_time_us"].sum() == pytest.approx(total)
    assert kernel_coverage(kernels) == pytest.approx((total - unknown) / total, rel=1e-12)


def test_synthetic_memcpy(synthetic):
    _, _, memcpys = synthetic
    row = one(memcpys, name="MemcpyH2D")
    assert (row.device, row.stream, row.op_name, row.op_type, row.occurrences) == \
           ("GPU:0", "Stream #8(MemcpyH2D)", "n/_1", "_Recv", 2)
    assert row.total_bytes == 2 * 1048576 and row.bytes == 1048576 and row.total_time_us == 150.0 and row.avg_time_us == 75.0
    assert row.gbytes_per_s == pytest.approx(2 * 1048576 / 150e-6 / 1e9, rel=1e-12)


def test_synthetic_ceilings(synthetic):
    trace, _, _ = synthetic
    planes = {p.name: p for p in trace.planes}
    assert gpu_ceilings(planes["/device:GPU:0"])["peak_gflops_per_s"]["float32"] == 15667.2
    a100 = gpu_ceilings(planes["/device:GPU:1"])
    assert a100["device"] == "GPU:1" and a100["peak_gflops_per_s"]["float32"] == pytest.approx(19491.84)
    assert a100["bandwidth_gbytes_per_s"] == 1555.2


def test_parse_kernel_details():
    assert parse_kernel_details("regs:38 shm:0 grid:160,1,1 block:1024,1,1") == {
        "grid": "160,1,1", "block": "1024,1,1", "registers": 38, "shared_mem_bytes": 0, "occupancy_pct": None}
    amd = parse_kernel_details(" grid:16,16,1 block:256,1,1 private_mem:0 group_mem:51200 occ_pct:0")
    assert amd == {"grid": "16,16,1", "block": "256,1,1", "registers": None, "shared_mem_bytes": 51200,
                   "occupancy_pct": None}  # ROCm writes occ_pct:0 when it did not measure
    cupti = parse_kernel_details("regs:64 static_shared:1024 dynamic_shared:2048 grid:8,1,1 block:128,1,1 "
                                 "occ_pct:62.5")
    assert (cupti["shared_mem_bytes"], cupti["occupancy_pct"]) == (3072, 62.5)
    assert parse_kernel_details(None)["grid"] is None


# ---------------------------------------------------------------- the V100 BERT trace (TensorFlow, no XLA)

@pytest.fixture(scope="module")
def v100():
    trace = load_trace(GPU / "tf-v100-bert-multiworker.xplane.pb")
    kernels, memcpys = kernel_table(trace)
    return trace, kernels, memcpys


def test_v100_every_kernel_has_its_op(v100):
    _, kernels, _ = v100
    assert len(kernels) == 1330 and kernels["occurrences"].sum() == 1330
    assert (kernels["op_name"] != "").all() and (kernels["op_type"] != "").all()
    assert set(kernels["op_type"]) == {"Cast", "RandomUniform", "GreaterEqual", "Mul", "BroadcastTo",
                                       "Reciprocal", "Tile"}
    assert (kernels["registers"].notna()).all() and (kernels["grid"].notna()).all()


def test_v100_kernel_flops_coverage(v100):
    """Share of kernel time with known or declared-zero FLOPs. RandomUniform (27% of the kernel
    time) needs costs.py to declare it (see docs/xla.md, 'What costs.py needs')."""
    _, kernels, _ = v100
    unknown = kernels[kernels["flops"].isna()]
    assert kernel_coverage(kernels) >= 0.99, unknown.groupby("op_type")["total_time_us"].sum()


def test_v100_greater_equal_kernel(v100):
    _, kernels, _ = v100
    row = one(kernels, op_name="replica_4/bert_span_labeler/bert_encoder_1/transformer/layer_5/dropout_1/"
                               "dropout/GreaterEqual")
    assert row["shape"] == "(half[4,384,4096];half[])" and row.device == "GPU:4"
    assert row.flops == 4 * 384 * 4096 and row.total_time_us == 39.936
    assert row.gflops_per_s == pytest.approx(4 * 384 * 4096 / 39.936e-6 / 1e9, rel=1e-12)
    assert (row.registers, row.grid, row.block) == (16, "160,1,1", "1024,1,1")


def test_v100_memcpys(v100):
    _, _, memcpys = v100
    row = one(memcpys, device="GPU:4", stream="Stream #136(MemcpyD2H)", op_name="n/_1")
    assert (row.op_type, row.bytes, row.total_time_us) == ("_HostRecv", 6144, 5.376)
    assert row.gbytes_per_s == pytest.approx(6144 / 5.376e-6 / 1e9, rel=1e-12)
    assert memcpys["bytes"].notna().all()


# ---------------------------------------------------------------- real XLA traces

def test_conv3d_gemm_kernel_carries_the_convolution():
    kernels, _ = kernel_table(load_trace(GPU / "jax-mi300-conv3d.xplane.pb"))
    conv = kernels[(kernels["hlo_op"] == "cudnn-conv.1") & (kernels["device"] == "GPU:1")]
    main = conv[conv["kernel_name"].str.startswith("Cijk_")].iloc[0]
    im2col = conv[conv["kernel_name"] == "Im3d2Col.kd"].iloc[0]
    # Every kernel tap (issue 15/13: textbook count); XLA's valid-window count beside it, per occurrence.
    assert main.total_flops == 5 * 2 * (5120 * 34 * 31 * 53) * (1 * 2 * 2) * 16 and main.flops_source == "xla"
    assert main.flops == main.total_flops // 5 and main.xla_valid_macs == 16 * 5120 * 32 * 60 * 104
    assert (im2col.flops, im2col.flops_source) == (0, "split")
    assert main.gflops_per_s == pytest.approx(main.total_flops / (main.total_time_us * 1e-6) / 1e9, rel=1e-12)
    # Two kernels on GPU:0 carry no hlo_op (they ran outside a module): unknown, 0.08% of the time.
    assert kernel_coverage(kernels) == pytest.approx(1 - (16.08 + 6.8) / kernels["total_time_us"].sum())


def test_fused_attention_kernels():
    kernels, _ = kernel_table(load_trace(GPU / "jax-mi355-fused-attn.xplane.pb"))
    backward = kernels[kernels["hlo_op"] == "te_fused_attn_backward_ffi.12"]
    main = backward[backward["flops_source"] == "xla"]
    assert len(main) == 1 and "FmhaBwdDQDKDVKernel" in main.iloc[0].kernel_name
    assert main.iloc[0].total_flops == 5 * 85_941_288_960 and main.iloc[0].flops == 85_941_288_960
    assert set(backward["flops_source"]) == {"xla", "split"} and len(backward) == 4
    assert kernel_coverage(kernels) == 1.0


def test_gemm_custom_call_kernels():
    kernels, memcpys = kernel_table(load_trace(GPU / "jax-mi300-gemm.xplane.pb"))
    row = one(kernels, hlo_op="custom-call.1", program_id=49)
    assert row.total_flops == 3 * 2 * 8192 * 8192 * 4096 and row.kernel_name.startswith("Cijk_")
    assert row.gflops_per_s == pytest.approx(row.total_flops / (row.total_time_us * 1e-6) / 1e9, rel=1e-12)
    assert (row.grid, row.block, row.shared_mem_bytes) == ("32,37,1", "256,1,1", 29568)
    assert pd.isna(row.occupancy_pct) and pd.isna(row.registers)  # ROCm: occ_pct:0, no regs
    # The runtime's copy kernels (HIP memcpy as kernels) are copies (issue 21): memcpy.csv, not kernels.
    assert not (kernels["kernel_name"] == "__amd_rocclr_copyBuffer.kd").any() and kernel_coverage(kernels) == 1.0
    copies = memcpys[memcpys["name"] == "__amd_rocclr_copyBuffer.kd"]
    assert copies["occurrences"].sum() == 24 and len(copies) == 2
    # One is XLA's `copy.1` (a bf16 scalar): its bytes from the HLO, so its bandwidth is known.
    xla_copy = one(copies, op_name="copy.1")
    assert xla_copy.total_bytes == 12 * 2 and xla_copy.gbytes_per_s > 0
