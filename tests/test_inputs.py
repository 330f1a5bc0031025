"""Models of any input structure: unknown dimensions given with --input-shape, subclassed
models, dict inputs in any key order. Every count by hand from the layer configs."""
import json
import math

import pytest

import traceflops
from conftest import run_cli

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def keras(tf_runtime):
    import keras
    return keras


def contraction_macs(result) -> int:
    ops = result.ops[result.ops["macs"].notna()]
    return int((ops["macs"] * ops["occurrences"]).sum() / result.summary["steps"])


def test_lstm_with_an_unknown_sequence_length(keras, tmp_path):
    x = keras.Input((None, 16))
    model = keras.Model(x, keras.layers.Dense(3, name="fc")(keras.layers.LSTM(8, name="lstm")(x)), name="seq")
    path = tmp_path / "seq.keras"
    model.save(path)
    refused = run_cli("profile", path, "--batch-size", "2", "--steps", "1", "--no-roofline")
    assert refused.returncode == 3 and "--input-shape" in refused.stderr
    proc = run_cli("profile", path, "--input-shape", "20,16", "--batch-size", "2", "--steps", "2", "--warmup", "1",
                   "--no-roofline", "--json")
    assert proc.returncode == 0, proc.stderr
    # LSTM: 20 timesteps x 4 gates x 8 units x (16 inputs + 8 recurrent) per sample; Dense 8 -> 3
    assert json.loads(proc.stdout)["macs_per_step"] == 2 * 20 * 4 * 8 * (16 + 8) + 2 * 8 * 3


def _conv_macs(model, batch: int) -> int:
    """Contraction MACs of a conv net from its layer configs: output elements x kernel taps x inputs."""
    total = 0
    for layer in model.layers:
        kind, cfg = type(layer).__name__, layer.get_config()
        if kind not in ("Conv2D", "DepthwiseConv2D", "Dense"):
            continue
        out, inp = layer.output.shape, layer.input.shape
        elements = batch * math.prod(out[1:])
        if kind == "Conv2D":
            total += elements * math.prod(cfg["kernel_size"]) * inp[-1] // cfg.get("groups", 1)
        elif kind == "DepthwiseConv2D":
            total += elements * math.prod(cfg["kernel_size"])
        else:
            total += elements * inp[-1]
    return total


def test_mobilenetv3small_built_for_any_image_size(keras, tmp_path):
    model = keras.applications.MobileNetV3Small(weights=None)  # input (None, None, 3)
    path = tmp_path / "mnv3.keras"
    model.save(path)
    fixed = keras.applications.MobileNetV3Small(input_shape=(224, 224, 3), weights=None)  # same layers, sized
    proc = run_cli("profile", path, "--input-shape", "224,224,3", "--steps", "1", "--warmup", "1",
                   "--no-roofline", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["macs_per_step"] == _conv_macs(fixed, 1)


def test_subclassed_model_through_the_api(keras):
    class TwoLayers(keras.Model):
        def __init__(self):
            super().__init__(name="sub")
            self.hidden = keras.layers.Dense(8, name="hidden")
            self.out = keras.layers.Dense(4, name="out")

        def call(self, x):
            return self.out(self.hidden(x))

    with pytest.raises(traceflops.errors.ModelError, match="input_shape"):
        traceflops.profile(TwoLayers(), batch_size=2, steps=1, roofline=False)
    result = traceflops.profile(TwoLayers(), input_shape=(16,), batch_size=2, steps=2, warmup=1, roofline=False)
    assert contraction_macs(result) == 2 * 16 * 8 + 2 * 8 * 4


def test_dict_inputs_in_any_key_order(keras):
    zeta, alpha = keras.Input((4,), name="zeta"), keras.Input((6,), name="alpha")
    merged = keras.layers.Concatenate()([keras.layers.Dense(5, name="z")(zeta), keras.layers.Dense(7, name="a")(alpha)])
    model = keras.Model({"zeta": zeta, "alpha": alpha}, keras.layers.Dense(2, name="head")(merged), name="two")
    result = traceflops.profile(model, batch_size=2, steps=2, warmup=1, roofline=False)
    # zeta 4 -> 5, alpha 6 -> 7, concatenated 12 -> 2
    assert contraction_macs(result) == 2 * (4 * 5 + 6 * 7 + 12 * 2)
    by_layer = result.ops[result.ops["macs"].notna()].groupby("layer")["macs"].sum().to_dict()
    assert by_layer == {"z": 2 * 4 * 5, "a": 2 * 6 * 7, "head": 2 * 12 * 2}


def test_a_failing_model_names_the_cause(keras):
    class Broken(keras.layers.Layer):
        def compute_output_spec(self, x):  # builds symbolically; fails only when it runs
            return keras.KerasTensor(x.shape, x.dtype)

        def call(self, x):
            raise ValueError("the cause: shapes disagree")

    x = keras.Input((4,))
    model = keras.Model(x, Broken(name="broken")(keras.layers.Dense(3)(x)))
    with pytest.raises(traceflops.errors.CaptureError) as failure:
        traceflops.profile(model, batch_size=2, steps=1, roofline=False)
    assert "ValueError" in str(failure.value) and "the cause: shapes disagree" in str(failure.value)
