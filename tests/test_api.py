"""The Python API's shape: `profile` and `analyze` take their options by keyword only, a `Result` names
its tables, its `Summary` is summary.json as typed attributes and as keys, and the package exports the
API only. On recorded traces (no TensorFlow)."""
import inspect
import json
from pathlib import Path

import pandas as pd
import pytest

import traceflops
from traceflops import api, report
from traceflops.errors import UsageError

TRACES = Path(__file__).resolve().parent.parent / "traces"
GPU_TRACE = TRACES / "gpu" / "jax-mi300-gemm.xplane.pb"
CPU_RUN = TRACES / "cpu-example-cnn"


@pytest.fixture(scope="module")
def gpu_result():
    return traceflops.analyze(str(GPU_TRACE))


@pytest.fixture(scope="module")
def cpu_result():
    return traceflops.analyze(str(CPU_RUN))


@pytest.mark.parametrize("function", [traceflops.profile, traceflops.analyze])
def test_options_are_keyword_only_past_the_first_argument(function):
    first, *rest = inspect.signature(function).parameters.values()
    assert first.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert rest and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest), \
        [p.name for p in rest if p.kind is not inspect.Parameter.KEYWORD_ONLY]


def test_a_positional_option_is_refused():
    with pytest.raises(TypeError):
        traceflops.analyze(str(CPU_RUN), 3)


def test_the_notebook_calls_keep_their_names():
    """`profile(m, batch_size=8, train=True)`, `analyze("logdir", steps=3)` and the model rebuild's options."""
    profile = inspect.signature(traceflops.profile).parameters
    analyze = inspect.signature(traceflops.analyze).parameters
    assert {"out", "batch_size", "steps", "warmup", "train", "input_shape", "device", "backend",
            "roofline", "threshold"} <= set(profile)
    assert {"steps", "ceilings", "measure_ceilings", "threshold", "model", "batch_size", "train",
            "allow_unsafe", "scheduler", "storage_options"} <= set(analyze)


def test_model_rebuild_options_go_with_a_model():
    for options in ({"batch_size": 8}, {"train": True}):
        with pytest.raises(UsageError, match="go with --model"):
            traceflops.analyze(str(CPU_RUN), **options)


def test_gpu_trace_names_its_kernel_and_memcpy_tables(gpu_result, tmp_path):
    assert isinstance(gpu_result.kernels, pd.DataFrame) and len(gpu_result.kernels) > 0
    # Its device copies are the runtime's copy kernels (`__amd_rocclr_copyBuffer`): rows of the memcpy
    # table, not of the kernels table.
    assert isinstance(gpu_result.memcpy, pd.DataFrame)
    assert set(gpu_result.memcpy["name"]) == {"__amd_rocclr_copyBuffer.kd"}
    assert not gpu_result.kernels["kernel_name"].str.contains("rocclr_copy").any()
    assert "gbytes_per_s" in gpu_result.memcpy.columns
    assert gpu_result.hosts is None  # one host
    assert list(gpu_result.side_tables) == ["kernels", "memcpy"]
    gpu_result.write(tmp_path)
    for name in ("kernels", "memcpy"):
        written = pd.read_csv(tmp_path / f"{name}.csv")
        assert list(written.columns) == list(getattr(gpu_result, name).columns)
        assert len(written) == len(getattr(gpu_result, name))
    assert not (tmp_path / "hosts.csv").exists()


def test_cpu_run_has_no_side_tables(cpu_result, tmp_path):
    assert cpu_result.kernels is None and cpu_result.memcpy is None and cpu_result.hosts is None
    assert cpu_result.side_tables == {}
    cpu_result.write(tmp_path)
    assert not any((tmp_path / f"{name}.csv").exists() for name in ("kernels", "memcpy", "hosts"))


@pytest.mark.parametrize("which", ["gpu_result", "cpu_result"])
def test_summary_to_dict_is_the_summary_json_written(which, request, tmp_path):
    result = request.getfixturevalue(which)
    result.write(tmp_path)
    text = (tmp_path / report.SUMMARY_JSON).read_text()
    plain = result.summary.to_dict()
    assert type(plain) is dict
    assert json.loads(text) == report.to_jsonable(plain)
    assert list(json.loads(text)) == list(plain)  # the keys in the file's order
    assert json.dumps(report.to_jsonable(plain), indent=2) + "\n" == text


def test_summary_figures_are_attributes_and_keys(gpu_result):
    summary = gpu_result.summary
    assert isinstance(summary, traceflops.Summary) and isinstance(summary, dict)
    for key in ("model", "device", "steps", "flops_per_step", "macs_per_step", "bytes_per_step", "gflops_per_s",
                "step_time_us", "coverage", "kernel_coverage", "warnings", "trace_files", "run_dir"):
        assert key in summary
        assert getattr(summary, key) == summary[key]
    assert summary.flops_per_step > 0 and isinstance(summary.warnings, list)
    assert summary.straggler is None and "straggler" not in summary  # an absent figure reads None


def test_setting_a_figure_sets_its_key():
    summary = traceflops.Summary({"steps": 2, "run_dir": "a"})
    summary.run_dir = "b"
    assert summary["run_dir"] == "b" and list(summary) == ["steps", "run_dir"]
    summary.model = "m"
    assert summary.to_dict() == {"steps": 2, "run_dir": "b", "model": "m"}


def test_a_result_built_from_a_dict_gets_a_summary(cpu_result):
    built = api.Result(cpu_result.ops, dict(cpu_result.summary), cpu_result.trace)
    assert isinstance(built.summary, traceflops.Summary) and built.summary.steps == cpu_result.summary.steps


def test_only_the_api_is_exported():
    assert set(api.__all__) == {"Result", "Summary", "analyze", "profile"}
    assert set(traceflops.__all__) == {"Result", "Summary", "analyze", "profile", "register_formula",
                                       "supported_ops", "count", "CountResult", "register_layer_formula"}
    for module in (api, traceflops):
        assert not [name for name in module.__all__ if name.startswith("_")]
        for name in module.__all__:
            assert getattr(module, name) is not None
    assert not hasattr(api, "ensure_writable_dir")
    assert traceflops.Result is api.Result
