"""Training steps on real TensorFlow runs (CPU): exact contraction MACs of whole steps.

Independent count, from the layer configs (batch B = 2), by hand:
a contraction of M forward MACs adds M for its weight gradient and M for its
input gradient, except where the input needs no gradient (a layer fed by
the model input). Attention products (QK^T, AV) have no weights: 2 input
gradients of M each. The optimizer and the loss run no contraction.
"""
import json
import re

import numpy as np
import pytest

import traceflops
from traceflops.graph.phases import phase_of

pytestmark = pytest.mark.tf
B = 2

# CNN: 8x8x3 -> c1 Conv2D(4, 3, same) -> BN -> ReLU -> MaxPool 2 -> c2 Conv2D(6, 3, valid) -> Flatten(24)
#      -> Dropout -> fc Dense(5, softmax)
CNN_FORWARD = {"c1": B * 8 * 8 * 4 * (3 * 3 * 3),   # 13824
               "c2": B * 2 * 2 * 6 * (3 * 3 * 4),   # 1728: 4x4 input, valid 3x3 -> 2x2
               "fc": B * 24 * 5}                    # 240
CNN_INPUT_GRAD = {"c2", "fc"}                       # c1 is fed by the model input
# Transformer: tokens [B, 6] -> Embedding(20, 8) -> MHA(2 heads, key_dim 4) -> LN -> Dense 16 gelu -> Dense 8
#              -> LN -> mean over time -> Dense(3) logits
T, D, H, K = 6, 8, 2, 4
TFM_FORWARD = {"query": B * T * D * H * K, "key": B * T * D * H * K, "value": B * T * D * H * K,  # 768 each
               "scores": B * H * T * T * K, "context": B * H * T * T * K,                       # 576 each
               "attention_output": B * T * H * K * D,                                           # 768
               "ff1": B * T * D * 16, "ff2": B * T * 16 * D,                                    # 1536 each
               "out": B * D * 3}                                                                # 48
# every contraction gets its input gradient (Q/K/V read the Embedding output, which the embedding's
# weights need); scores and context have two activation operands: two "input" gradients, no weight
TFM_BACKWARD = 2 * sum(TFM_FORWARD.values())        # 14688
# MLP: 12 -> d1 Dense 16 relu -> d2 Dense 8 tanh -> d3 Dense 4 logits
MLP_FORWARD = {"d1": B * 12 * 16, "d2": B * 16 * 8, "d3": B * 8 * 4}   # 384, 256, 64
MLP_INPUT_GRAD = {"d2", "d3"}


def backward(forward, with_input_grad):
    return sum(forward.values()) + sum(m for name, m in forward.items() if name in with_input_grad)


CNN_TOTAL = sum(CNN_FORWARD.values()) + backward(CNN_FORWARD, CNN_INPUT_GRAD)   # 15792 + 17760 = 33552
TFM_TOTAL = sum(TFM_FORWARD.values()) + TFM_BACKWARD                            # 7344 + 14688 = 22032
MLP_TOTAL = sum(MLP_FORWARD.values()) + backward(MLP_FORWARD, MLP_INPUT_GRAD)   # 704 + 1024 = 1728


def cnn(keras):
    L = keras.layers
    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 3))
    h = L.Activation("relu", name="act")(L.BatchNormalization(name="bn")(L.Conv2D(4, 3, padding="same", name="c1")(x)))
    h = L.Conv2D(6, 3, activation="relu", name="c2")(L.MaxPooling2D(2, name="pool")(h))
    y = L.Dense(5, activation="softmax", name="fc")(L.Dropout(0.5, name="drop")(L.Flatten(name="flat")(h)))
    model = keras.Model(x, y, name="cnn")
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


def transformer(keras):
    L = keras.layers
    keras.utils.set_random_seed(0)
    tokens = keras.Input((T,), dtype="int32")
    e = L.Embedding(20, D, name="emb")(tokens)
    h = L.LayerNormalization(name="ln1")(e + L.MultiHeadAttention(num_heads=H, key_dim=K, name="mha")(e, e))
    f = L.Dense(D, name="ff2")(L.Dense(16, activation="gelu", name="ff1")(h))
    h = L.GlobalAveragePooling1D(name="gap")(L.LayerNormalization(name="ln2")(h + f))
    model = keras.Model(tokens, L.Dense(3, name="out")(h), name="tfm")
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def mlp(keras, compiled=True, activation=None):
    L = keras.layers
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12,)), L.Dense(16, activation="relu", name="d1"),
                              L.Dense(8, activation="tanh", name="d2"), L.Dense(4, activation=activation, name="d3")],
                             name="mlp")
    if compiled:
        model.compile(optimizer="adam", loss=keras.losses.CategoricalCrossentropy(from_logits=True))
    return model


MODELS = {"cnn": (cnn, CNN_TOTAL), "transformer": (transformer, TFM_TOTAL), "mlp": (mlp, MLP_TOTAL)}


def layer_of(op_name):
    """`[StatefulPartitionedCall/][gradient_tape/]model/layer_1/...` -> `layer`; MHA products by einsum name."""
    parts = [p for p in op_name.split("/") if p not in ("StatefulPartitionedCall", "gradient_tape")]
    if len(parts) < 3:
        return ""
    if parts[1].startswith("mha") and parts[2].startswith("einsum"):
        return "context" if parts[2].startswith("einsum_1") else "scores"
    name = re.sub(r"_\d+$", "", parts[2] if parts[1].startswith("mha") else parts[1])
    return name


def contractions(result):
    ops = result.ops[result.ops["macs"].notna()].copy()
    ops["per_step"] = ops["macs"] * ops["occurrences"] / result.summary["steps"]
    ops["phase"] = [phase_of(n, t) for n, t in zip(ops["op_name"], ops["op_type"])]
    ops["layer_name"] = [layer_of(n) for n in ops["op_name"]]
    return ops


@pytest.fixture(scope="module")
def keras(tf_runtime):
    import keras
    return keras


@pytest.fixture(scope="module")
def trained_models():
    """The models `trained` profiled, each with its weights from before the capture: name -> (model, weights)."""
    return {}


@pytest.fixture(scope="module")
def trained(keras, trained_models):
    """profile(train=True) of each model, once per module."""
    results = {}
    for name, (build, _) in MODELS.items():
        model = build(keras)
        trained_models[name] = (model, [w.copy() for w in model.get_weights()])
        results[name] = traceflops.profile(model, batch_size=B, steps=2, warmup=1, train=True, roofline=False)
    return results


@pytest.mark.parametrize("name", sorted(MODELS))
def test_training_step_exact_macs(trained, name):
    result = trained[name]
    assert result.summary["macs_per_step"] == MODELS[name][1]
    assert result.summary["coverage"] >= 0.99
    assert result.summary["unknown_op_types"] == {}  # every op type of the step is priced or declared zero
    assert result.summary["training"]["defaulted"] is False
    assert result.summary["training"]["optimizer"] == "Adam"


def test_cnn_by_layer_and_phase(trained):
    ops = contractions(trained["cnn"])
    by = ops.groupby(["phase", "layer_name"])["per_step"].sum()
    assert by["forward"].to_dict() == CNN_FORWARD
    # weight gradients of all three, input gradients of c2 and fc only
    assert by["backward"].to_dict() == {"c1": 13824, "c2": 2 * 1728, "fc": 2 * 240}
    assert set(ops["phase"]) == {"forward", "backward"}
    kinds = ops[ops["phase"] == "backward"].groupby("op_type")["per_step"].sum().to_dict()
    assert kinds == {"Conv2DBackpropFilter": 13824 + 1728, "Conv2DBackpropInput": 1728, "MatMul": 480}


def test_transformer_by_layer_and_phase(trained):
    ops = contractions(trained["transformer"])
    by = ops.groupby(["phase", "layer_name"])["per_step"].sum()
    assert by["forward"].to_dict() == TFM_FORWARD
    assert by["backward"].to_dict() == {k: 2 * v for k, v in TFM_FORWARD.items()}
    phases = {phase_of(n, t) for n, t in zip(trained["transformer"].ops["op_name"], trained["transformer"].ops["op_type"])}
    assert phases == {"forward", "backward", "optimizer", "loss_and_metrics"}
    segment = trained["transformer"].ops[trained["transformer"].ops["op_type"] == "UnsortedSegmentSum"]
    # the embedding gradient: B*T looked-up rows of D summed into the [20, D] table
    assert list(segment["flops"]) == [B * T * D] * len(segment) and len(segment) >= 1


def test_profile_keeps_the_model_weights(trained, trained_models):
    model, before = trained_models["mlp"]  # profiled with train=True by `trained`
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_compiled_file_and_defaults(keras, tmp_path):
    """A .keras file keeps its compile config; a model without one gets SGD and a loss fitting its output."""
    compiled = mlp(keras)
    compiled.save(tmp_path / "compiled.keras")
    result = traceflops.profile(tmp_path / "compiled.keras", batch_size=B, steps=1, warmup=1, train=True,
                                roofline=False)
    assert result.summary["training"] == {"loss": "categorical_crossentropy", "optimizer": "Adam",
                                          "defaulted": False}
    assert result.summary["macs_per_step"] == MLP_TOTAL
    bare = mlp(keras, compiled=False, activation="softmax")
    result = traceflops.profile(bare, batch_size=B, steps=1, warmup=1, train=True, roofline=False)
    assert result.summary["training"] == {"loss": "sparse_categorical_crossentropy", "optimizer": "SGD",
                                          "defaulted": True}
    assert result.summary["macs_per_step"] == MLP_TOTAL
    regression = mlp(keras, compiled=False)
    result = traceflops.profile(regression, batch_size=B, steps=1, warmup=1, train=True, roofline=False)
    assert result.summary["training"]["loss"] == "mean_squared_error"
    assert result.summary["coverage"] >= 0.99


def test_a_loss_that_cannot_be_inferred_is_one_clear_error(keras):
    from traceflops.errors import ModelError
    x = keras.Input((4,))
    model = keras.Model(x, keras.ops.argmax(keras.layers.Dense(3)(x), axis=-1), name="argmax")
    with pytest.raises(ModelError, match="no loss can be inferred"):
        traceflops.profile(model, batch_size=B, steps=1, warmup=0, train=True, roofline=False)


# Convolution gradients (B = 2). `pre`/`pre3` (1x1, fed by the inputs) give the others input gradients.
CONV_FORWARD = {
    "pre": B * 6 * 6 * 4 * (1 * 1 * 4),          # 1152
    "strided": B * 3 * 3 * 6 * (3 * 3 * 4),      # 3888: stride 2, same -> 3x3
    "dilated": B * 2 * 2 * 5 * (3 * 3 * 4),      # 1440: dilation 2 -> extent 5, valid -> 2x2
    "grouped": B * 4 * 4 * 8 * (3 * 3 * 4 // 2),  # 4608: 2 groups -> 2 input channels per group
    "dw": B * 6 * 6 * 8 * (3 * 3),               # 5184: depth multiplier 2
    "pre3": B * 4 * 4 * 4 * 2 * 2,               # 512
    "c3": B * 4 * 2 * 4 * 3 * (3 * 3 * 3 * 2),   # 10368: strides (1, 2, 1), same
    "fc": B * (54 + 20 + 128 + 288 + 36 + 96) * 3,  # 3732: the six flattened branches, 622 features
}
CONV_NO_INPUT_GRAD = {"pre", "pre3"}


def conv_model(keras):
    L = keras.layers
    keras.utils.set_random_seed(0)
    a, v = keras.Input((6, 6, 4)), keras.Input((4, 4, 4, 2))
    p = L.Conv2D(4, 1, name="pre")(a)
    q = L.Conv3D(2, 1, name="pre3")(v)
    # grouped convolution runs as an XLA cluster on CPU (Keras compiles it: TF's CPU kernel has no
    # groups); valid padding, so the HLO path's valid-window count is the textbook count too
    branches = [L.Conv2D(6, 3, strides=2, padding="same", name="strided")(p),
                L.Conv2D(5, 3, dilation_rate=2, name="dilated")(p),
                L.Conv2D(8, 3, groups=2, name="grouped")(p),
                L.DepthwiseConv2D(3, depth_multiplier=2, padding="same", name="dw")(p),
                L.AveragePooling2D(2, name="avg")(p),
                L.Conv3D(3, 3, strides=(1, 2, 1), padding="same", name="c3")(q)]
    h = L.Concatenate(name="cat")([L.Flatten()(b) for b in branches])
    model = keras.Model([a, v], L.Dense(3, activation="softmax", name="fc")(h), name="convg")
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    return model


def test_convolution_gradients_exact_macs(keras):
    result = traceflops.profile(conv_model(keras), batch_size=B, steps=2, warmup=1, train=True, roofline=False)
    expected = sum(3 * m for name, m in CONV_FORWARD.items() if name not in CONV_NO_INPUT_GRAD)
    expected += sum(2 * CONV_FORWARD[name] for name in CONV_NO_INPUT_GRAD)
    assert result.summary["macs_per_step"] == expected
    assert result.summary["unknown_op_types"] == {} and result.summary["coverage"] >= 0.99
    ops = contractions(result)
    kinds = ops.groupby("op_type")["per_step"].sum().to_dict()
    f = CONV_FORWARD
    assert kinds["Conv2DBackpropFilter"] == f["pre"] + f["strided"] + f["dilated"]
    assert kinds["Conv2DBackpropInput"] == f["strided"] + f["dilated"]
    assert kinds["DepthwiseConv2dNativeBackpropFilter"] == kinds["DepthwiseConv2dNativeBackpropInput"] == f["dw"]
    assert kinds["Conv3DBackpropFilterV2"] == f["c3"] + f["pre3"] and kinds["Conv3DBackpropInputV2"] == f["c3"]
    assert kinds["convolution"] == 3 * f["grouped"]  # XLA: forward, weight and input gradient
    pool = result.ops[result.ops["op_type"] == "AvgPoolGrad"]
    assert list(pool["flops"]) == [(4 + 1) * B * 3 * 3 * 4]  # (window + 1) per pooled gradient element


def test_fused_optimizer_kernels_and_bit_ops(keras):
    """TF's fused ResourceApply* kernels and integer bit ops, each run for real once per step."""
    import tensorflow as tf
    shape, n = (4, 6), 24

    class RawUpdates(keras.layers.Layer):
        def build(self, input_shape):
            self.slots = [tf.Variable(tf.ones(shape), trainable=False) for _ in range(4)]

        def call(self, x):
            g = tf.reduce_sum(x, 0)
            v, a, b, c = [s.handle for s in self.slots]
            lr, rho, mom, eps, b1, b2 = (tf.constant(k) for k in (0.01, 0.9, 0.9, 1e-7, 0.9, 0.999))
            r = tf.raw_ops
            r.ResourceApplyGradientDescent(var=v, alpha=lr, delta=g)
            r.ResourceApplyMomentum(var=v, accum=a, lr=lr, grad=g, momentum=mom)
            r.ResourceApplyMomentum(var=v, accum=a, lr=lr, grad=g, momentum=mom, use_nesterov=True, name="nesterov")
            r.ResourceApplyKerasMomentum(var=v, accum=a, lr=lr, grad=g, momentum=mom)
            r.ResourceApplyAdam(var=v, m=a, v=b, beta1_power=b1, beta2_power=b2, lr=lr, beta1=b1, beta2=b2,
                                epsilon=eps, grad=g)
            r.ResourceApplyAdamWithAmsgrad(var=v, m=a, v=b, vhat=c, beta1_power=b1, beta2_power=b2, lr=lr,
                                           beta1=b1, beta2=b2, epsilon=eps, grad=g)
            r.ResourceApplyRMSProp(var=v, ms=a, mom=b, lr=lr, rho=rho, momentum=mom, epsilon=eps, grad=g)
            r.ResourceApplyCenteredRMSProp(var=v, mg=a, ms=b, mom=c, lr=lr, rho=rho, momentum=mom, epsilon=eps,
                                           grad=g)
            r.ResourceApplyAdagrad(var=v, accum=a, lr=lr, grad=g)
            r.ResourceApplyAdagradV2(var=v, accum=a, lr=lr, epsilon=eps, grad=g)
            r.ResourceApplyAdadelta(var=v, accum=a, accum_update=b, lr=lr, rho=rho, epsilon=eps, grad=g)
            r.ResourceApplyAdaMax(var=v, m=a, v=b, beta1_power=b1, lr=lr, beta1=b1, beta2=b2, epsilon=eps, grad=g)
            bits = tf.bitwise.right_shift(tf.bitwise.bitwise_xor(tf.bitwise.bitwise_and(tf.cast(x, tf.int32), 3), 1), 1)
            return x + tf.cast(bits, x.dtype)

    x = keras.Input(shape)
    result = traceflops.profile(keras.Model(x, RawUpdates(name="raw")(x)), batch_size=B, steps=1, warmup=1,
                                roofline=False)
    assert result.summary["coverage"] == 1.0
    flops = dict(zip(result.ops["op_name"].str.split("/").str[-1], result.ops["flops"]))
    per_element = {"ResourceApplyGradientDescent": 2, "ResourceApplyMomentum": 4, "nesterov": 7,
                   "ResourceApplyKerasMomentum": 4, "ResourceApplyAdam": 12, "ResourceApplyAdamWithAmsgrad": 13,
                   "ResourceApplyRMSProp": 11, "ResourceApplyCenteredRMSProp": 16, "ResourceApplyAdagrad": 6,
                   "ResourceApplyAdagradV2": 7, "ResourceApplyAdadelta": 16, "ResourceApplyAdaMax": 10}
    assert {k: flops[k] for k in per_element} == {k: v * n for k, v in per_element.items()}
    assert flops["BitwiseAnd"] == flops["BitwiseXor"] == flops["RightShift"] == B * n


def fit_data(model, samples=10, seed=0):
    """`samples` examples (5 batches of B) with labels the model's loss accepts."""
    rng = np.random.default_rng(seed)
    shape = (samples,) + tuple(model.inputs[0].shape[1:])
    if str(model.inputs[0].dtype).startswith("int"):
        x = rng.integers(0, 20, shape).astype("int32")
    else:
        x = rng.normal(size=shape).astype("float32")
    classes = model.outputs[0].shape[-1]
    y = rng.integers(0, classes, samples)
    if model.name == "mlp":  # categorical cross-entropy: one-hot rows
        y = np.eye(classes, dtype="float32")[y]
    return x, y


@pytest.mark.parametrize("name", sorted(MODELS))
def test_callback_in_fit_same_macs_per_step(keras, tmp_path, name):
    import traceflops.keras
    model = MODELS[name][0](keras)
    x, y = fit_data(model)
    out = tmp_path / "out"
    callback = traceflops.keras.ProfileCallback(out, profile_batch=(2, 4), roofline=(name == "cnn"))
    model.fit(x, y, batch_size=B, epochs=1, verbose=0, shuffle=False, callbacks=[callback])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3  # batches 2, 3 and 4
    assert summary["macs_per_step"] == MODELS[name][1]
    assert summary["coverage"] >= 0.99 and summary["unknown_op_types"] == {}
    assert summary["batch_size"] == B and summary["training"]["optimizer"] == "Adam"
    assert callback.result is not None and callback.result.summary["macs_per_step"] == MODELS[name][1]
    run_dirs = {p.parent for p in (out / "logdir").rglob("*.xplane.pb")}
    assert len(run_dirs) == 1
    run_dir = run_dirs.pop()
    assert (run_dir / "traceflops_graph.json").exists() and (run_dir / "traceflops_capture.json").exists()
    assert (out / "ops.csv").exists()
    if name == "cnn":
        assert (out / "roofline.png").exists() and (out / "report.html").exists()
        # the logdir analyses the same way later, without the model
        assert traceflops.analyze(out / "logdir").summary["macs_per_step"] == CNN_TOTAL


def test_callback_does_not_change_training(keras, tmp_path):
    """Same seed, same data: the same weights after fit with and without the callback (BN, dropout, Adam)."""
    import traceflops.keras
    weights = []
    for callbacks in ([], [traceflops.keras.ProfileCallback(tmp_path / "out", profile_batch=(2, 3),
                                                             roofline=False)]):
        model = cnn(keras)
        x, y = fit_data(model)
        keras.utils.set_random_seed(1)
        model.fit(x, y, batch_size=B, epochs=2, verbose=0, shuffle=False, callbacks=callbacks)
        weights.append(model.get_weights())
    assert all(np.array_equal(a, b) for a, b in zip(*weights))


def test_callback_arguments(keras):
    import traceflops.keras
    assert traceflops.keras.ProfileCallback("o", profile_batch="3, 5").start == 3
    assert (traceflops.keras.ProfileCallback("o", profile_batch=4).stop) == 4
    for bad in ((0, 2), (3, 2), "x", None):
        with pytest.raises(ValueError, match="profile_batch"):
            traceflops.keras.ProfileCallback("o", profile_batch=bad)
    model = mlp(keras, compiled=False)
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=2)
    x = np.zeros((8, 12), "float32")
    with pytest.raises(ValueError, match="steps_per_execution"):
        model.fit(x, np.zeros((8, 4), "float32"), batch_size=B, verbose=0,
                  callbacks=[traceflops.keras.ProfileCallback("o")])


def test_cli_train_states_its_defaults(keras, tmp_path):
    from conftest import run_cli
    mlp(keras, compiled=False, activation="softmax").save(tmp_path / "bare.keras")
    out = tmp_path / "out"
    proc = run_cli("profile", tmp_path / "bare.keras", "--train", "--batch-size", B, "--steps", 2, "--warmup", 1,
                   "--no-roofline", "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "training step: loss sparse_categorical_crossentropy, optimizer SGD (defaults" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["training"] == {"loss": "sparse_categorical_crossentropy", "optimizer": "SGD", "defaulted": True}
    assert summary["macs_per_step"] == MLP_TOTAL and summary["steps"] == 2


def test_cli_train_on_a_savedmodel_is_one_clear_error(keras, tmp_path):
    from conftest import assert_clean_failure, run_cli
    mlp(keras).export(str(tmp_path / "saved"))
    proc = run_cli("profile", tmp_path / "saved", "--train", "--no-roofline")
    assert_clean_failure(proc, 3, "--train needs a Keras model")


def test_level2_training_step_takes_every_shape_from_the_graph(keras):
    """No shapes in a level-2 trace: the graph gives them all, including nodes Grappler created
    (the LayerNorm residual's `ArithmeticOptimizer/AddOpsRewrite_add` feeding the pooling Mean)."""
    result = traceflops.profile(transformer(keras), batch_size=B, steps=2, warmup=1, train=True, roofline=False,
                                host_tracer_level=2)
    assert result.summary["macs_per_step"] == TFM_TOTAL
    assert result.summary["coverage"] == 1.0
