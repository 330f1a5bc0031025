"""Keras 3 on the JAX backend: `profile(..., backend="jax")`, `--backend jax`,
`KERAS_BACKEND=jax`, with and without `--train`.

Contraction MACs per step are checked against a count made by hand from the layer configs below
(textbook: every kernel tap; training = forward + weight gradients + input gradients, no input
gradient for a contraction fed directly by the model input), per Keras layer, so the `layer`
column is checked at the same time. The four captures run in parallel child processes.
"""
import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import traceflops
from traceflops.capture.options import resolve_backend
from traceflops.costs.hlo.layers import name_stack_layer
from traceflops.errors import ModelError, UsageError

# `tf` too: the marker stands for the heavy extras (Keras among them), which a `[test]`-only venv lacks
pytestmark = [pytest.mark.jax, pytest.mark.tf]

N, STEPS = 2, 3
# The CNN: 16x16x3 input; stem 3x3/2 SAME conv (8, no bias) + BatchNorm + ReLU; depthwise 3x3 SAME;
# separable 3x3 SAME (16, ReLU); 3x3/2 VALID conv (16); global average pool; Dense(10, softmax).
H, C_IN, STEM, SEP, RED, CLASSES, K = 16, 3, 8, 16, 16, 10, 3
# The Transformer block: 8 tokens of width 16; MultiHeadAttention(2 heads, key_dim 8) on (x, x);
# residual + LayerNorm; Dense(32, GELU), Dense(16); residual + LayerNorm.
S, D, HEADS, KEY, FF = 8, 16, 2, 8, 32

BUILD = textwrap.dedent(f"""
    import os, sys
    os.environ["KERAS_BACKEND"] = "jax"
    import keras
    from keras import layers
    x = keras.Input(({H}, {H}, {C_IN}), name="image")
    h = layers.Conv2D({STEM}, {K}, strides=2, padding="same", use_bias=False, name="stem")(x)
    h = layers.ReLU(name="stem_relu")(layers.BatchNormalization(name="stem_bn")(h))
    h = layers.DepthwiseConv2D({K}, padding="same", name="dw")(h)
    h = layers.SeparableConv2D({SEP}, {K}, padding="same", activation="relu", name="sep")(h)
    h = layers.Conv2D({RED}, {K}, strides=2, padding="valid", name="reduce")(h)
    y = layers.Dense({CLASSES}, activation="softmax", name="head")(layers.GlobalAveragePooling2D(name="pool")(h))
    keras.Model(x, y, name="tiny_cnn").save(sys.argv[1] + "/cnn.keras")
    t = keras.Input(({S}, {D}), name="tokens")
    a = layers.MultiHeadAttention(num_heads={HEADS}, key_dim={KEY}, name="mha")(t, t)
    h = layers.LayerNormalization(name="ln1")(layers.Add(name="res1")([t, a]))
    f = layers.Dense({D}, name="ffn2")(layers.Dense({FF}, activation="gelu", name="ffn1")(h))
    block = keras.Model(t, layers.LayerNormalization(name="ln2")(layers.Add(name="res2")([h, f])), name="tiny_block")
    block.compile(optimizer="adam", loss="mse")
    block.save(sys.argv[1] + "/block.keras")
""")


def conv(out_hw, k, in_per_group, out_channels):
    return N * out_hw * out_hw * out_channels * k * k * in_per_group


def cnn_macs(train: bool) -> dict:
    stem_out = -(-H // 2)                      # SAME, stride 2
    red_out = (stem_out - K) // 2 + 1          # VALID, stride 2
    forward = {"stem": conv(stem_out, K, C_IN, STEM),
               "dw": conv(stem_out, K, 1, STEM),
               "sep": conv(stem_out, K, 1, STEM) + conv(stem_out, 1, STEM, SEP),
               "reduce": conv(red_out, K, SEP, RED),
               "head": N * RED * CLASSES}
    if not train:
        return forward
    # Weight and input gradients, each the forward count; the stem is fed by the input: no dX.
    return {layer: macs * (2 if layer == "stem" else 3) for layer, macs in forward.items()}


def block_macs(train: bool) -> dict:
    projection = N * S * D * HEADS * KEY       # each of Q, K, V and the output projection
    scores = N * HEADS * S * S * KEY           # QK^T, and the same for the weighted sum of V
    ffn1, ffn2 = N * S * D * FF, N * S * FF * D
    if not train:
        return {"mha": 4 * projection + 2 * scores, "ffn1": ffn1, "ffn2": ffn2}
    # Q, K, V read the model input: weight gradients only. Attention products have two input
    # gradients (no weights); the output projection and the MLP have one of each.
    return {"mha": 3 * 2 * projection + 3 * projection + 2 * 3 * scores, "ffn1": 3 * ffn1, "ffn2": 3 * ffn2}


def _profile(path, train):
    return traceflops.profile(str(path), backend="jax", batch_size=N, steps=STEPS, warmup=1, roofline=False,
                              train=train)


def _cli(path, out):
    env = {**os.environ, "KERAS_BACKEND": "jax"}  # the backend from the environment, no flag
    done = subprocess.run([sys.executable, "-m", "traceflops", "profile", str(path), "--batch-size", str(N),
                           "--steps", str(STEPS), "--warmup", "1", "--train", "--no-roofline", "--json",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout), out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jax_models")
    if "keras" in sys.modules:
        # A `.keras` file is the same whichever backend wrote it: where Keras is loaded already (the
        # whole suite), build here and save a process start; the captures load it on JAX.
        exec(BUILD.replace('os.environ["KERAS_BACKEND"] = "jax"', "").replace("sys.argv[1]", repr(str(folder))),
             {"__name__": "build_models"})
    else:
        subprocess.run([sys.executable, "-c", BUILD, str(folder)], check=True, timeout=300,
                       env={**os.environ, "KERAS_BACKEND": "jax"}, capture_output=True)
    cnn, block = folder / "cnn.keras", folder / "block.keras"
    with ThreadPoolExecutor(4) as pool:
        jobs = {"cnn": pool.submit(_profile, cnn, False), "cnn_train": pool.submit(_profile, cnn, True),
                "block": pool.submit(_profile, block, False),
                "block_train": pool.submit(_cli, block, folder / "out")}
        return {name: job.result() for name, job in jobs.items()} | {"cnn_path": cnn}


def _by_layer(ops):
    rows = ops[ops["macs"].notna()]
    return {layer: int(macs) for layer, macs in rows.groupby("layer")["macs"].apply(
        lambda m: (m.astype("Int64") * rows.loc[m.index, "occurrences"]).sum() // STEPS).items()}


@pytest.mark.parametrize("name, expected", [("cnn", cnn_macs(False)), ("cnn_train", cnn_macs(True)),
                                            ("block", block_macs(False))])
def test_contraction_macs_per_layer_equal_the_textbook_count(runs, name, expected):
    result = runs[name]
    assert result.summary["steps"] == STEPS
    assert result.summary["coverage"] >= 0.99
    assert result.summary["macs_per_step"] == sum(expected.values())
    assert _by_layer(result.ops) == expected  # every contraction is in the layer that owns it
    assert result.summary["backend"] == "jax"
    assert not [w for w in result.summary["warnings"] if "no ceilings" not in w]  # roofline=False here


def test_cli_training_step_from_keras_backend_env(runs):
    import pandas as pd
    summary, out = runs["block_train"]
    expected = block_macs(True)
    assert summary["steps"] == STEPS and summary["coverage"] >= 0.99
    assert summary["macs_per_step"] == sum(expected.values())
    assert summary["training"] == {"loss": "mse", "optimizer": "Adam", "defaulted": False, "backend": "jax"}
    ops = pd.read_csv(out / "ops.csv")
    assert _by_layer(ops) == expected
    assert (out / "logdir").is_dir()


def test_training_defaults_and_no_tensorflow_in_the_capture(runs):
    result = runs["cnn_train"]
    assert result.summary["training"] == {"loss": "categorical_crossentropy", "optimizer": "SGD",
                                          "defaulted": True, "backend": "jax"}
    info = json.loads((Path(result.run_dir) / "traceflops_capture.json").read_text())
    assert info["tensorflow_imported"] is False
    # XLA ran the depthwise weight gradients as dense convolutions masked to their diagonal: counted as
    # the grouped convolution, XLA's own (valid-window) count of the dense one beside it.
    masked = result.ops[result.ops["note"].str.contains("masked to its diagonal", na=False)]
    assert len(masked) == 2 and (masked["xla_valid_macs"] > masked["macs"]).all()
    assert set(masked["layer"]) == {"dw", "sep"}


def test_analysis_of_a_jax_trace_imports_no_tensorflow(runs):
    code = (f"import sys, traceflops; r = traceflops.analyze({runs['cnn'].run_dir!r}); "
            "assert r.summary['coverage'] >= 0.99; assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_bad_inputs_give_one_line_errors(runs, tmp_path, monkeypatch, capsys):
    from traceflops import cli
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip file")
    assert cli.main(["profile", str(broken), "--backend", "jax", "--no-roofline"]) == ModelError.exit_code
    assert cli.main(["profile", str(tmp_path / "missing.keras"), "--backend", "jax"]) == ModelError.exit_code
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real(name, *a))
    assert cli.main(["profile", str(runs["cnn_path"]), "--backend", "jax"]) == UsageError.exit_code
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("traceflops: error:")]
    assert len(errors) == 3 and "could not load" in errors[0] and "jax" in errors[2]
    assert "Traceback" not in capsys.readouterr().err


def test_backend_choice(monkeypatch):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert resolve_backend(None) == "jax" and resolve_backend("tensorflow") == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    with pytest.raises(UsageError, match="KERAS_BACKEND"):
        resolve_backend(None)


def test_name_stack_layers():
    assert name_stack_layer("jit(step)/conv2d/conv_general_dilated") == "conv2d"
    assert name_stack_layer("jit(step)/transpose(jvp(conv2d))/conv_general_dilated") == "conv2d"
    assert name_stack_layer("jit(step)/jvp(dense)/jit(relu)/max") == "dense"
    assert name_stack_layer("jit(step)/dot_general") == ""
    assert name_stack_layer("model/conv2d/Conv2D") == "conv2d"  # TensorFlow names as before


def test_jax_ceilings_are_measured_with_jax_and_cached_apart(tmp_path, monkeypatch):
    from traceflops.roofline import peaks, peaks_jax
    small = peaks_jax.measure_peaks_jax("CPU:0", sizes=(64,), dtypes=("float32",), repeats=1,
                                        buffer_bytes=1 << 20, time_budget_s=2.0)
    assert small["peak_gflops_per_s"]["float32"] > 0 and small["bandwidth_gbytes_per_s"] > 0
    assert small["measured"]["backend"] == "jax"
    assert small["measured"]["conditions"]["confidence"] in ("high", "medium", "low")
    # the cache keeps a confident, plausible measurement (a low-confidence one, or one far below the
    # theoretical peak as a 64^3 GEMM is, is re-measured): the cached stand-in says so
    small["measured"]["conditions"].update(confidence="high", confidence_reason="quiet machine (set by the test)")
    small["peak_gflops_per_s"]["float32"] = 1e6
    calls = []
    monkeypatch.setattr(peaks_jax, "measure_peaks_jax", lambda device, **_: calls.append(device) or small)
    first = peaks.get_ceilings("CPU:0", cache_dir=str(tmp_path), backend="jax")
    again = peaks.get_ceilings("CPU:0", cache_dir=str(tmp_path), backend="jax")
    assert calls == ["CPU:0"] and not first["cached"] and again["cached"]
    key = json.loads(Path(first["cache_file"]).read_text())["key"]
    assert key["backend"] == "jax" and key["jax"] and key["tensorflow"] is None
