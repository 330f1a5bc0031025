"""Loops, conditionals and precision on real TensorFlow runs."""
import pytest

import traceflops

pytestmark = pytest.mark.tf
STEPS = 2


@pytest.fixture(scope="module")
def keras(tf_runtime):
    import keras
    return keras


def test_lstm_loop_body_ops_count_once_per_time_step(keras):
    time_steps, features, units, batch = 7, 5, 6, 3
    x = keras.Input((time_steps, features))
    model = keras.Model(x, keras.layers.LSTM(units, name="lstm")(x), name="rnn")
    result = traceflops.profile(model, batch_size=batch, steps=STEPS, warmup=1)
    ops = result.ops
    body = ops[ops["op_name"].str.contains("/while/body/")]
    matmuls = body[body["macs"].notna()]
    # input and recurrent projections run once per time step of every profiled step
    assert set(matmuls["occurrences"]) == {time_steps * STEPS}
    per_step = int((matmuls["macs"] * matmuls["occurrences"]).sum()) // STEPS
    assert per_step == batch * time_steps * 4 * units * (features + units)
    assert result.summary["macs_per_step"] == per_step
    assert result.summary["coverage"] >= 0.995
    # attributes of loop-body nodes come from the executed graph (they are named as in the trace)
    from traceflops.graph import ExecutedGraph
    graph = ExecutedGraph.load(f"{result.run_dir}/traceflops_graph.json")
    assert all(graph.node(name) is not None for name in matmuls["op_name"])


def test_conditional_branch_ops_count_only_when_taken(keras, tf_runtime):
    tf = tf_runtime

    class Gate(keras.layers.Layer):
        def call(self, x):
            # the predicate is data-dependent but always true for our inputs (x*x >= 0)
            return tf.cond(tf.reduce_min(x * x) >= 0.0, lambda: tf.matmul(x, tf.ones((8, 4))),
                           lambda: tf.matmul(x, tf.ones((8, 4))) * 0.0 + tf.matmul(x, tf.ones((8, 4))))

    x = keras.Input((8,))
    model = keras.Model(x, Gate(name="gate")(x), name="cond")
    result = traceflops.profile(model, batch_size=2, steps=STEPS, warmup=1)
    contractions = result.ops[result.ops["macs"].notna()]
    # only the taken branch's one matmul ran, once per step: 2*8*4 MACs
    assert int((contractions["macs"] * contractions["occurrences"]).sum()) == STEPS * 2 * 8 * 4


def test_mixed_bfloat16_bytes_and_flops_by_dtype(keras):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        x = keras.Input((32,))
        model = keras.Model(x, keras.layers.Dense(16, name="fc")(x), name="bf16")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    result = traceflops.profile(model, batch_size=4, steps=STEPS, warmup=1)
    fc = result.ops[result.ops["macs"].notna()].iloc[0]
    assert fc["dtype"] == "bfloat16" and fc["macs"] == 4 * 32 * 16
    # bfloat16 tensors are 2 bytes an element: x [4,32], kernel [32,16], out [4,16], and the bias [16]
    # where oneDNN fused the BiasAdd into the matmul (it does on CPUs with native bf16, not on AVX2 ones)
    fused_bias = "Fused" in fc["op_type"]
    assert fc["bytes"] == 2 * (4 * 32 + 32 * 16 + 4 * 16 + (16 if fused_bias else 0))
    by_dtype = result.summary["flops_per_step_by_dtype"]
    assert by_dtype["bfloat16"] >= 2 * 4 * 32 * 16
