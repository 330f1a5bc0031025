"""The Python API: `profile(model)` and `analyze(path)`, each returning a `Result`.

    import traceflops
    result = traceflops.profile("model.keras", batch_size=8)
    result.ops.head()          # pandas DataFrame, columns in traceflops.join.ops_table
    result.kernels             # GPU traces: one row per kernel (None on a CPU run); .memcpy, .hosts
    result.summary.coverage    # or result.summary["coverage"]: a Summary is also the summary.json dict
    result.write("out/")       # ops.csv, summary.json (+ the logdir when profiled)

Both take their options by keyword only, past the model or the path (`Result` and `Summary`: result.py).

This module only orchestrates the stages, one call each:
capture -> trace -> graph -> join (describe, price, tables, summary) -> roofline -> report.
The analysis stages (pandas and the rest: most of a second) are imported where they are used, so
that `profile` can start the capture first and import them while its child process runs.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Optional

from .capture.names import CAPTURE_FILE, GRAPH_FILE
from .capture.options import resolve_backend
from .capture.request import CaptureRequest
from .result import Result, Summary

__all__ = ["Result", "Summary", "analyze", "profile"]


def _trained_in(trace) -> bool:
    from .trace import text_mask
    from .trace.naming import TF_NAMING  # the model rebuild is of TensorFlow graphs
    names = trace.events.loc[trace.events["kind"].isin(("op", "kernel")), "op_name"]
    return bool(text_mask(names, TF_NAMING.marks_gradients).any())


_CONTRACTIONS = ("Conv", "MatMul", "BatchMatMul", "Einsum", "FusedConv", "FusedMatMul")


def _ran_onednn(work) -> Optional[bool]:
    """Whether the trace's host contractions ran as oneDNN (`_Mkl...`) kernels; None when it has none."""
    types = work.loc[work["kind"] == "op", "op_type"].astype(str)
    plain = types.str.lstrip("_").str.replace("MklNative", "").str.replace("Mkl", "")
    contractions = types[plain.str.startswith(_CONTRACTIONS)]
    if contractions.empty:
        return None
    return bool(contractions.str.startswith("_Mkl").any())


def _rebuild_and_match(trace_events, model, batch_size: int, train: bool, allow_unsafe: bool):
    """(renamed graph, rebuild record, match counts) for the graph rebuilt at `batch_size`."""
    from .capture.rebuild import rebuild_isolated
    from .errors import ModelError
    from .graph import ExecutedGraph
    from .graph.match import join_rebuilt
    events = list(zip(trace_events["op_name"].astype(str), trace_events["op_type"].astype(str)))
    record = rebuild_isolated(model, batch_size, train, allow_unsafe=allow_unsafe,
                              onednn=_ran_onednn(trace_events))
    renamed, counts = join_rebuilt(record, events)
    matched = counts["by_name"] + counts["by_structure"]
    if events and matched < 0.5 * len(events):
        raise ModelError(f"the model does not match the trace: only {matched} of {len(events)} op events found "
                         f"a node of the same type in the graph rebuilt from it ({'training' if train else 'inference'}"
                         f", batch size {batch_size})")
    return ExecutedGraph.from_record(renamed), record, counts


def _graph_from_model(trace, model, batch_size: Optional[int], train: Optional[bool], allow_unsafe: bool):
    """The executed graph rebuilt from `model` (capture/rebuild.py), renamed onto the trace's op names
    (graph/match.py); (graph, capture info, match counts). The batch size is checked against (or, when
    not given, read from) the trace's recorded shapes where it has any (graph/batch.py)."""
    from .errors import UsageError
    from .graph.batch import batch_seen
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise UsageError(f"--batch-size {batch_size!r}: expected a positive integer")
    work = trace.events[trace.events["kind"].isin(("op", "kernel")) & trace.events["op_type"].notna()]
    has_shapes = bool(work["shape"].notna().any())
    if batch_size is None and not has_shapes:
        raise UsageError("--model needs --batch-size: this trace (host tracer level 2) holds no tensor shapes to "
                         "read the batch size from; give the batch size of the profiled steps")
    train = _trained_in(trace) if train is None else bool(train)
    probe = batch_size or 1
    graph, record, counts = _rebuild_and_match(work, model, probe, train, allow_unsafe)
    seen = batch_seen(work, graph, probe) if has_shapes else None
    if batch_size is not None and seen is not None and seen != batch_size:
        raise UsageError(f"--batch-size {batch_size} does not match the trace: its recorded shapes show batch "
                         f"size {seen}")
    if batch_size is None:
        if seen is None:
            raise UsageError("--model needs --batch-size: the trace's recorded shapes do not tell the batch size")
        batch_size = seen
        if seen != probe:
            graph, record, counts = _rebuild_and_match(work, model, seen, train, allow_unsafe)
    info = {"model": getattr(model, "name", None) or Path(str(model)).name, "batch_size": batch_size,
            "host_tracer_level": 3 if has_shapes else 2}
    training = (record.get("rebuilt") or {}).get("training")
    if training:
        info["training"] = training
    return graph, info, counts


def _match_warning(counts: dict) -> Optional[str]:
    if not counts["unmatched"]:
        return None
    kinds = ", ".join(f"{k} x{v}" for k, v in list(counts["unmatched_op_types"].items())[:8])
    return (f"{counts['unmatched']} op events found no node of their type in the graph rebuilt from the model "
            f"(their counts are unknown): {kinds}")


def analyze(path, *, steps: Optional[int] = None, threshold: float = 0.5,
            ceilings: Optional[dict] = None, measure_ceilings: bool = False,
            model=None, batch_size: Optional[int] = None, train: Optional[bool] = None, allow_unsafe: bool = False,
            scheduler: Optional[str] = None, storage_options: Optional[dict] = None) -> Result:
    """Analyse a trace recorded earlier: a logdir, a run directory or one `.xplane.pb` (or a list of
    them; fsspec URLs such as `s3://bucket/logdir` too). Options by keyword only, in groups:

    `steps` analyses that many steps (default: as many as `profile` recorded, else all).

    The roofline: its ceilings are, first found, `ceilings` given here; the ceilings stored beside the
    trace by `profile`; with `measure_ceilings`, this machine's measured (cached) CPU ceilings; for
    GPUs, the trace's device planes. Without any, no roofline columns are added and the summary says
    why. An op below `threshold` of its attainable FLOP/s (and with a share of the time) is `underutilized`.

    The model rebuild: with `model` (a path or a Keras model), a trace recorded without shapes or
    executed graph (TensorBoard's `profile_batch`, `tf.profiler.experimental.start`) is priced from
    the graph rebuilt from the model at `batch_size` (read off the trace's shapes where it has any),
    for a training step when `train` (default: when the trace holds gradient ops); `allow_unsafe`
    loads a model Keras' safe mode refuses. `summary["model_match"]` says how its op events were
    matched. `batch_size` and `train` go with `model` only.

    Where the files are read: several files are parsed and priced one at a time in worker processes,
    or with `scheduler` (a Dask scheduler's address) as tasks on that cluster (`scale.py`), the tables
    combined here; `storage_options` are fsspec's, for URLs (on the cluster's workers too).
    """
    if model is None and (batch_size is not None or train):
        from .errors import UsageError
        raise UsageError("--batch-size and --train of analyze go with --model")
    from .graph import ExecutedGraph
    from .join import join
    from .trace import locate, source as trace_source
    files = trace_source.find_files(path, storage_options)
    run_dir = locate.run_dir_of(files)
    capture_info = locate.read_side_json(run_dir, CAPTURE_FILE, storage_options) or {}
    graph_record = locate.read_side_json(run_dir, GRAPH_FILE, storage_options)
    graph = ExecutedGraph.from_record(graph_record) if graph_record else None
    single = scheduler is None and len(files) == 1 and not locate.is_url(files[0])
    if model is not None and not single:
        from .errors import UsageError
        raise UsageError("--model prices one local trace file at a time (not several hosts or a --scheduler run)")
    trace = trace_source.load_files([Path(files[0])]) if single else None
    counts = None
    if model is not None:
        graph, rebuilt_info, counts = _graph_from_model(trace, model, batch_size, train, allow_unsafe)
        graph_record = None
        capture_info = {**rebuilt_info, **capture_info}
    wanted = steps if steps is not None else capture_info.get("steps")
    if single:
        joined = join(trace, graph, wanted, capture_info, run_dir)
    else:
        joined, trace = _join_files(files, graph, graph_record, wanted, capture_info, run_dir, scheduler,
                                    storage_options)
    if counts is not None:
        joined.summary["model_match"] = counts
        warning = _match_warning(counts)
        if warning:
            joined.summary["warnings"].append(warning)
    result = Result(joined.ops, Summary(joined.summary), trace, run_dir, kernels=joined.kernels,
                    memcpy=joined.memcpy)
    _apply_roofline(result, joined.hosts, None if locate.is_url(run_dir) else run_dir, ceilings, measure_ceilings,
                    threshold)
    return result


def _apply_roofline(result: Result, hosts, local_run: Optional[str], ceilings: Optional[dict],
                    measure_ceilings: bool, threshold: float) -> None:
    """The roofline's columns and summary figures, where ceilings are found for the primary device (a
    warning in the summary where not), and the hosts table with its MFU against that ceiling."""
    from .join import apply_peak, primary_device
    from .roofline.ceilings import apply_ceilings, choose_ceilings, no_ceilings_warning
    by_device = choose_ceilings(set(result.ops["device"]), result.trace, local_run or ".", ceilings,
                                measure_ceilings)
    primary = primary_device(result.ops)
    if primary not in by_device:
        result.summary.warnings.append(no_ceilings_warning(primary))
    else:
        result.ops, result.ceilings = apply_ceilings(result.ops, result.summary, by_device, threshold, primary)
    if hosts is not None:
        peak = ((result.ceilings or {}).get("peak_gflops_per_s") or {}).get("float32")
        result.hosts = apply_peak(hosts, peak)


def _join_files(files, graph, graph_record, wanted, capture_info, run_dir, scheduler, storage_options):
    """Several files (or a Dask run): each parsed and priced apart, the priced tables combined here."""
    from . import scale
    from .join import join_records
    parts = (scale.price_dask(files, graph_record, wanted, scheduler, storage_options) if scheduler
             else scale.price_local(files, graph_record, wanted, storage_options=storage_options))
    records, step_rows, num_steps, trace, device_work = scale.combine_priced(parts)
    joined = join_records(records, step_rows, num_steps, trace, graph, wanted, capture_info, run_dir, device_work)
    joined.summary["events"] = sum(p.events for p in parts)
    return joined, trace


def profile(model, *, out=None, batch_size: int = 1, steps: int = 10, warmup: int = 3, train: bool = False,
            input_shape=None, device: str = "CPU:0", backend: Optional[str] = None, host_tracer_level: int = 3,
            inter_op_threads: Optional[int] = 1, jit_compile: bool = False, allow_unsafe: bool = False,
            expose_profiler_port: bool = False, roofline: bool = True, refresh_ceilings: bool = False,
            threshold: float = 0.5) -> Result:
    """Run `model` (a Keras model, or a path to .keras/.h5/SavedModel) under the profiler and analyse it.
    Options by keyword only, in groups:

    The steps: `steps` profiled steps of `batch_size` after `warmup` unprofiled ones; with `train`, full
    training steps with the model's compiled loss and optimizer (stated defaults when it has none:
    `summary["training"]`), the weights restored afterwards. `input_shape`: the dimensions after the
    batch where the model leaves them unknown (a tuple, a list of tuples, or a dict by input name).

    The capture: on `device`; `backend` `jax` (default: $KERAS_BACKEND, else `tensorflow`) profiles a
    jitted step on Keras' JAX backend, without TensorFlow (`capture/jax_capture.py`); TensorFlow's
    `host_tracer_level`, `inter_op_threads` and `jit_compile`; `allow_unsafe` loads models Keras' safe
    mode refuses. The capture runs in a child process in its own network namespace (`capture/sandbox.py`);
    `expose_profiler_port` allows a profiler server on every interface where no namespace can be made.

    The roofline (`roofline=False`: none): the device's ceilings, measured once and cached
    (`refresh_ceilings`: again); `threshold` as in `analyze`.

    With `out`, the outputs and the TensorBoard logdir (`out/logdir`) are written there, through a staging
    directory inside `out`, moved into place only when the whole run succeeded.
    """
    request = CaptureRequest(batch_size=batch_size, steps=steps, warmup=warmup, device=device,
                             host_tracer_level=host_tracer_level, inter_op_threads=inter_op_threads,
                             jit_compile=jit_compile, train=train, input_shape=input_shape, allow_unsafe=allow_unsafe,
                             allow_exposed_server=expose_profiler_port).validate()
    on_jax = resolve_backend(backend) == "jax"
    if on_jax:
        from .capture.jax_capture import check_jax_installed
        check_jax_installed()
    else:
        from .capture.tf import require_tensorflow
        require_tensorflow()
    out_dir = _output_dir(out)
    if isinstance(model, (str, os.PathLike)) and not Path(model).exists():
        from .errors import ModelError
        raise ModelError(f"{model}: no such file or directory")
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".traceflops-staging-"))
    try:
        capture = _capture_stage(on_jax, input_shape)
        loader = threading.Thread(target=_import_analysis, name="traceflops-import", daemon=True)
        loader.start()  # while the capture's child imports TensorFlow, on one core of the machine's
        try:
            captured = capture(model, staging / "logdir", request)
        finally:
            loader.join()
        from . import report
        from .roofline.ceilings import CEILINGS_FILE
        if roofline:
            from .roofline import peaks
            # Measured once per machine, device and TensorFlow (or JAX) version, then cached. Looked up after
            # the capture, which resolved the device: a cached lookup needs no TensorFlow in this process.
            from .capture.child_process import wait_exiting
            ceilings = peaks.get_ceilings(captured.device.replace("/device:", ""), refresh=refresh_ceilings,
                                          backend="jax" if on_jax else None, before_measuring=wait_exiting)
            report.atomic_write_text(Path(captured.run_dir) / CEILINGS_FILE,
                                     json.dumps(report.to_jsonable(ceilings), indent=2))
        result = analyze(captured.run_dir, steps=steps, threshold=threshold)
        if out_dir is None:
            return result
        _publish(result, staging, out_dir, Path(captured.run_dir))
        return result
    finally:
        if out_dir is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _output_dir(out) -> Optional[Path]:
    """`out`, made and proven writable before any work is done (report/outputs.py); None without one."""
    if out is None:
        return None
    from .report.outputs import ensure_writable_dir
    return ensure_writable_dir(out)


def _publish(result: Result, staging: Path, out_dir: Path, run_dir: Path) -> None:
    """Write the result's files into `staging`, move them and the run's logdir into `out_dir`, and point
    the result and summary.json at the run's new place."""
    from . import report
    from .report.outputs import publish
    result.write(staging)
    final_run = publish(staging, out_dir, run_dir)
    result.run_dir = str(final_run)
    result.summary.run_dir = str(final_run)
    result.summary.trace_files = [str(final_run / Path(p).name) for p in result.summary.trace_files]
    report.write_summary_json(result.summary, out_dir / report.SUMMARY_JSON)


def _capture_stage(on_jax: bool, input_shape):
    """The capture stage, sandboxed, as `capture(model, logdir, request)`: TensorFlow (capture/sandbox.py)
    or Keras on JAX (capture/jax_capture.py). Its modules are imported here, before `_import_analysis`
    starts importing in a thread of its own (the two never import at the same time)."""
    if on_jax:
        from .capture.jax_capture import capture_jax_isolated
        if input_shape is not None:
            from .errors import UsageError
            raise UsageError("--input-shape is not supported with --backend jax yet: save the model with fixed "
                             "input shapes")
        return capture_jax_isolated
    from .capture import sandbox
    from .capture import run  # noqa: F401  (what capture_isolated imports when it runs)
    return sandbox.capture_isolated


def _import_analysis() -> None:
    """Import the analysis stages (pandas and the rest), in a thread while the capture runs; what fails
    here fails again, with its own message, where the stage is used."""
    try:
        from . import join, report, scale  # noqa: F401
        from .report import outputs  # noqa: F401
        from .roofline import ceilings, peaks  # noqa: F401
        from .trace import load  # noqa: F401
    except Exception:  # noqa: BLE001
        pass
