"""Training-op formulas and phases on hand-built ops (no TensorFlow): the cases real runs on this
machine do not reach (grouped-conv filter gradients, fused batch-norm gradients, missing shapes)."""
import pytest

from traceflops.costs import FORMULAS, UNKNOWN, ZERO_OPS, OpInfo, op_cost
from traceflops.costs import registry
from traceflops.graph.phases import phase_of
from traceflops.ops import TensorSpec


def t(*dims, dtype="float"):
    return TensorSpec(dtype, tuple(dims))


def test_grouped_conv_weight_gradient_is_forward_macs():
    # Conv2D 4 -> 8 channels, 2 groups, 3x3, output 4x4, batch 2: forward 2*4*4*8 * 3*3*(4/2) = 4608 MACs
    op = OpInfo("Conv2DBackpropFilter", [t(2, 6, 6, 4), t(4, dtype="int32"), t(2, 4, 4, 8)], [t(3, 3, 2, 8)])
    assert op_cost(op).macs == 4608 and op_cost(op).flops == 2 * 4608
    mkl = OpInfo("_MklNativeConv2DBackpropFilter", op.inputs, op.outputs)
    assert op_cost(mkl).macs == 4608


def test_conv_gradients_with_missing_shapes_are_unknown():
    op = OpInfo("Conv2DBackpropFilter", [t(2, 6, 6, 4), None, None], [t(3, 3, 4, 8)])
    assert op_cost(op).source == UNKNOWN


def test_batch_norm_gradient():
    x = t(2, 4, 4, 3)  # 96 elements, 3 channels
    op = OpInfo("FusedBatchNormGradV3", [x, x, t(3), t(3), t(3), t(3)], [x, t(3), t(3)],
                attrs={"is_training": True})
    assert op_cost(op).flops == 9 * 96 + 3 * 3
    op.attrs["is_training"] = False
    assert op_cost(op).flops == 6 * 96 + 3 * 3


@pytest.mark.parametrize("op_type, per_element", [
    ("ReluGrad", 1), ("Relu6Grad", 2), ("EluGrad", 3), ("SeluGrad", 3), ("LeakyReluGrad", 2), ("SigmoidGrad", 3),
    ("TanhGrad", 3), ("RsqrtGrad", 4), ("SqrtGrad", 2), ("SoftplusGrad", 5), ("BitwiseAnd", 1)])
def test_elementwise_gradients(op_type, per_element):
    op = OpInfo(op_type, [t(5, 7), t(5, 7)], [t(5, 7)])
    assert op_cost(op).flops == per_element * 35 and op_cost(op).macs is None


def test_losses_pools_and_updates():
    assert op_cost(OpInfo("SoftmaxCrossEntropyWithLogits", [t(4, 10), t(4, 10)], [t(4), t(4, 10)])).flops == 360
    sparse = OpInfo("SparseSoftmaxCrossEntropyWithLogits", [t(4, 10), t(4, dtype="int64")], [t(4), t(4, 10)])
    assert op_cost(sparse).flops == 6 * 40 + 2 * 4
    pool = OpInfo("MaxPoolGrad", [t(2, 8, 8, 4), t(2, 4, 4, 4), t(2, 4, 4, 4)], [t(2, 8, 8, 4)],
                  attrs={"ksize": [1, 2, 2, 1]})
    assert op_cost(pool).flops == 4 * 128
    update = OpInfo("AssignSubVariableOp", [None, t(24, 5)], [])
    assert op_cost(update).flops == 120
    adam = OpInfo("ResourceApplyAdam", [None] * 3 + [t()] * 6 + [t(3, 3)], [], attrs={"use_nesterov": True})
    assert op_cost(adam).flops == 15 * 9
    assert "Tile" in ZERO_OPS and "BroadcastTo" in ZERO_OPS  # data movement, declared zero


def test_training_ops_are_registered_once_with_their_family():
    with pytest.raises(ValueError):
        registry.register("ReluGrad", family="elementwise")(lambda op: (0, None))
    with pytest.raises(ValueError):
        registry.declare_zero("Reshape", reason="twice")
    assert FORMULAS["_MklNativeReluGrad"] is FORMULAS["ReluGrad"]
    assert registry.family_of("ResourceApplyAdam") == "optimizer"
    assert registry.family_of("Conv2DBackpropFilter") == "conv"


@pytest.mark.parametrize("name, op_type, phase", [
    ("cnn_1/c1_1/BiasAdd", "_FusedConv2D", "forward"),
    ("StatefulPartitionedCall/cnn_1/bn_1/AssignVariableOp", "AssignVariableOp", "forward"),
    ("gradient_tape/cnn_1/c2_1/convolution/Conv2DBackpropInput", "Conv2DBackpropInput", "backward"),
    ("StatefulPartitionedCall/gradient_tape/tfm_1/mha_1/einsum/Einsum_1", "Einsum", "backward"),
    ("AddN_3", "AddN", "backward"),
    ("adam/UnsortedSegmentSum", "UnsortedSegmentSum", "backward"),
    ("StatefulPartitionedCall/adam/Sub_3", "Sub", "optimizer"),
    ("SGD/AssignSubVariableOp", "AssignSubVariableOp", "optimizer"),
    ("adam_sub_23_readvariableop_resource", "_Arg", "optimizer"),
    ("compile_loss/sparse_categorical_crossentropy/Sum", "Sum", "loss_and_metrics"),
    ("div_no_nan", "DivNoNan", "loss_and_metrics"),
    ("StatefulPartitionedCall/Add_1", "AddV2", "loss_and_metrics"),
    ("tensors_0", "_Arg", "forward"),
])
def test_phase_of(name, op_type, phase):
    assert phase_of(name, op_type) == phase
