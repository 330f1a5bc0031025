"""Device ceilings: theoretical CPU peak, a small real measurement, and the per-machine cache."""
import json
import time

import pytest

from traceflops.roofline import peaks

FAKE_MEASUREMENT = {"device": "CPU:0", "peak_gflops_per_s": {"float32": 123.0, "bfloat16": 456.0},
                    "bandwidth_gbytes_per_s": 30.0, "source": "measured",
                    "measured": {"gemm": {"float32": {"best_size": 2048}},
                                 "conditions": {"confidence": "high", "measured_at": "2026-11-25T22:00:00+0000",
                                                "other_processes_cpu_share": 0.01}}}


@pytest.fixture
def counted_measure(monkeypatch):
    """Replace our measure_peaks with a recorder so cache tests run no TensorFlow."""
    calls = []

    def fake(device="CPU:0", **options):
        calls.append((device, options))
        return dict(FAKE_MEASUREMENT, device=device)
    monkeypatch.setattr(peaks, "measure_peaks", fake)
    return calls


@pytest.fixture
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACEFLOPS_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_theoretical_cpu_on_this_machine():
    result = peaks.theoretical_cpu()
    assert result["peak_gflops_per_s"]["float32"] > 0
    assert result["cores"] >= 1
    assert len(result["assumptions"]) >= 3
    assert any("FMA" in text for text in result["assumptions"])
    assert any("clock" in text for text in result["assumptions"])
    assert result["bandwidth_gbytes_per_s"] is None and result["bandwidth_note"]


@pytest.mark.parametrize("flags, expected", [
    # 2 cores x 16 lanes x 2 pipes x 2 FLOP x 2.5 GHz = 320; AMX 2 x 1024 x 2.5 = 5120
    ({"avx512f", "avx2", "fma", "amx_bf16", "avx512_bf16"}, {"float32": 320.0, "bfloat16": 5120.0}),
    # AVX512_BF16 without AMX: twice float32
    ({"avx512f", "avx512_bf16"}, {"float32": 320.0, "bfloat16": 640.0}),
    # AVX2: 8 lanes x 2 pipes x 2 x 2 cores x 2.5 = 160
    ({"avx2", "fma"}, {"float32": 160.0}),
    # SSE only: 4 lanes x 1 pipe x 2 x 2 cores x 2.5 = 40
    ({"sse2"}, {"float32": 40.0}),
])
def test_theoretical_from_flags(flags, expected):
    result, assumptions = peaks.theoretical_from(flags, cores=2, clock_ghz=2.5)
    assert result == pytest.approx(expected)
    assert assumptions


def test_default_buffer_is_large():
    buffer_bytes, reason = peaks.default_buffer_bytes()
    assert peaks.MIN_BUFFER_BYTES <= buffer_bytes <= max(peaks.MAX_BUFFER_BYTES, peaks.MIN_BUFFER_BYTES)
    llc = peaks.last_level_cache_bytes()
    assert llc is None or "LLC" in reason


@pytest.mark.tf
def test_small_real_measurement(tf_runtime):
    started = time.perf_counter()
    result = peaks.measure_peaks("CPU:0", sizes=(128, 256), dtypes=("float32", "bfloat16"), repeats=3,
                                 buffer_bytes=8 << 20)
    assert time.perf_counter() - started < 30
    assert result["source"] == "measured"
    assert result["peak_gflops_per_s"]["float32"] > 0.1
    assert result["bandwidth_gbytes_per_s"] > 0.1
    gemm = result["measured"]["gemm"]["float32"]
    assert gemm["best_size"] in (128, 256)
    assert max(gemm["gflops_per_s_by_size"].values()) == result["peak_gflops_per_s"]["float32"]
    # bfloat16 either measured or skipped with a reason, never silently absent
    assert ("bfloat16" in result["peak_gflops_per_s"]) != ("bfloat16" in result["measured"]["dtypes_skipped"])
    assert result["measured"]["bandwidth"]["buffer_bytes"] == 8 << 20
    assert result["measured"]["repeats"] == 3


@pytest.mark.tf
def test_unsupported_dtype_is_skipped_with_reason(tf_runtime):
    # TensorFlow has no int8 MatMul kernel on CPU: the sweep records the error and goes on
    result = peaks.measure_peaks("CPU:0", sizes=(64,), dtypes=("float32", "int8"), repeats=1,
                                 buffer_bytes=1 << 20)
    assert "int8" not in result["peak_gflops_per_s"]
    assert "int8" in result["measured"]["dtypes_skipped"]["int8"]


def test_second_call_is_cached_and_does_not_measure(cache_env, counted_measure):
    first = peaks.get_ceilings("CPU:0")
    second = peaks.get_ceilings("CPU:0")
    assert len(counted_measure) == 1
    assert first["cached"] is False and second["cached"] is True
    assert second["peak_gflops_per_s"] == {"float32": 123.0, "bfloat16": 456.0}
    assert second["bandwidth_gbytes_per_s"] == 30.0
    assert second["cache_file"] == first["cache_file"]
    assert second["cache_file"].startswith(str(cache_env))
    assert second["theoretical"]["peak_gflops_per_s"]["float32"] > 0
    assert set(second) == {"device", "peak_gflops_per_s", "bandwidth_gbytes_per_s", "source", "measured",
                           "theoretical", "cached", "cache_file", "written_at", "measured_at", "age",
                           "confidence", "remeasured_because"}
    assert second["confidence"] == "high" and second["age"] == "measured just now"
    assert second["remeasured_because"] is None


def test_refresh_measures_again(cache_env, counted_measure):
    peaks.get_ceilings("CPU:0")
    again = peaks.get_ceilings("CPU:0", refresh=True)
    assert len(counted_measure) == 2
    assert again["cached"] is False


def test_cache_is_per_device_and_options(cache_env, counted_measure):
    cpu = peaks.get_ceilings("CPU:0")
    gpu = peaks.get_ceilings("GPU:0")
    assert cpu["cache_file"] != gpu["cache_file"]
    assert gpu["theoretical"]["peak_gflops_per_s"] == {}
    peaks.get_ceilings("CPU:0", measure_options={"repeats": 2})  # other options: measured again
    assert len(counted_measure) == 3
    assert counted_measure[-1] == ("CPU:0", {"repeats": 2})
    assert peaks.get_ceilings("CPU:0", measure_options={"repeats": 2})["cached"] is True


def test_corrupt_or_foreign_cache_is_remeasured(cache_env, counted_measure):
    path = peaks.get_ceilings("CPU:0")["cache_file"]
    with open(path, "w") as stream:
        stream.write("{not json")
    assert peaks.get_ceilings("CPU:0")["cached"] is False
    record = json.loads(open(path).read())
    record["key"]["tensorflow"] = "0.0.1"  # written by another TensorFlow
    with open(path, "w") as stream:
        json.dump(record, stream)
    assert peaks.get_ceilings("CPU:0")["cached"] is False
    assert len(counted_measure) == 3


def test_cache_file_is_complete_json_and_no_temporaries(cache_env, counted_measure):
    result = peaks.get_ceilings("CPU:0")
    record = json.loads(open(result["cache_file"]).read())
    assert record["key"]["device"] == "CPU:0"
    assert record["key"]["host"] and record["key"]["cpu_model"] and record["key"]["tensorflow"]
    assert record["ceilings"]["peak_gflops_per_s"]["float32"] == 123.0
    assert [p.name for p in cache_env.iterdir()] == [result["cache_file"].split("/")[-1]]


def test_cache_directory_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("TRACEFLOPS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert peaks.cache_directory() == tmp_path / "xdg" / "traceflops"
    monkeypatch.setenv("TRACEFLOPS_CACHE_DIR", str(tmp_path / "override"))
    assert peaks.cache_directory() == tmp_path / "override"
    assert peaks.cache_directory(str(tmp_path / "explicit")) == tmp_path / "explicit"
    monkeypatch.delenv("TRACEFLOPS_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert peaks.cache_directory() == tmp_path / "home" / ".cache" / "traceflops"


def _edit_cache(path, **changes):
    record = json.loads(open(path).read())
    for dotted, value in changes.items():
        target = record
        *parents, last = dotted.split("__")
        for part in parents:
            target = target[part]
        target[last] = value
    with open(path, "w") as stream:
        json.dump(record, stream)


@pytest.mark.parametrize("edit,why", [
    ({"ceilings__measured__conditions": {"confidence": "low", "confidence_reason": "busy"}}, "low confidence"),
    ({"ceilings__measured__conditions": None}, "no measuring conditions"),
])
def test_implausible_cache_is_measured_again_and_says_why(cache_env, counted_measure, edit, why):
    path = peaks.get_ceilings("CPU:0")["cache_file"]
    _edit_cache(path, **edit)
    again = peaks.get_ceilings("CPU:0")
    assert again["cached"] is False and len(counted_measure) == 2
    assert why in again["remeasured_because"]


def test_cache_far_below_theoretical_is_measured_again(cache_env, counted_measure):
    path = peaks.get_ceilings("CPU:0")["cache_file"]
    theoretical = peaks.theoretical_cpu()["peak_gflops_per_s"]["float32"]
    _edit_cache(path, ceilings__peak_gflops_per_s={"float32": round(theoretical * 0.05, 1)})
    again = peaks.get_ceilings("CPU:0")
    assert again["cached"] is False and "theoretical" in again["remeasured_because"]


def test_confidence_from_load_and_spread():
    from traceflops.roofline import trust
    assert trust.confidence({"other_processes_cpu_share": 0.01}, 0.02)[0] == "high"
    level, why = trust.confidence({"other_processes_cpu_share": 0.6}, 0.02)
    assert level == "low" and "60%" in why
    assert trust.confidence({"other_processes_cpu_share": 0.01}, 0.5)[0] == "medium"
    before = trust.machine_load()
    load = trust.load_between(before)
    assert load["cpus"] >= 1 and "other_processes_cpu_share" in load
