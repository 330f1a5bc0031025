"""`ProfileCallback`: profile batches of your own `model.fit(...)` and price every op.

    import traceflops.keras
    cb = traceflops.keras.ProfileCallback("out/", profile_batch=(2, 4))
    model.fit(x, y, callbacks=[cb])
    cb.result.summary["macs_per_step"]

A drop-in for the TensorBoard callback's `profile_batch`: the same batches
are recorded, with what TensorBoard's trace lacks for a FLOP count — the
executed graph (attributes and static shapes, written beside the trace) and
exact step boundaries — and the outputs of `traceflops profile --out`.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Optional

import keras

from .capture.names import CAPTURE_FILE, GRAPH_FILE, STEP_MARKER
from .errors import TraceflopsError


_session = {"running": False}  # a profile this module started and has not stopped


def _start_profiler(logdir: str) -> None:
    import tensorflow as tf
    if _session["running"]:
        # Ours, left running by a fit interrupted with Ctrl-C (Keras calls no callback then).
        _stop_profiler()
    tf.profiler.experimental.start(logdir)
    _session["running"] = True


def _stop_profiler() -> None:
    import tensorflow as tf
    _session["running"] = False
    tf.profiler.experimental.stop()


def _batch_range(profile_batch) -> tuple:
    """(start, stop), 1-based and inclusive, from an int, a pair or "start,stop" (as TensorBoard)."""
    value = profile_batch
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    try:
        start, stop = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"profile_batch={profile_batch!r}: expected (start, stop), an int or 'start,stop'") from None
    if start < 1 or stop < start:
        raise ValueError(f"profile_batch={profile_batch!r}: need 1 <= start <= stop (batches count from 1)")
    return start, stop


def _step_concrete_functions(train_function) -> list:
    """The tf.functions Keras' train function closes over, as concrete functions (for static shapes)."""
    found, seen, stack = [], set(), [train_function]
    while stack:
        fn = stack.pop()
        if id(fn) in seen:
            continue
        seen.add(id(fn))
        if hasattr(fn, "_list_all_concrete_functions"):
            found.extend(fn._list_all_concrete_functions())
            continue
        for cell in getattr(fn, "__closure__", None) or []:
            try:
                stack.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
        wrapped = getattr(fn, "__wrapped__", None)
        if wrapped is not None:
            stack.append(wrapped)
    return found


def _inlined_static_tensors(concretes: list) -> dict:
    """Static shapes under the names the executed graph uses.

    TensorFlow inlines a called function into its caller and prefixes the inner
    node names with the call node's name: `fit`'s step runs its body as
    `StatefulPartitionedCall/<model>/...`. The traced graphs name the same
    tensors without the prefix, so they are recorded under both names.
    """
    tensors = {}
    stack = [(c.graph, "") for c in concretes]
    seen = set()
    while stack:
        graph, prefix = stack.pop()
        if (id(graph), prefix) in seen:
            continue
        seen.add((id(graph), prefix))
        functions = getattr(graph, "_functions", {})
        for op in graph.get_operations():
            for index, out in enumerate(op.outputs):
                dims = out.shape.as_list() if out.shape.rank is not None else None
                tensors.setdefault(f"{prefix}{op.name}:{index}", {"dtype": out.dtype.name, "dims": dims})
            if op.type in ("StatefulPartitionedCall", "PartitionedCall"):
                inner = functions.get(op.get_attr("f").name)
                if getattr(inner, "graph", None) is not None:
                    stack.append((inner.graph, f"{prefix}{op.name}/"))
        for fn in functions.values():
            if getattr(fn, "graph", None) is not None:
                stack.append((fn.graph, prefix))
    return tensors


def _loss_name(model) -> str:
    from .capture.train import loss_name as name_of
    loss = getattr(model, "loss", None)
    if isinstance(loss, dict):
        return ", ".join(name_of(v) for v in loss.values())
    if isinstance(loss, (list, tuple)):
        return ", ".join(name_of(v) for v in loss)
    return name_of(loss)


class ProfileCallback(keras.callbacks.Callback):
    """Profile training batches `start..stop` of `fit` and write traceflops' outputs to `out_dir`.

    `profile_batch=(start, stop)`: batches counted from 1 across epochs and
    inclusive, as TensorBoard's `profile_batch`. The in-process profiler
    records them (host tracer level 2: op shapes come from the executed graph,
    which is recorded at the train function's first call, with run metadata
    enabled for that one batch only, so other batches run at full speed). Each
    profiled batch is wrapped in a `traceflops_step` marker, so steps are exact.

    After batch `stop`, `out_dir` gets what `traceflops profile --out` writes:
    ops.csv, summary.json, roofline.png and report.html (when the device's
    ceilings are available, measured once per machine and cached) and
    `logdir/` with the trace, `traceflops_graph.json` and
    `traceflops_capture.json`. The analysed `Result` stays on `self.result`.

    Requires `steps_per_execution == 1` (compile's default): with more, one
    call of Keras' train function runs several batches, and batch boundaries
    are not visible to a callback. The callback only observes: training
    computes the same weights with and without it.
    """

    def __init__(self, out_dir, profile_batch=(2, 4), device: Optional[str] = None, roofline: bool = True,
                 threshold: float = 0.5):
        super().__init__()
        self.out_dir = Path(out_dir)
        self.start, self.stop = _batch_range(profile_batch)
        self.device = device
        self.roofline = roofline
        self.threshold = threshold
        self.result = None
        self.error: Optional[str] = None
        self._batch = 0  # global batch counter, 1-based once a batch begins
        self._profiling = False
        self._step_marker = None
        self._run_metadata = None
        self._recorded = False
        self._profiled = 0
        self._wall_times = []

    def on_train_begin(self, logs=None):
        steps = getattr(self.model, "steps_per_execution", 1)
        if steps != 1:
            raise ValueError(f"ProfileCallback needs steps_per_execution == 1 (the model has {steps}): "
                             "batches run together cannot be told apart")
        from .report.outputs import ensure_writable_dir
        ensure_writable_dir(self.out_dir)  # fail now, not after training
        if _step_concrete_functions(self.model.train_function):
            # Already run by an earlier fit: its executed graph can no longer be recorded (TensorFlow
            # reports partition graphs only when a function is instantiated), so trace it afresh.
            self.model.make_train_function(force=True)

    def on_train_batch_begin(self, batch, logs=None):
        import time
        import tensorflow as tf
        from tensorflow.python.eager import context
        self._batch += 1
        if not self._recorded and self._run_metadata is None:
            # The partition graphs are reported only by the call that instantiates the function.
            context.enable_run_metadata()
            self._run_metadata = "pending"
        if self._batch == self.start and not self._profiling:
            _start_profiler(str(self.out_dir / "logdir"))
            self._profiling = True
        if self._profiling:
            self._step_marker = tf.profiler.experimental.Trace(STEP_MARKER, step_num=self._batch, _r=1)
            self._step_marker.__enter__()
            self._batch_start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        import time
        import tensorflow as tf
        from tensorflow.python.eager import context
        if self._step_marker is not None:
            # Wait for the batch's results so the marker ends with its work.
            tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, dict(logs or {}))
            self._step_marker.__exit__(None, None, None)
            self._step_marker = None
            self._wall_times.append((time.perf_counter() - self._batch_start) * 1e6)
            self._profiled += 1
        if self._run_metadata == "pending":
            self._run_metadata = context.export_run_metadata()
            context.disable_run_metadata()
            self._recorded = True
        if self._profiling and self._batch >= self.stop:
            self._finish()

    def on_train_end(self, logs=None):
        if self._profiling:  # training ended before batch `stop`
            self._finish()

    def _finish(self):
        _stop_profiler()
        self._profiling = False
        try:
            self.result = self._analyze()
        except TraceflopsError as exc:
            self.error = str(exc)
            warnings.warn(f"traceflops: {exc}", stacklevel=2)

    def _graph_record(self) -> dict:
        import tensorflow as tf
        from .capture.graph_record import fill_rewritten_shapes, graph_record
        concretes = _step_concrete_functions(self.model.train_function)
        if not isinstance(self._run_metadata, tf.compat.v1.RunMetadata):
            return {"nodes": [], "static_tensors": _inlined_static_tensors(concretes)}

        class _NoGraph:  # graph_record's static shapes are replaced by the inlined ones below
            graph = tf.Graph()
        record = graph_record(self._run_metadata, _NoGraph())
        record["static_tensors"] = _inlined_static_tensors(concretes)
        fill_rewritten_shapes(record)
        return record

    def _capture_info(self, record: dict, device: str) -> dict:
        import tensorflow as tf
        batch = None
        for key, value in record["static_tensors"].items():
            if key.endswith("IteratorGetNext:0") and value.get("dims"):
                batch = value["dims"][0]
                break
        optimizer = getattr(self.model, "optimizer", None)
        return {"model": self.model.name, "device": f"/device:{device}", "batch_size": batch,
                "steps": self._profiled, "profile_batch": [self.start, self.stop], "warmup": self.start - 1,
                "host_tracer_level": 2, "jit_compile": bool(getattr(self.model, "jit_compile", False)),
                "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads() or None,
                "step_wall_times_us": self._wall_times, "tensorflow": tf.__version__, "profiler_server": "",
                "training": {"loss": _loss_name(self.model), "optimizer": type(optimizer).__name__,
                             "defaulted": False}}

    def _analyze(self):
        import tensorflow as tf
        from . import api, report
        from .errors import CaptureError
        from .files import atomic_write_text
        traces = sorted((self.out_dir / "logdir").rglob("*.xplane.pb"), key=lambda p: p.stat().st_mtime)
        if not traces:
            raise CaptureError(f"{self.out_dir / 'logdir'}: the profiler wrote no trace")
        run_dir = traces[-1].parent
        device = self.device or ("GPU:0" if tf.config.list_logical_devices("GPU") else "CPU:0")
        record = self._graph_record()
        atomic_write_text(run_dir / GRAPH_FILE, json.dumps(record))
        atomic_write_text(run_dir / CAPTURE_FILE, json.dumps(self._capture_info(record, device)))
        if self.roofline:
            from .roofline import peaks
            from .roofline.ceilings import CEILINGS_FILE
            try:
                ceilings = peaks.get_ceilings(device)
                atomic_write_text(run_dir / CEILINGS_FILE, json.dumps(report.to_jsonable(ceilings), indent=2))
            except TraceflopsError as exc:  # no ceilings: the outputs without the roofline
                warnings.warn(f"traceflops: no roofline ({exc})", stacklevel=3)
        result = api.analyze(run_dir, threshold=self.threshold)
        result.write(self.out_dir)
        return result
