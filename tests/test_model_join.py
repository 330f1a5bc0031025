"""Traces users record themselves (TensorBoard `profile_batch`, `tf.profiler.experimental.start/stop`),
priced with `analyze --model`: the graph rebuilt from the model, joined by name and by structure.

The traces are recorded here with real TensorFlow (a small CNN, seconds). The
model that records them is built after another model, so its layers and scopes
carry other suffixes (`conv2d_2`, `sequential_2_1`) than the model file given
to `analyze` (`fresh.keras`, the same architecture built in a clean session):
those events must be matched by structure. `same.keras` is the recording model
itself: its events match by name.
"""
import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H, W, C = 12, 12, 3  # input
F1, F2, K, UNITS = 4, 6, 3, 5  # conv filters, kernel size, dense units
NO_SHAPES = "carry no input shapes"

RECORDER = textwrap.dedent(f"""
    import os, sys
    import numpy as np, tensorflow as tf, keras
    out = sys.argv[1]
    def cnn():
        m = keras.Sequential([keras.Input(({H}, {W}, {C})), keras.layers.Conv2D({F1}, {K}, activation="relu"),
            keras.layers.BatchNormalization(), keras.layers.MaxPooling2D(),
            keras.layers.Conv2D({F2}, {K}, padding="same", activation="relu"),
            keras.layers.Flatten(), keras.layers.Dropout(0.2), keras.layers.Dense({UNITS})])
        m.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return m
    keras.utils.set_random_seed(0)
    cnn().save(os.path.join(out, "fresh.keras"))
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(2)])
    other(np.zeros((1, 4)))
    mlp = keras.Sequential([keras.Input((7,)), keras.layers.Dense(9), keras.layers.Dense(3)])
    mlp.save(os.path.join(out, "mlp.keras"))
    m = cnn()
    m.save(os.path.join(out, "same.keras"))
    X = np.random.rand(48, {H}, {W}, {C}).astype("float32"); Y = np.random.randint(0, {UNITS}, 48)
    m.fit(X, Y, batch_size=8, epochs=1, verbose=0,
          callbacks=[keras.callbacks.TensorBoard(os.path.join(out, "fit"), profile_batch=(2, 4))])
    @tf.function
    def infer(x):
        return m(x, training=False)
    infer(X[:4])
    tf.profiler.experimental.start(os.path.join(out, "fn"))
    for _ in range(5):
        infer(X[:4])
    tf.profiler.experimental.stop()
    m.predict(X[:16], batch_size=16, verbose=0)
    tf.profiler.experimental.start(os.path.join(out, "pred"))
    m.predict(X, batch_size=16, verbose=0)
    tf.profiler.experimental.stop()
""")


def forward_macs(batch: int) -> int:
    """Contraction MACs of one forward pass, from the layer configs above."""
    h1, w1 = H - K + 1, W - K + 1  # valid conv
    conv1 = h1 * w1 * F1 * K * K * C
    h2, w2 = h1 // 2, w1 // 2  # 2x2 max pool
    conv2 = h2 * w2 * F2 * K * K * F1  # same conv
    dense = h2 * w2 * F2 * UNITS
    return batch * (conv1 + conv2 + dense)


def training_macs(batch: int) -> int:
    """Forward + weight gradients (= forward) + input gradients of every contraction but the first."""
    h1, w1 = H - K + 1, W - K + 1
    h2, w2 = h1 // 2, w1 // 2
    input_grads = batch * (h2 * w2 * F2 * K * K * F1 + h2 * w2 * F2 * UNITS)
    return 2 * forward_macs(batch) + input_grads


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    out = tmp_path_factory.mktemp("user_traces")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    done = subprocess.run([sys.executable, "-c", RECORDER, str(out)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return out


def _op_events(path) -> int:
    from traceflops.trace import find_trace_files, load_trace
    events = load_trace(find_trace_files(path)).events
    return int((events["kind"] == "op").sum())


def _check_match(summary: dict, path):
    match = summary["model_match"]
    assert match["by_name"] + match["by_structure"] + match["unmatched"] == _op_events(path)
    assert match["unmatched"] == sum(match["unmatched_op_types"].values())
    if match["unmatched"]:
        assert any("found no node of their type" in w for w in summary["warnings"])
    return match


def test_fit_trace_without_model_says_why_and_shows_no_zero_total(recorded):
    import traceflops
    from traceflops.join.summary import NO_SHAPES_WARNING
    from traceflops.report import summary_lines
    result = traceflops.analyze(recorded / "fit")
    summary = result.summary
    assert NO_SHAPES_WARNING in summary["warnings"] and "--model" in NO_SHAPES_WARNING
    assert summary["coverage"] < 0.95  # the contractions are unknown without shapes
    for key in ("flops_per_step", "macs_per_step", "gflops_per_s"):
        assert summary[key] is None  # withheld, never 0
    text = summary_lines(summary)
    assert "FLOPs per step            unknown" in text and "achieved                  unknown" in text
    assert " 0 FLOP" not in text and " 0 GFLOP/s" not in text


def test_fit_trace_with_model_matches_by_structure(recorded):
    import traceflops
    result = traceflops.analyze(recorded / "fit", model=str(recorded / "fresh.keras"), batch_size=8)
    summary = result.summary
    assert summary["steps"] == 3 and summary["totals_cover"] == "per step"
    assert summary["coverage"] >= 0.95
    assert summary["macs_per_step"] == training_macs(8)
    assert summary["macs_per_step_by_phase"]["forward"] == forward_macs(8)
    assert summary["training"]["optimizer"] == "Adam"
    match = _check_match(summary, recorded / "fit")
    assert match["by_structure"] > match["by_name"]
    assert set(match["unmatched_op_types"]) <= {"GatherV2"}  # the data adapter's eager slicing
    assert NO_SHAPES not in " ".join(summary["warnings"])


def test_fit_trace_with_the_recording_model_matches_by_name(recorded):
    import traceflops
    result = traceflops.analyze(recorded / "fit", model=str(recorded / "same.keras"), batch_size=8, train=True)
    match = _check_match(result.summary, recorded / "fit")
    assert match["by_name"] > 0.95 * _op_events(recorded / "fit")
    assert result.summary["macs_per_step"] == training_macs(8)


def test_tf_function_trace_with_model(recorded):
    import traceflops
    from traceflops.report import summary_lines
    result = traceflops.analyze(recorded / "fn", model=str(recorded / "fresh.keras"), batch_size=4)
    summary = result.summary
    assert summary["steps"] == 0 and summary["totals_cover"] == "whole trace"
    assert summary["coverage"] >= 0.95
    assert summary["macs_per_step"] == 5 * forward_macs(4)
    match = _check_match(summary, recorded / "fn")
    assert match["unmatched"] == 0 and match["by_name"] == 0 and match["by_structure"] == _op_events(recorded / "fn")
    text = summary_lines(summary)
    assert "per step" not in text and "(whole trace)" in text
    convs = result.ops[result.ops["op_type"] == "_FusedConv2D"].sort_values("op_name")
    assert sorted(convs["macs"].astype(int)) == sorted([4 * (H - K + 1) * (W - K + 1) * F1 * K * K * C,
                                                          4 * ((H - K + 1) // 2) ** 2 * F2 * K * K * F1])


def test_predict_trace_with_model(recorded):
    import traceflops
    result = traceflops.analyze(recorded / "pred", model=str(recorded / "fresh.keras"), batch_size=16)
    summary = result.summary
    assert summary["steps"] == 3
    assert summary["coverage"] >= 0.95
    assert summary["macs_per_step"] == forward_macs(16)
    ops = result.ops
    assert int((ops["macs"].astype("Float64").fillna(0) * ops["occurrences"]).sum()) >= 3 * forward_macs(16)
    _check_match(summary, recorded / "pred")


def _cli(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    return subprocess.run([sys.executable, "-m", "traceflops", "analyze", *map(str, args)], env=env,
                          capture_output=True, text=True, timeout=600)


def test_bad_model_input_is_one_line(recorded):
    wrong = _cli(recorded / "fn", "--model", recorded / "mlp.keras", "--batch-size", 4)
    assert wrong.returncode == 3, wrong.stderr[-1500:]
    lines = [line for line in wrong.stderr.splitlines() if line.startswith("traceflops")]
    assert len(lines) == 1 and "does not match the trace" in lines[0]
    assert "Traceback" not in wrong.stderr
    missing = _cli(recorded / "fn", "--model", recorded / "fresh.keras")
    assert missing.returncode == 2 and "--batch-size" in missing.stderr and "Traceback" not in missing.stderr
    absent = _cli(recorded / "fn", "--model", recorded / "nothing.keras", "--batch-size", 4)
    assert absent.returncode == 3 and "no such file" in absent.stderr and "Traceback" not in absent.stderr
    zero = _cli(recorded / "fn", "--model", recorded / "fresh.keras", "--batch-size", 0)
    assert zero.returncode == 2 and "Traceback" not in zero.stderr


def test_model_object_and_onednn_follows_the_trace(recorded):
    import keras
    import traceflops
    from traceflops.api import _ran_onednn
    from traceflops.trace import find_trace_files, load_trace
    events = load_trace(find_trace_files(recorded / "fn")).events
    onednn = _ran_onednn(events[events["kind"] == "op"])
    assert onednn == events["op_type"].astype(str).str.startswith("_Mkl").any()
    model = keras.saving.load_model(recorded / "fresh.keras")
    result = traceflops.analyze(recorded / "fn", model=model, batch_size=4)
    assert result.summary["macs_per_step"] == 5 * forward_macs(4)
    assert result.summary["model_match"]["unmatched"] == 0


def test_batch_size_read_from_recorded_shapes_and_a_wrong_one_refused(recorded, tmp_path):
    """A trace with shapes (level 3) but no graph beside it: the batch size is read off its shapes."""
    import traceflops
    from traceflops.capture import capture_isolated
    from traceflops.errors import UsageError
    captured = capture_isolated(str(recorded / "fresh.keras"), tmp_path / "logdir", batch_size=4, steps=2,
                                warmup=1, host_tracer_level=3)
    # level 3 runs in the sandbox's private namespace (tests/test_safety.py checks it as root and not)
    assert captured.host_tracer_level == 3
    for name in ("traceflops_graph.json", "traceflops_capture.json"):
        os.remove(os.path.join(captured.run_dir, name))
    result = traceflops.analyze(captured.run_dir, model=str(recorded / "fresh.keras"))
    assert result.summary["batch_size"] == 4
    assert result.summary["macs_per_step"] == forward_macs(4)
    with pytest.raises(UsageError, match="recorded shapes show batch size 4"):
        traceflops.analyze(captured.run_dir, model=str(recorded / "fresh.keras"), batch_size=8)
