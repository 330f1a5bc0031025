"""The trace-source seam: a new format plugs in by registering a source, and the naming rules sources carry."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import traceflops
from traceflops.errors import TraceError
from traceflops.trace import EVENT_COLUMNS, Trace, register_source
from traceflops.trace import source as trace_source
from traceflops.trace.events import CATEGORICAL_COLUMNS, XSPACE_ONLY_COLUMNS
from traceflops.trace.naming import JAX_NAMING, TF_NAMING, marks_gradients


class ToySource:
    """A made-up JSON format: one object per event, with the source-neutral columns only."""
    name = "toy"
    suffixes = (".toy.json",)
    namings = (TF_NAMING,)

    def load(self, files, parallel=None):
        return self._trace([str(f) for f in files], [json.loads(open(f).read()) for f in files])

    def read_file(self, path, data=None):
        return self._trace([str(path)], [json.loads(data if data is not None else open(path).read())])

    def hlo_modules(self, path, data):
        return []

    @staticmethod
    def _trace(paths, contents):
        rows = [{"host": "toyhost", "plane": "/host:CPU", "line": "main", **event} for events in contents
                for event in events]
        frame = pd.DataFrame(rows)
        for column in EVENT_COLUMNS:
            if column not in frame:
                frame[column] = np.nan if column not in CATEGORICAL_COLUMNS else None
        frame["self_ps"] = frame["duration_ps"]
        for column in CATEGORICAL_COLUMNS:
            values = [v if isinstance(v, str) else None for v in frame[column]]
            categories = sorted({"", *(v for v in values if v is not None)})
            frame[column] = pd.Categorical(values, categories=categories)
        frame = frame[EVENT_COLUMNS]
        return Trace(events=frame, planes=[], paths=paths, hostnames=["toyhost"])


@pytest.fixture
def toy_source():
    source = register_source(ToySource())
    yield source
    trace_source.unregister_source(source.name)


def write_toy(path, steps=2):
    events = []
    for step in range(steps):
        start = step * 1_000_000
        events.append({"kind": "step", "name": "step", "start_ps": start, "duration_ps": 900_000,
                       "step": step, "step_num": float(step)})
        events.append({"kind": "op", "name": "model/dense/MatMul:MatMul", "op_name": "model/dense/MatMul",
                       "op_type": "MatMul", "start_ps": start + 1000, "duration_ps": 500_000, "step": step,
                       "shape": "(float[4,8];float[8,16])"})
    path.write_text(json.dumps(events))
    return path


def test_a_registered_source_is_listed_loaded_and_priced_without_touching_the_join(tmp_path, toy_source):
    run = tmp_path / "logdir" / "run1"
    run.mkdir(parents=True)
    write_toy(run / "host.toy.json")
    assert trace_source.source_of(run / "host.toy.json") is toy_source
    assert trace_source.find_files(tmp_path / "logdir") == [str(run / "host.toy.json")]
    result = traceflops.analyze(tmp_path / "logdir")
    matmul = result.ops[result.ops["op_type"] == "MatMul"]
    assert len(matmul) == 1
    assert int(matmul["flops"].iloc[0]) == 2 * 4 * 8 * 16
    assert result.summary["steps"] == 2


def test_the_xspace_source_is_the_default_and_files_of_two_formats_are_refused(tmp_path, toy_source):
    assert trace_source.source_of("a/b/host.xplane.pb") is trace_source.XSPACE
    assert trace_source.source_of("notes.txt") is trace_source.XSPACE  # a file no source claims
    assert set(trace_source.trace_suffixes()) >= {".xplane.pb", ".toy.json"}
    with pytest.raises(TraceError, match="several trace formats"):
        trace_source.load_files([tmp_path / "a.xplane.pb", write_toy(tmp_path / "b.toy.json")])
    assert trace_source.namings_of(["x.xplane.pb"]) == (TF_NAMING, JAX_NAMING)


def test_a_source_must_have_the_whole_interface():
    class Half:
        name = "half"
        suffixes = (".half",)

    with pytest.raises(TypeError, match="not a trace source"):
        register_source(Half())
    assert all(source.name != "half" for source in trace_source.registered_sources())


def test_xspace_only_columns_are_part_of_the_events_table():
    assert set(XSPACE_ONLY_COLUMNS) <= set(EVENT_COLUMNS)
    assert EVENT_COLUMNS[:4] == ["host", "plane", "line", "kind"]


def test_naming_rules_of_tensorflow_and_jax():
    assert TF_NAMING.marks_gradients("StatefulPartitionedCall/gradient_tape/model/dense/MatMul")
    assert not TF_NAMING.marks_gradients("jit(step)/transpose(jvp(dense))/dot_general")
    assert JAX_NAMING.marks_gradients("jit(step)/transpose(jvp(dense))/dot_general")
    assert marks_gradients("jit(step)/transpose(jvp(dense))/dot_general")
    assert not marks_gradients("model/dense/MatMul")
    assert TF_NAMING.scope_parts("StatefulPartitionedCall/PartitionedCall/model/x") == ["model", "x"]
    assert TF_NAMING.model_parts(["StatefulPartitionedCall_3", "gradient_tape", "net", "conv"]) == ["net", "conv"]
    assert TF_NAMING.is_optimizer_scope("adam_1") and not TF_NAMING.is_optimizer_scope("adamant")
    assert TF_NAMING.is_loss_scope("compile_loss_2") and TF_NAMING.is_loss_scope("sparse_categorical_crossentropy")
    assert TF_NAMING.node_of("model/dense/MatMul:0") == "model/dense/MatMul"
    assert JAX_NAMING.owns("pjit(step)/dot") and not JAX_NAMING.owns("model/jit(x)")
    assert JAX_NAMING.without_frames(["jit(step)", "jvp(dense)", "dense", "dot"]) == ["dense", "dot"]
