"""A real NVIDIA trace: JAX training steps of a small CNN on an H200 (traces/gpu-jax-h200, recorded by
scripts/record_nvidia_jax_trace.py). The MACs are counted here from the layer configs in its
provenance.json, not from our output: cuDNN convolution custom calls, Triton GEMM fusions, and the
kernels XLA launched inside CUDA graphs (`command_buffer_N`) must all be priced, per phase."""
import json

import pytest

import traceflops
from traceflops.trace import load_trace

from conftest import TRACES

RUN = TRACES / "gpu-jax-h200"
TRACE = RUN / "h200-jax-cnn-train.xplane.pb"
PROVENANCE = json.loads((RUN / "provenance.json").read_text())


def _layer_macs() -> dict:
    """name -> (forward MACs, shape of its input) per layer, from the configs: a convolution counts
    every kernel tap (output positions x kernel taps x input channels), a dense layer batch x in x out."""
    batch, height, width, _ = PROVENANCE["image_nhwc"]
    out = {}
    for layer in PROVENANCE["layers"]:
        if layer["kind"] == "conv":
            assert layer["padding"] == "SAME"
            height, width = -(-height // layer["stride"]), -(-width // layer["stride"])
            taps = layer["kernel"][0] * layer["kernel"][1] * layer["in"]
            out[layer["name"]] = batch * height * width * layer["out"] * taps
        else:
            out[layer["name"]] = batch * layer["in"] * layer["out"]
    return out


LAYER_MACS = _layer_macs()
FIRST = PROVENANCE["layers"][0]["name"]
FORWARD = sum(LAYER_MACS.values())
# Weight gradients of every layer, input gradients of every layer but the first (the image needs none).
BACKWARD = 2 * FORWARD - LAYER_MACS[FIRST]


@pytest.fixture(scope="module")
def result():
    return traceflops.analyze(TRACE)


def test_hand_count_is_what_the_configs_say():
    assert LAYER_MACS == {"conv1": 3_538_944, "conv2": 9_437_184, "dense1": 16_777_216, "dense2": 20_480}
    assert (FORWARD, BACKWARD) == (29_773_824, 56_008_704)


def test_every_kernel_priced_and_macs_per_step_by_phase_are_the_hand_count(result):
    summary = result.summary
    assert summary["steps"] == PROVENANCE["steps"] == 5
    assert summary["kernel_coverage"] == 1.0 and summary["coverage"] == 1.0
    assert summary["macs_per_step"] == FORWARD + BACKWARD
    assert summary["macs_per_step_by_phase"]["forward"] == FORWARD
    assert summary["macs_per_step_by_phase"]["backward"] == BACKWARD
    assert summary["flops_per_step"] >= 2 * (FORWARD + BACKWARD)  # plus bias, ReLU, softmax, SGD
    assert not any("shapes" in w or "executed graph" in w for w in summary["warnings"]), summary["warnings"]


def test_cudnn_convolutions_count_every_kernel_tap(result):
    ops = result.ops.set_index("op_name")
    conv = ops[ops.index.str.startswith("cudnn-conv")]
    by_kind = {name.rsplit(".", 1)[0]: [] for name in conv.index}
    for name, row in conv.iterrows():
        by_kind[name.rsplit(".", 1)[0]].append(int(row["macs"]))
    conv1, conv2 = LAYER_MACS["conv1"], LAYER_MACS["conv2"]
    assert sorted(by_kind["cudnn-conv-bias-activation"]) == [conv1, conv2]  # forward, fused bias and ReLU
    assert sorted(by_kind["cudnn-conv-bw-filter"]) == [conv1, conv2]  # weight gradients
    assert by_kind["cudnn-conv-bw-input"] == [conv2]  # conv1's input is the image: no gradient
    # XLA's own count leaves out the taps on SAME padding: conv1's borders, below the textbook count.
    assert (conv["xla_valid_macs"] <= conv["macs"]).all()
    assert int(ops.loc["cudnn-conv-bw-filter.3", "xla_valid_macs"]) < conv1


def test_kernels_inside_cuda_graphs_are_priced_by_their_own_instruction(result):
    """XLA runs most of this step as two CUDA graphs; their kernels carry `hlo_op` = command_buffer_6 /
    command_buffer_25, which no HLO instruction is called: each is priced as the instruction it is
    named after (`gemm_fusion_dot_2` -> `gemm_fusion_dot.2`)."""
    kernels = result.kernels
    graphed = kernels[kernels["hlo_op"].str.startswith("command_buffer")]
    assert len(graphed) == 16 and graphed["flops"].notna().all()
    assert (graphed["op_name"].str.replace(r"[.-]", "_", regex=True) == graphed["kernel_name"]).all()
    gemm_macs = sorted(result.ops.loc[result.ops["op_name"].str.startswith("gemm_fusion"), "macs"].astype(int))
    dense1, dense2 = LAYER_MACS["dense1"], LAYER_MACS["dense2"]
    # Each dense layer: forward, weight gradient, input gradient (an SGD update fused into a GEMM
    # adds FLOPs, not MACs).
    assert gemm_macs == [dense2] * 3 + [dense1] * 3


def test_a_jax_trace_holds_no_tensorflow_ops():
    """PJRT's host TraceMe `ThenExecuteCallback:GetEventForComputeStreamSyncPoint` looks like a TF
    `node:Type` event; in a trace JAX recorded (its metadata plane says jax_version) it is not one."""
    events = load_trace(TRACE).events
    assert not (events["kind"] == "op").any()
    assert (events["kind"] == "kernel").sum() == 150 and (events["kind"] == "step").sum() == 5
