"""Rebuild, from the model, the executed graph of a trace recorded elsewhere (`analyze --model`).

A trace from `keras.callbacks.TensorBoard(profile_batch=...)` or a user's own
`tf.profiler.experimental.start/stop` is recorded at host tracer level 2: op
events without shapes, and no executed graph beside them. The graph is
rebuilt by running Keras' own functions once on a synthetic batch of the
trace's batch size, with run metadata enabled while they are instantiated:

* training (`train=True`): `model.fit` for one step on a one-batch dataset, so
  the graph is Keras' `multi_step_on_iterator` (IteratorGetNext inside, the
  model's compiled loss and optimizer) exactly as `fit` runs it;
* inference: `model.predict` on one batch (`one_step_on_data_distributed`),
  which also names the ops as a user's `tf.function` calling the model does.

Nothing is profiled. The node names then agree with the trace's up to
TensorFlow's uniquifying suffixes and call scopes; graph/match.py joins them.
It runs in a child process (`rebuild_isolated`): the model's weights and
optimizer state change during the step, and the caller's process needs no
TensorFlow.
"""
from __future__ import annotations

import os
import tempfile
from typing import Optional

from ..errors import ModelError, TraceflopsError

_CALL_SCOPES = ("StatefulPartitionedCall", "PartitionedCall")


def _function_graphs(function) -> list:
    """Concrete functions of the tf.function(s) inside a Keras train/predict function (closures)."""
    found, stack, seen = [], [(function, 0)], set()
    while stack:
        item, depth = stack.pop()
        if id(item) in seen or depth > 5:
            continue
        seen.add(id(item))
        if hasattr(item, "_list_all_concrete_functions"):
            found.extend(item._list_all_concrete_functions())
        for cell in getattr(item, "__closure__", None) or []:
            try:
                stack.append((cell.cell_contents, depth + 1))
            except ValueError:
                continue
        for attr in ("__wrapped__", "_python_function"):
            inner = getattr(item, attr, None)
            if inner is not None:
                stack.append((inner, depth + 1))
    return found


def _strip_calls(name: str) -> str:
    parts = name.split("/")
    while len(parts) > 1 and parts[0].startswith(_CALL_SCOPES):
        parts = parts[1:]
    return "/".join(parts)


def _static_under_node_names(record: dict, static: dict) -> None:
    """FuncGraph shapes are keyed by the traced names (`sequential_1/conv2d_1/Relu:0`); the executed
    nodes carry call scopes (`StatefulPartitionedCall/sequential_1/...`): copy each shape across."""
    keyed = record["static_tensors"]
    for node in record["nodes"]:
        name = node["name"]
        stripped = _strip_calls(name)
        index = 0
        while f"{stripped}:{index}" in static:
            keyed.setdefault(f"{name}:{index}", static[f"{stripped}:{index}"])
            index += 1


def _synthetic_batch(model, batch_size: int, train: bool, seed: int = 0):
    from .model import embedding_limit, input_specs, synthetic_inputs
    specs = input_specs(model, batch_size)
    inputs = synthetic_inputs(specs, embedding_limit(model), seed)
    x = inputs[0] if len(inputs) == 1 else list(inputs)
    if not train:
        return x, None, None
    from . import train as train_stage
    setup = train_stage.prepare_training(model, batch_size)
    targets = train_stage.synthetic_targets(setup, seed + 1)
    return x, targets[0] if len(targets) == 1 else list(targets), setup


def rebuild_graph(model, batch_size: int, train: bool) -> dict:
    """The executed-graph record (capture/graph_record.py format) of Keras' fit or predict step."""
    import tensorflow as tf
    from tensorflow.python.eager import context
    from .graph_record import fill_rewritten_shapes, graph_record, static_tensors
    from .layers import recording_layer_scopes
    x, y, setup = _synthetic_batch(model, batch_size, train)
    data = tf.data.Dataset.from_tensors((x, y) if train else (x,))
    with recording_layer_scopes(model) as layer_scopes:
        context.enable_run_metadata()
        try:
            if train:
                model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
            else:
                model.predict(data, steps=1, verbose=0)
            run_metadata = context.export_run_metadata()
        finally:
            context.disable_run_metadata()
    function = model.train_function if train else model.predict_function
    concretes = _function_graphs(function)
    record = graph_record(run_metadata, concretes[0]) if concretes else graph_record(run_metadata, None)
    static = {}
    for concrete in concretes:
        static.update(static_tensors(concrete))
    _static_under_node_names(record, static)
    fill_rewritten_shapes(record)
    record["layer_scopes"] = layer_scopes
    record["rebuilt"] = {"batch_size": batch_size, "train": train, "function": getattr(function, "__name__", ""),
                         "training": setup.describe() if setup is not None else None}
    return record


def _child_request(request: dict) -> dict:
    from .model import load_model
    try:
        model = load_model(request["model_path"], allow_unsafe=request.get("allow_unsafe", False),
                           compile=bool(request["train"]))
        return {"record": rebuild_graph(model, request["batch_size"], request["train"])}
    except TraceflopsError as exc:
        return {"error": str(exc)}
    except Exception as exc:  # the model cannot run at this batch size, with these inputs...
        message = " ".join(str(exc).split())[:300]
        return {"error": f"rebuilding the model's graph failed: {type(exc).__name__}: {message}"}


def child_main() -> None:
    from .child_process import answer_and_exit, read_request
    request = read_request()
    answer_and_exit(request, _child_request(request))


_BOOTSTRAP = "from traceflops.capture import rebuild; rebuild.child_main()"


def rebuild_isolated(model, batch_size: int, train: bool, allow_unsafe: bool = False,
                     onednn: Optional[bool] = None) -> dict:
    """`rebuild_graph` in a child process; `model` is a path or an in-memory Keras model (saved first).
    `onednn`: whether the trace ran oneDNN kernels (`_Mkl...` types); the child's
    TF_ENABLE_ONEDNN_OPTS follows it so its kernel types are the trace's (None: inherited)."""
    from .child_process import run_child
    scratch = tempfile.mkdtemp(prefix=".traceflops-rebuild-")
    try:
        if isinstance(model, (str, os.PathLike)):
            if not os.path.exists(model):
                raise ModelError(f"{model}: no such file or directory")
            path = str(model)
        else:
            path = os.path.join(scratch, "model.keras")
            try:
                model.save(path)
            except Exception as exc:
                raise ModelError(f"the model could not be saved for the rebuild process: {exc}") from None
        answer_path = os.path.join(scratch, "answer.json")
        request = {"model_path": path, "batch_size": int(batch_size), "train": bool(train),
                   "allow_unsafe": allow_unsafe}
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        if onednn is not None:
            env["TF_ENABLE_ONEDNN_OPTS"] = "1" if onednn else "0"
        answer, status = run_child(_BOOTSTRAP, request, answer_path, env)
        if answer is None:
            raise ModelError(f"rebuilding the model's graph: the process ended without an answer "
                             f"(exit status {status})")
        if "error" in answer:
            raise ModelError(answer["error"])
        return answer["record"]
    finally:
        import shutil
        shutil.rmtree(scratch, ignore_errors=True)
