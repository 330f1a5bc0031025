"""XLA on CPU: instruction times from XLA:CPU execution events, the call op keeps only its own
time, op time per step never exceeds the step time. Synthetic event tables, then real `jit_compile` runs."""

import pandas as pd
import pytest

import traceflops
from traceflops.trace.xla_cpu import attribute_xla_time

US = 1_000_000  # picoseconds per microsecond
MODULE = "a_inference_step_7__XlaMustCompile_true_.3"


def _events(rows):
    """rows: (kind, line, op_name, start_us, duration_us, self_us)."""
    return pd.DataFrame([{"host": "h", "plane": "/host:CPU", "line": line, "kind": kind, "op_name": name,
                          "op_type": "__inference_step_7" if kind == "op" else "",
                          "hlo_module": MODULE if kind == "xla" else None, "start_ps": start * US,
                          "duration_ps": duration * US, "self_ps": self_us * US}
                         for kind, line, name, start, duration, self_us in rows])


def _self_us(events):
    return dict(zip(events["op_name"], events["self_ps"] / US))


def test_call_op_keeps_only_its_own_time_when_instructions_run_on_worker_threads():
    events = _events([("op", "python", "call", 0, 100, 90),          # fusion.1 (10 us) nested on its line
                      ("xla", "python", "fusion.1", 5, 10, 10),
                      ("xla", "Eigen/1", "dot", 20, 30, 30),
                      ("xla", "Eigen/1", "fusion.2", 55, 25, 25)])
    rewritten, untimed = attribute_xla_time(events)
    times = _self_us(rewritten)
    # window 5..80: gaps 15..20 and 50..55 go to the instruction that ended last before them
    assert times == {"call": 25, "fusion.1": 15, "dot": 35, "fusion.2": 25}
    assert sum(times.values()) == 100 and untimed == []


def test_asynchronous_convolution_runs_until_the_next_instruction_on_its_thread():
    events = _events([("op", "python", "call", 0, 200, 200),
                      ("xla", "Eigen/1", "convolution.3", 10, 5, 5),   # dispatch only
                      ("xla", "Eigen/1", "fusion", 110, 10, 10),
                      ("xla", "Eigen/2", "reduce", 20, 40, 40)])       # concurrent, on another thread
    times = _self_us(attribute_xla_time(events)[0])
    # conv open 10..110, reduce 20..60 overlaps it: 40 us shared evenly
    assert times["convolution.3"] == pytest.approx(100 - 20) and times["reduce"] == pytest.approx(20)
    assert times["fusion"] == 10 and times["call"] == 200 - 110
    assert sum(times.values()) == pytest.approx(200)


def test_call_without_instruction_events_is_named():
    events = _events([("op", "python", "call", 0, 100, 100), ("op", "python", "other", 200, 10, 10),
                      ("xla", "Eigen/1", "dot", 205, 3, 3)])
    events.loc[1, "op_type"] = "__inference_step_9"
    rewritten, untimed = attribute_xla_time(events)
    assert untimed == ["call"]
    assert _self_us(rewritten)["call"] == 100


def test_traces_without_xla_are_untouched():
    events = _events([("op", "python", "call", 0, 100, 100)])
    assert attribute_xla_time(events)[0] is events


def res_model(keras):
    """ResNet-style: conv stem, a block of 3x3 and 1x1 convs with batch norm, pooling, a second block,
    global pooling and a dense head. All convs 'valid'-padded: XLA's convolution count (valid-window
    taps) equals the textbook count only there (padded convs: the XLA convention, worked on elsewhere)."""
    L = keras.layers
    x = keras.Input((24, 24, 8))
    y = L.Conv2D(16, 3, activation="relu")(x)
    for filters in (16, 32):
        y = L.Conv2D(filters, 3, use_bias=False)(y)
        y = L.ReLU()(L.BatchNormalization()(y))
        y = L.Conv2D(filters, 1)(y)
        y = L.MaxPooling2D()(y) if filters == 16 else y
    return keras.Model(x, L.Dense(10, activation="softmax")(L.GlobalAveragePooling2D()(y)), name="tinyres")


@pytest.fixture(scope="module")
def jit_run(tf_runtime):
    """One `jit_compile` capture of the ResNet-style model (2 steps), shared by the tests below."""
    import keras
    return traceflops.profile(res_model(keras), batch_size=2, steps=2, warmup=1, roofline=False, jit_compile=True)


@pytest.mark.tf
def test_jit_compile_op_time_within_step_and_macs_equal_the_plain_run(tf_runtime, jit_run):
    import keras
    from traceflops.roofline.peaks import theoretical_cpu
    plain = traceflops.profile(res_model(keras), batch_size=2, steps=2, warmup=1, roofline=False)
    jit = jit_run
    summary, ops = jit.summary, jit.ops
    assert (ops["hlo_module"].fillna("") != "").any(), "the jit run has XLA rows"
    assert summary["op_time_per_step_us"] <= summary["step_time_us"]
    call = ops[ops["op_type"].str.startswith("__inference_")]
    assert len(call) == 1 and call["total_time_us"].iloc[0] < ops["total_time_us"].sum() / 2
    peak = theoretical_cpu()["peak_gflops_per_s"]["float32"]
    assert ops["gflops_per_s"].astype(float).max() <= peak
    assert summary["macs_per_step"] == plain.summary["macs_per_step"] > 0
    assert summary["coverage"] == 1.0


@pytest.mark.tf
def test_cluster_without_instruction_events_is_priced_as_one_row(jit_run):
    import dataclasses

    from traceflops.join import join
    run = jit_run
    trace = run.trace
    bare = dataclasses.replace(trace, events=trace.events[trace.events["kind"] != "xla"].reset_index(drop=True),
                               _hlo_modules=trace.hlo_modules)
    joined = join(bare, None, 2)
    call = joined.ops[joined.ops["op_type"].str.startswith("__inference_")].iloc[0]
    assert call["flops_source"] == "xla" and "whole XLA cluster" in call["note"]
    assert call["flops"] * call["occurrences"] / 2 == run.summary["flops_per_step"]
    assert call["macs"] * call["occurrences"] / 2 == run.summary["macs_per_step"]
    assert any("without per-instruction events" in w for w in joined.summary["warnings"])
