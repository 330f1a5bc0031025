"""The command line on good and bad input: exit codes, one clear line on stderr, no partial files."""
import json
import subprocess
import sys

import pytest

from conftest import CLI_ENV as ENV, TRACES, assert_clean_failure, run_cli

run = run_cli


@pytest.mark.tf
def test_profile_bundled_example_writes_outputs(tmp_path):
    out = tmp_path / "out"
    proc = run("profile", "--example", "--batch-size", "2", "--steps", "3", "--out", out, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["model"] == "example_cnn" and summary["steps"] == 3
    assert summary["macs_per_step"] == 25_446_912 and summary["coverage"] >= 0.99
    assert (out / "ops.csv").exists() and json.loads((out / "summary.json").read_text())["steps"] == 3


def test_analyze_recorded_trace_prints_table():
    proc = run("analyze", TRACES / "cpu-example-cnn", "--top", "5")
    assert proc.returncode == 0, proc.stderr
    assert "_MklNativeFusedConv2D" in proc.stdout and "coverage" in proc.stdout


@pytest.mark.tf
def test_missing_model_file(tmp_path):
    proc = run("profile", tmp_path / "nope.keras", "--out", tmp_path / "out")
    assert_clean_failure(proc, 3, "nope.keras", "no such file")
    assert not (tmp_path / "out" / "ops.csv").exists()


@pytest.mark.tf
def test_file_that_is_not_a_model(tmp_path):
    bogus = tmp_path / "bogus.keras"
    bogus.write_bytes(b"this is not a zip archive")
    out = tmp_path / "out"
    proc = run("profile", bogus, "--out", out)
    assert_clean_failure(proc, 3, "bogus.keras", "could not load")
    assert [p.name for p in out.iterdir()] == []


@pytest.mark.tf
def test_unregistered_custom_layer(tmp_path):
    script = (
        "import keras\n"
        "@keras.saving.register_keras_serializable(package='mine')\n"
        "class Twice(keras.layers.Layer):\n"
        "    def call(self, x): return 2 * x\n"
        "m = keras.Sequential([keras.Input((3,)), Twice()])\n"
        f"m.save({str(tmp_path / 'custom.keras')!r})\n")
    subprocess.run([sys.executable, "-c", script], check=True, env=ENV, capture_output=True)
    proc = run("profile", tmp_path / "custom.keras")
    assert_clean_failure(proc, 3, "custom.keras", "custom layer")


@pytest.mark.tf
def test_lambda_layer_refused_by_safe_mode(tmp_path):
    script = (
        "import keras\n"
        "m = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])\n"
        f"m.save({str(tmp_path / 'lam.keras')!r})\n")
    subprocess.run([sys.executable, "-c", script], check=True, env=ENV, capture_output=True)
    proc = run("profile", tmp_path / "lam.keras")
    assert_clean_failure(proc, 3, "Lambda", "--allow-unsafe")


@pytest.mark.parametrize("args, code, words", [
    (["--batch-size", "0"], 2, ["batch-size", "at least 1"]),  # refused before TensorFlow is imported
    pytest.param(["--device", "GPU:0"], 2, ["GPU:0", "no such device"], marks=pytest.mark.tf),
    pytest.param(["--device", "TPU:0"], 2, ["expected CPU:0 or GPU:N"], marks=pytest.mark.tf),
    pytest.param(["--steps", "0"], 2, ["--steps"], marks=pytest.mark.tf),
])
def test_bad_profile_arguments(tmp_path, args, code, words):
    out = tmp_path / "out"
    proc = run("profile", "--example", "--out", out, *args)
    assert_clean_failure(proc, code, *words)
    assert not (out / "ops.csv").exists() and not (out / "summary.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".traceflops")] if out.exists() else True


def test_bad_trace_inputs(tmp_path):
    assert_clean_failure(run("analyze", tmp_path / "missing"), 4, "no such file")
    empty_dir = tmp_path / "emptydir"
    empty_dir.mkdir()
    assert_clean_failure(run("analyze", empty_dir), 4, "no *.xplane.pb")
    empty = tmp_path / "empty.xplane.pb"
    empty.write_bytes(b"")
    assert_clean_failure(run("analyze", empty), 4, "empty")
    noise = tmp_path / "noise.xplane.pb"
    noise.write_bytes(bytes(range(256)) * 8)
    assert_clean_failure(run("analyze", noise, "--out", tmp_path / "out"), 4, "noise.xplane.pb")
    assert not (tmp_path / "out" / "ops.csv").exists()


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = run("analyze", TRACES / "cpu-example-cnn", "--out", blocker / "sub")
    assert_clean_failure(proc, 2, "cannot write output")


def test_output_reader_that_goes_away_is_no_error():
    """`traceflops analyze ... | head`: the reader closes the pipe; no traceback, no `internal error`."""
    proc = subprocess.Popen([sys.executable, "-m", "traceflops", "analyze", str(TRACES / "cpu-example-cnn")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV)
    proc.stdout.close()  # before it writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "internal error" not in err, err
