"""`traceflops count`: model FLOPs from Keras layer configs, pinned on hand-computed counts per layer type.

Every expected figure is arithmetic from the layer's config written here (one FMA = 2 FLOPs; bias adds and
activations per output element at the registry's per-element figures: relu 1, sigmoid 4, tanh 1, softmax 5),
never a number copied from the tool.
"""
import json
import math
import subprocess
import sys

import pytest

from conftest import CLI_ENV, run_cli

pytestmark = pytest.mark.tf

RELU, SIGMOID, TANH, SOFTMAX = 1, 4, 1, 5


@pytest.fixture(scope="module")
def keras():
    import keras
    return keras


def single(keras, layer, input_shape, batch_size=1, **kwargs):
    """The one counted row of a model made of `layer` on `input_shape`."""
    import traceflops
    x = keras.Input(input_shape)
    model = keras.Model(x, layer(x))
    result = traceflops.count(model, batch_size=batch_size, **kwargs)
    assert result.not_counted == []
    rows = result.layers[result.layers["type"] != "InputLayer"]
    assert len(rows) == 1
    return rows.iloc[0], result


def test_dense_on_3d_input(keras):
    row, result = single(keras, keras.layers.Dense(3, activation="relu"), (5, 7), batch_size=2)
    macs = 2 * 5 * 7 * 3
    assert row["macs"] == macs == result.macs
    assert row["flops"] == 2 * macs + 2 * 5 * 3 + RELU * 2 * 5 * 3 == result.flops
    assert row["params"] == 7 * 3 + 3


@pytest.mark.parametrize("conv, input_shape, out_hw, in_per_group, taps", [
    (dict(filters=16, kernel_size=3), (32, 32, 3), (30, 30), 3, 3 * 3),                       # valid
    (dict(filters=8, kernel_size=5, strides=2, padding="same"), (32, 32, 3), (16, 16), 3, 5 * 5),  # strided, same
    (dict(filters=4, kernel_size=3, dilation_rate=2), (32, 32, 3), (28, 28), 3, 3 * 3),       # dilated: 32 - 2*2
    (dict(filters=12, kernel_size=3, groups=4, padding="same"), (16, 16, 8), (16, 16), 8 // 4, 3 * 3),  # grouped
])
def test_conv2d(keras, conv, input_shape, out_hw, in_per_group, taps):
    row, _ = single(keras, keras.layers.Conv2D(**conv), input_shape, batch_size=8)
    outputs = 8 * out_hw[0] * out_hw[1] * conv["filters"]
    assert row["macs"] == outputs * taps * in_per_group
    assert row["flops"] == 2 * outputs * taps * in_per_group + outputs  # + bias


def test_conv2d_valid_written_out(keras):
    row, _ = single(keras, keras.layers.Conv2D(16, 3), (32, 32, 3), batch_size=8)
    assert row["flops"] == 2 * 8 * 30 * 30 * 3 * 3 * 3 * 16 + 8 * 30 * 30 * 16


def test_depthwise_separable_transposed_conv3d(keras):
    row, _ = single(keras, keras.layers.DepthwiseConv2D(3, depth_multiplier=2), (16, 16, 8))
    assert row["macs"] == 14 * 14 * (8 * 2) * 3 * 3
    assert row["flops"] == 2 * 14 * 14 * 16 * 9 + 14 * 14 * 16
    row, _ = single(keras, keras.layers.SeparableConv2D(10, 3, padding="same"), (16, 16, 8))
    assert row["macs"] == 16 * 16 * 8 * 3 * 3 + 16 * 16 * 8 * 10
    assert row["flops"] == 2 * (16 * 16 * 8 * 9 + 16 * 16 * 8 * 10) + 16 * 16 * 10
    row, _ = single(keras, keras.layers.Conv2DTranspose(6, 3, strides=2, padding="same"), (8, 8, 4))
    assert row["macs"] == 8 * 8 * 3 * 3 * 4 * 6  # input positions x taps x in x out channels
    assert row["flops"] == 2 * 8 * 8 * 9 * 4 * 6 + 16 * 16 * 6
    row, _ = single(keras, keras.layers.Conv3D(4, 3, activation="sigmoid"), (8, 8, 8, 2), batch_size=2)
    outputs = 2 * 6 * 6 * 6 * 4
    assert row["macs"] == outputs * 3 * 3 * 3 * 2
    assert row["flops"] == 2 * outputs * 27 * 2 + outputs + SIGMOID * outputs


def test_pooling_norm_merge_and_zero_layers(keras):
    import traceflops
    x = keras.Input((8, 8, 4))
    a = keras.layers.MaxPooling2D(2, name="max")(x)             # 4x4x4 outputs, window 4: 3 compares each
    b = keras.layers.AveragePooling2D(2, name="avg")(x)         # window 4 per output
    c = keras.layers.Add(name="add")([a, b])                   # 1 per element
    d = keras.layers.BatchNormalization(name="bn")(c)          # 2 per element + 5 per channel
    e = keras.layers.LayerNormalization(name="ln")(d)          # 8 per element
    f = keras.layers.Activation("tanh", name="act")(e)
    g = keras.layers.GlobalAveragePooling2D(name="gap")(f)     # input elements
    h = keras.layers.Dropout(0.5, name="drop")(keras.layers.Flatten(name="flat")(f))
    model = keras.Model(x, [g, h])
    result = traceflops.count(model)
    flops = dict(zip(result.layers["layer"], result.layers["flops"]))
    n = 4 * 4 * 4
    assert flops["max"] == 3 * n and flops["avg"] == 4 * n and flops["add"] == n
    assert flops["bn"] == 2 * n + 5 * 4 and flops["ln"] == 8 * n and flops["act"] == TANH * n
    assert flops["gap"] == n and flops["flat"] == 0 and flops["drop"] == 0
    assert result.macs == 0 and result.not_counted == []


@pytest.fixture(scope="module")
def attention_model(keras):
    x = keras.Input((10, 16))
    full = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8, name="full")(x, x)
    causal = keras.layers.MultiHeadAttention(num_heads=4, key_dim=8, name="causal")(x, x, use_causal_mask=True)
    return keras.Model(x, [full, causal])


def test_multi_head_attention_full_and_causal(attention_model):
    import traceflops
    result = traceflops.count(attention_model, batch_size=2)
    rows = result.layers.set_index("layer")
    B, T, d, H, k = 2, 10, 16, 4, 8
    projections = 3 * B * T * d * H * k + B * T * H * k * d    # Q, K, V and the output projection
    core = B * H * T * T * k + B * H * T * T * k               # QK^T and AV over every pair
    biases = 3 * B * T * H * k + B * T * d
    scores = B * H * T * T
    for name in ("full", "causal"):
        assert rows.loc[name, "macs"] == projections + core
        assert rows.loc[name, "flops"] == 2 * (projections + core) + biases + SOFTMAX * scores + scores
    assert pd_isna(rows.loc["full", "causal_flops"])
    pairs = T * (T + 1) // 2
    causal_core = 2 * B * H * pairs * k
    assert rows.loc["causal", "causal_macs"] == projections + causal_core
    assert rows.loc["causal", "causal_flops"] == (2 * (projections + causal_core) + biases
                                                  + SOFTMAX * B * H * pairs + B * H * pairs)


def pd_isna(value):
    import pandas as pd
    return pd.isna(value)


@pytest.fixture(scope="module")
def recurrent_model(keras):
    x = keras.Input((10, 16))
    h = keras.layers.LSTM(12, return_sequences=True, name="lstm")(x)
    h = keras.layers.GRU(6, name="gru")(h)                                  # reset_after=True (default)
    y = keras.layers.Bidirectional(keras.layers.LSTM(5, return_sequences=True), merge_mode="sum",
                                   name="bi")(x)
    return keras.Model(x, [h, y])


def test_lstm_gru_bidirectional(recurrent_model):
    import traceflops
    result = traceflops.count(recurrent_model, batch_size=3)
    rows = result.layers.set_index("layer")
    B, T = 3, 10
    lstm_macs = B * T * 4 * 12 * (16 + 12)
    # per unit and step: z = xW + hU (4 adds) + b (4), 3 sigmoid gates, tanh(g), f*c, i*g, +, tanh(c), o*
    lstm_gates = B * T * 12 * (4 + 4 + 3 * SIGMOID + TANH + 1 + 1 + 1 + TANH + 1)
    assert rows.loc["lstm", "macs"] == lstm_macs
    assert rows.loc["lstm", "flops"] == 2 * lstm_macs + lstm_gates
    gru_macs = B * T * 3 * 6 * (12 + 6)
    # input and recurrent biases (3 + 3), z and r: add + sigmoid, r*rh, x_h + rh, tanh, z*h, 1-z, *, +
    gru_gates = B * T * 6 * (3 + 3 + 2 * (1 + SIGMOID) + 1 + 1 + TANH + 1 + 1 + 1 + 1)
    assert rows.loc["gru", "macs"] == gru_macs
    assert rows.loc["gru", "flops"] == 2 * gru_macs + gru_gates
    bi_macs = B * T * 4 * 5 * (16 + 5)
    for direction in ("bi/forward_lstm", "bi/backward_lstm"):
        assert rows.loc[direction, "macs"] == bi_macs
        assert rows.loc[direction, "params"] == 4 * 5 * (16 + 5) + 4 * 5
    assert rows.loc["bi", "flops"] == B * T * 5  # the sum merge
    assert rows.loc["bi", "params"] == 0
    assert result.macs == lstm_macs + gru_macs + 2 * bi_macs


def test_nested_model_and_time_distributed(keras):
    import traceflops
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, name="d4")], name="inner")
    x = keras.Input((3, 6))
    td = keras.layers.TimeDistributed(keras.layers.Dense(2, name="d2"), name="td")(x)
    y = inner(keras.layers.Reshape((18,), name="flat")(x)[:, :6])  # a keras.ops slice (GetItem): zero
    model = keras.Model(x, [td, y])
    result = traceflops.count(model, batch_size=5)
    rows = result.layers.set_index("layer")
    assert rows.loc["inner/d4", "macs"] == 5 * 6 * 4
    assert rows.loc["td/d2", "macs"] == 5 * 3 * 6 * 2
    assert rows.loc["td/d2", "flops"] == 2 * 5 * 3 * 6 * 2 + 5 * 3 * 2
    assert result.not_counted == [] and rows.loc["flat", "flops"] == 0


def test_subclassed_model_needs_input_shape(keras):
    import traceflops
    from traceflops.errors import UsageError

    class Tiny(keras.Model):
        def __init__(self):
            super().__init__(name="tiny")
            self.hidden = keras.layers.Dense(8, activation="relu", name="hidden")
            self.out = keras.layers.Dense(2, name="out")

        def call(self, x):
            return self.out(self.hidden(x) * 2.0)

    with pytest.raises(UsageError, match="input-shape"):
        traceflops.count(Tiny())
    result = traceflops.count(Tiny(), input_shape=(5,), batch_size=4)
    rows = result.layers.set_index("layer")
    assert rows.loc["hidden", "macs"] == 4 * 5 * 8 and rows.loc["out", "macs"] == 4 * 8 * 2
    assert result.flops == 2 * 4 * 5 * 8 + 4 * 8 + RELU * 4 * 8 + 2 * 4 * 8 * 2 + 4 * 2


def test_custom_layer_registered_or_not_counted(keras):
    import traceflops
    from traceflops.count import LayerCount

    class Square(keras.layers.Layer):
        def call(self, x):
            return x * x

    class Cube(keras.layers.Layer):
        def call(self, x):
            return x * x * x

    @traceflops.register_layer_formula(Square)
    def square(call):
        return LayerCount(flops=math.prod(call.output_shape))

    x = keras.Input((7,))
    result = traceflops.count(keras.Model(x, Cube(name="cube")(Square(name="sq")(x))), batch_size=3)
    assert result.flops == 3 * 7
    assert result.not_counted == [{"layer": "cube", "type": "Cube",
                                   "reason": result.not_counted[0]["reason"]}]
    assert "formula" in result.not_counted[0]["reason"]


def test_train_small_sequential(keras):
    import traceflops
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="relu", name="a"),
                              keras.layers.Dense(3, name="b")])
    result = traceflops.count(model, batch_size=2, train=True)
    rows = result.layers.set_index("layer")
    a_macs, b_macs = 2 * 5 * 8, 2 * 8 * 3
    assert rows.loc["a", "forward_flops"] == 2 * a_macs + 2 * 8 + RELU * 2 * 8
    # a reads the model input: weight gradient only; + bias gradient (16 - 8 adds) + ReluGrad (1 each)
    assert rows.loc["a", "backward_flops"] == 2 * a_macs + (2 * 8 - 8) + 2 * 8
    # b: weight and input gradients; bias gradient 6 - 3 adds
    assert rows.loc["b", "backward_flops"] == 2 * (2 * b_macs) + (2 * 3 - 3)
    assert result.macs == (a_macs + a_macs) + (b_macs + 2 * b_macs)
    assert result.flops == rows["forward_flops"].sum() + rows["backward_flops"].sum()
    params = 5 * 8 + 8 + 8 * 3 + 3
    assert result.optimizer.name == "SGD" and result.optimizer_flops == 2 * params  # v -= lr * g
    model.compile(optimizer=keras.optimizers.Adam(), loss="mse")
    assert traceflops.count(model, train=True).optimizer_flops == 12 * params
    model.compile(optimizer=keras.optimizers.SGD(momentum=0.9), loss="mse")
    assert traceflops.count(model, train=True).optimizer_flops == 4 * params


def test_frozen_prefix_needs_no_backward(keras):
    import traceflops
    frozen = keras.layers.Dense(4, name="frozen", trainable=False)
    model = keras.Sequential([keras.Input((3,)), frozen, keras.layers.Dense(2, name="top")])
    rows = traceflops.count(model, train=True).layers.set_index("layer")
    assert rows.loc["frozen", "backward_flops"] == 0
    assert rows.loc["top", "backward_macs"] == 4 * 2  # weight gradient only: its input needs none


@pytest.fixture(scope="module")
def small_file(keras, tmp_path_factory):
    path = tmp_path_factory.mktemp("count") / "small.keras"
    model = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(3, 3, name="conv"),
                              keras.layers.Flatten(name="flat"), keras.layers.Dense(4, name="dense")])
    model.save(path)
    return path


def test_cli_json_shape(small_file):
    proc = run_cli("count", small_file, "--batch-size", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert set(found) >= {"model", "batch_size", "train", "macs", "flops", "layers", "not_counted"}
    assert found["batch_size"] == 2 and found["train"] is False and found["not_counted"] == []
    assert [row["layer"] for row in found["layers"]] == ["conv", "flat", "dense"]
    assert set(found["layers"][0]) >= {"layer", "type", "macs", "flops", "params"}
    conv_macs, dense_macs = 2 * 4 * 4 * 3 * 9 * 2, 2 * 48 * 4
    assert found["macs"] == conv_macs + dense_macs
    table = run_cli("count", small_file)
    assert table.returncode == 0 and "conv (Conv2D)" in table.stdout
    assert max(len(line) for line in table.stdout.splitlines()) <= 80


def test_cli_errors(tmp_path):
    proc = run_cli("count", tmp_path / "missing.keras")
    assert proc.returncode == 3 and proc.stderr.startswith("traceflops: error:")
    assert len(proc.stderr.strip().splitlines()) == 1
    bogus = tmp_path / "bogus.keras"
    bogus.write_text("not a model")
    proc = run_cli("count", bogus)
    assert proc.returncode == 3 and proc.stderr.startswith("traceflops: error:")
    assert run_cli("count", bogus, "--batch-size", "0").returncode == 2


def test_jax_backend_counts_the_same_without_tensorflow(small_file):
    code = ("import sys, traceflops; r = traceflops.count(sys.argv[1], batch_size=2); "
            "print(r.macs, r.flops, 'tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(small_file)], capture_output=True, text=True,
                          env={**CLI_ENV, "KERAS_BACKEND": "jax"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    macs, flops, tf_loaded = proc.stdout.split()
    import traceflops
    here = traceflops.count(small_file, batch_size=2)
    assert (int(macs), int(flops), tf_loaded) == (here.macs, here.flops, "False")


@pytest.fixture(scope="module")
def resnet50(keras):
    return keras.applications.ResNet50(weights=None)


def test_resnet50_equals_an_independent_sum(keras, resnet50):
    import traceflops
    expected = 0
    for layer in resnet50.layers:  # from Keras' own kernel and output shapes: output elements x kernel[:-1]
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            out = layer.output.shape[1:]
            expected += math.prod(out) * math.prod(layer.kernel.shape[:-1])
    result = traceflops.count(resnet50)
    assert result.macs == expected
    assert result.not_counted == []
    # Keras' ResNet50 strides its first 1x1 convolution of each stage (the original, Caffe layout): 3.86 GMACs
    # (torchvision's v1.5, strided in the 3x3, is the often-quoted 4.1)
    assert 3.8e9 < result.macs < 4.2e9
    rows = result.layers.set_index("layer")
    assert rows.loc["conv1_conv", "macs"] == 112 * 112 * 64 * 7 * 7 * 3


def test_resnet50v2_64_matches_the_issue_figure(keras):
    """Issue 22's textbook figure for ResNet50V2 at 64x64 (10 classes, batch 2): 568,238,080 MACs."""
    import traceflops
    model = keras.applications.ResNet50V2(weights=None, input_shape=(64, 64, 3), classes=10)
    assert traceflops.count(model, batch_size=2).macs == 568_238_080


def test_unknown_timesteps_from_input_shape(keras):
    import traceflops
    from traceflops.errors import UsageError
    x = keras.Input((None, 8))
    model = keras.Model(x, keras.layers.LSTM(4, name="lstm")(x))
    with pytest.raises(UsageError, match="input-shape"):
        traceflops.count(model)
    assert traceflops.count(model, input_shape=(20, 8)).macs == 20 * 4 * 4 * (8 + 4)
