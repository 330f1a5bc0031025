"""Layer attribution: the `layer` column holds the Keras layer's own name."""
import pytest

import traceflops
from traceflops.graph import MODEL_LEVEL, LayerIndex

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def keras(tf_runtime):
    import keras
    return keras


def test_layer_index_reads_recorded_scopes_below_call_gradient_and_jit_frames():
    index = LayerIndex({"net_1/stem_1": "stem", "net_1/conv2d_1": "conv2d", "net_1/conv2d_1_2": "conv2d_1",
                        "net_1/inner_1/dense_1": "inner/dense", "net_1/inner_1": "inner"})
    assert index.layer_of("net_1/conv2d_1/convolution") == "conv2d"
    assert index.layer_of("net_1/conv2d_1_2/BiasAdd") == "conv2d_1"
    assert index.layer_of("StatefulPartitionedCall/gradient_tape/net_1/stem_1/Conv2DBackpropFilter") == "stem"
    assert index.layer_of("jit(step)/net_1/inner_1/dense_1/dot_general") == "inner/dense"
    assert index.layer_of("net_1/Cast") == MODEL_LEVEL
    assert index.layer_of("adam/Mul") == MODEL_LEVEL  # in no layer


def _model(keras):
    x = keras.Input((12, 12, 3))
    y = keras.layers.Conv2D(8, 3, name="stem")(x)
    y = keras.layers.Conv2D(8, 3)(y)  # default name: conv2d (conv2d_N after other models in this process)
    y = keras.layers.Conv2D(4, 1)(y)  # default name: conv2d_1 (TF scopes it conv2d_1_2), or conv2d_N+1
    y = keras.layers.Activation("relu")(y)
    inner = keras.Sequential([keras.layers.Dense(6), keras.layers.Dense(5, name="d2")], name="inner")
    y = inner(keras.layers.Flatten()(y))
    return keras.Model(x, keras.layers.Dense(3, name="head")(y), name="net")


def test_every_layer_value_is_a_layer_of_the_model_and_owns_its_contractions(keras):
    model = _model(keras)
    inner = model.get_layer("inner")
    dense = f"inner/{inner.layers[0].name}"  # Keras numbers default names per process: dense, dense_1...
    first, second = model.layers[2].name, model.layers[3].name  # the two default-named convolutions
    names = {layer.name for layer in model.layers} | {dense, "inner/d2", MODEL_LEVEL}
    result = traceflops.profile(model, batch_size=2, steps=2, warmup=1, roofline=False)
    ops = result.ops
    assert set(ops["layer"]) <= names, set(ops["layer"]) - names
    contractions = ops[ops["macs"].notna()]
    macs = contractions.groupby("layer")["macs"].sum().to_dict()
    # hand counts at batch 2: output elements x kernel volume x input channels
    assert macs == {"stem": 2 * 10 * 10 * 8 * 9 * 3, first: 2 * 8 * 8 * 8 * 9 * 8,
                    second: 2 * 8 * 8 * 4 * 8, dense: 2 * 256 * 6, "inner/d2": 2 * 6 * 5,
                    "head": 2 * 5 * 3}
    layers = result.layers
    assert set(layers["layer"]) <= names | {"(no layer)"}
    assert int(layers.set_index("layer").loc["stem", "macs_per_step"]) == 2 * 10 * 10 * 8 * 9 * 3
