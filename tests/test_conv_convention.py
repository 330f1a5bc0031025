"""One convolution convention on every path: grouped, depthwise 7x7 and dilated convolutions
give the textbook MACs (output elements x kernel taps x input channels per group) whether TensorFlow's
kernels or XLA run them (on CPU Keras runs a grouped convolution as an XLA function either way)."""
import pytest

import traceflops

pytestmark = pytest.mark.tf
BATCH = 2


def test_same_textbook_macs_with_and_without_xla(tf_runtime):
    import keras
    x = keras.Input((16, 16, 8))
    y = keras.layers.Conv2D(8, 3, padding="same", groups=2, name="grouped")(x)
    y = keras.layers.DepthwiseConv2D(7, padding="same", name="dw7")(y)
    y = keras.layers.Conv2D(4, 3, padding="same", dilation_rate=2, name="dilated")(y)
    model = keras.Model(x, y, name="convs")
    grouped = BATCH * 16 * 16 * 8 * 9 * (8 // 2)  # 147,456: padding taps counted, as published figures do
    depthwise = BATCH * 16 * 16 * 8 * 49  # 200,704
    dilated = BATCH * 16 * 16 * 4 * 9 * 8  # 147,456
    for jit_compile in (False, True):
        result = traceflops.profile(model, batch_size=BATCH, steps=2, warmup=1, roofline=False,
                                    jit_compile=jit_compile)
        assert result.summary["macs_per_step"] == grouped + depthwise + dilated, jit_compile
        assert result.summary["coverage"] >= 0.99
    # XLA's own (valid-window) count stays beside it, at most the textbook one (below it where padding taps exist)
    xla = result.ops[result.ops["xla_valid_macs"].notna()]
    assert len(xla) and (xla["xla_valid_macs"] <= xla["macs"]).all() and (xla["xla_valid_macs"] < xla["macs"]).any()
