"""Formulas for op types ordinary models ran unknown: resizing and its gradients, running
sums/products, top-k, grappler's `_UnaryOpsComposition` (PReLU); and a real model using them all."""
import pytest

from traceflops.costs import FORMULA, UNKNOWN, ZERO, OpInfo, op_cost
from traceflops.ops import TensorSpec


def f32(*dims):
    return TensorSpec("float32", list(dims))


def cost(op_type, inputs, outputs=(), **attrs):
    return op_cost(OpInfo(op_type, list(inputs), list(outputs), attrs))


def test_resize_bilinear_and_bicubic_per_output_element():
    image, size = f32(2, 4, 4, 3), TensorSpec("int32", [2])
    bilinear = cost("ResizeBilinear", [image, size], [f32(2, 8, 8, 3)])
    assert (bilinear.flops, bilinear.macs, bilinear.source) == (9 * 2 * 8 * 8 * 3, None, FORMULA)
    assert bilinear.bytes == 4 * (2 * 4 * 4 * 3 + 2 * 8 * 8 * 3) + 4 * 2
    assert cost("ResizeBicubic", [image, size], [f32(2, 8, 8, 3)]).flops == 35 * 2 * 8 * 8 * 3
    assert cost("_MklNativeResizeBilinear", [image, size], [f32(2, 8, 8, 3)]).flops == 9 * 384


def test_resize_gradients_per_incoming_gradient_element():
    grads, original = f32(2, 8, 8, 3), f32(2, 4, 4, 3)
    assert cost("ResizeBilinearGrad", [grads, original], [original]).flops == 10 * 384
    assert cost("ResizeBicubicGrad", [grads, original], [original]).flops == 32 * 384
    assert cost("ResizeNearestNeighborGrad", [grads, TensorSpec("int32", [2])], [original]).flops == 384


def test_nearest_neighbour_resize_is_declared_zero_with_its_reason():
    result = cost("ResizeNearestNeighbor", [f32(1, 2, 2, 1), TensorSpec("int32", [2])], [f32(1, 4, 4, 1)])
    assert (result.flops, result.source) == (0, ZERO)
    assert "nearest" in result.note


def test_cumsum_and_cumprod_one_per_element():
    x, axis = f32(3, 5, 7), TensorSpec("int32", [])
    assert cost("Cumsum", [x, axis], [x], exclusive=False, reverse=False).flops == 105
    assert cost("Cumprod", [x, axis], [x]).flops == 105
    assert cost("Cumsum", [None, axis], [x]).source == UNKNOWN


@pytest.mark.parametrize("n,k,expected", [(10, 1, 4 * 9), (10, 3, 4 * 10 * 2), (16, 16, 4 * 16 * 4)])
def test_top_k_compares(n, k, expected):
    x = f32(4, n)
    result = cost("TopKV2", [x, TensorSpec("int32", [])], [f32(4, k), TensorSpec("int32", [4, k])])
    assert (result.flops, result.source) == (expected, FORMULA)


def test_unary_ops_composition_sums_its_chain():
    x = f32(2, 6, 6, 4)
    result = cost("_UnaryOpsComposition", [x], [x], op_names=["Neg", "Relu"])
    assert result.flops == (1 + 1) * 288 and result.source == FORMULA
    assert cost("_UnaryOpsComposition", [x], [x], op_names=["Sigmoid", "Tanh"]).flops == 5 * 288
    assert cost("_UnaryOpsComposition", [x], [x], op_names=["NoSuchOp"]).source == UNKNOWN
    assert cost("_UnaryOpsComposition", [x], [x]).source == UNKNOWN  # no attributes: unknown, not zero


@pytest.mark.tf
def test_model_with_resizing_prelu_and_cumsum_is_covered(tf_runtime):
    import keras

    import traceflops
    L = keras.layers

    class Cumsum(L.Layer):
        def call(self, t):
            return keras.ops.cumsum(t, axis=1)

    x = keras.Input((8, 8, 3))
    y = L.PReLU()(L.Conv2D(4, 3, padding="same")(x))
    y = L.Resizing(12, 12)(L.UpSampling2D(interpolation="bilinear")(y))
    model = keras.Model(x, Cumsum()(y))
    result = traceflops.profile(model, batch_size=2, steps=2, warmup=1, roofline=False)
    assert result.summary["coverage"] >= 0.99, result.summary["unknown_op_types"]
    ops = result.ops
    by_type = ops.groupby("op_type")["flops"].first()
    assert by_type["ResizeBilinear"] in (9 * 2 * 16 * 16 * 4, 9 * 2 * 12 * 12 * 4)
    resized = sorted(ops.loc[ops["op_type"].str.endswith("ResizeBilinear"), "flops"])
    assert resized == [9 * 2 * 12 * 12 * 4, 9 * 2 * 16 * 16 * 4]
    assert ops.loc[ops["op_type"].str.endswith("Cumsum"), "flops"].tolist() == [2 * 12 * 12 * 4]
