"""The Python API: `profile(model)` and `analyze(path)`, each returning a `Result`.

    import traceflops
    result = traceflops.profile("model.keras", batch_size=8)
    result.ops.head()          # pandas DataFrame, columns in traceflops.join.ops_table
    result.summary["coverage"]
    result.write("out/")       # ops.csv, summary.json (+ the logdir when profiled)

This module only orchestrates the stages, one call each:
capture -> trace -> graph -> join (describe, price, tables, summary) -> roofline -> report.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from . import report
from .capture.options import resolve_backend, validate_capture_options
from .graph import ExecutedGraph
from .join import join, primary_device
from .report.outputs import ensure_writable_dir, publish, write_outputs
from .roofline.ceilings import CEILINGS_FILE, apply_ceilings, choose_ceilings, no_ceilings_warning
from .trace import Trace, find_trace_files, load_trace

__all__ = ["Result", "analyze", "profile", "ensure_writable_dir"]
GRAPH_FILE = "traceflops_graph.json"
CAPTURE_FILE = "traceflops_capture.json"


@dataclass
class Result:
    ops: pd.DataFrame
    summary: dict
    trace: Trace
    run_dir: Optional[str] = None
    extra_tables: dict = field(default_factory=dict)
    ceilings: Optional[dict] = None

    def write(self, out_dir) -> list:
        """Write ops.csv, summary.json, extra tables and (with ceilings) roofline.png and
        report.html into `out_dir`; each file appears whole or not at all."""
        return write_outputs(self, out_dir)


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def analyze(path, steps: Optional[int] = None, ceilings: Optional[dict] = None,
            measure_ceilings: bool = False, threshold: float = 0.5) -> Result:
    """Analyse a trace recorded earlier: a logdir, a run directory or one `.xplane.pb`.

    The roofline uses, first found: `ceilings` given here; the ceilings stored
    beside the trace by `profile`; with `measure_ceilings`, this machine's
    measured (cached) CPU ceilings; for GPUs, the trace's device planes.
    Without any, no roofline columns are added and the summary says why.
    """
    files = find_trace_files(path)
    trace = load_trace(files)
    run_dir = files[0].parent
    capture_info = _read_json(run_dir / CAPTURE_FILE) or {}
    graph_record = _read_json(run_dir / GRAPH_FILE)
    graph = ExecutedGraph.from_record(graph_record) if graph_record else None
    wanted = steps if steps is not None else capture_info.get("steps")
    joined = join(trace, graph, wanted, capture_info, str(run_dir))
    result = Result(joined.ops, joined.summary, trace, str(run_dir))
    if capture_info.get("training"):  # a training-step capture: which loss and optimizer ran
        result.summary["training"] = capture_info["training"]
    if joined.kernels is not None:
        result.extra_tables.update(kernels=joined.kernels, memcpy=joined.memcpy)
    by_device = choose_ceilings(set(result.ops["device"]), trace, run_dir, ceilings, measure_ceilings)
    primary = primary_device(result.ops)
    if primary not in by_device:
        result.summary["warnings"].append(no_ceilings_warning(primary))
    else:
        result.ops, result.ceilings = apply_ceilings(result.ops, result.summary, by_device, threshold, primary)
    return result


def profile(model, out=None, device: str = "CPU:0", batch_size: int = 1, steps: int = 10, warmup: int = 3,
            host_tracer_level: int = 3, allow_unsafe: bool = False, inter_op_threads: Optional[int] = 1,
            jit_compile: bool = False, roofline: bool = True, refresh_ceilings: bool = False,
            threshold: float = 0.5, expose_profiler_port: bool = False, backend: Optional[str] = None,
            train: bool = False) -> Result:
    """Run `model` (a Keras model, or a path to .keras/.h5/SavedModel) under the profiler and analyse it.

    The capture runs in a child process in its own network namespace
    (`capture/sandbox.py`): the profiler server it needs is never reachable from
    the network and ends with the capture. `expose_profiler_port` allows a server
    on every interface where no namespace can be made (otherwise: host tracer level 2).

    `backend` `jax` (default: $KERAS_BACKEND, else `tensorflow`) loads the `.keras` file
    on Keras's JAX backend and profiles a jitted step through the XLA path, without
    TensorFlow (`capture/jax_capture.py`); with `train`, a jitted training step.

    With `out`, the outputs and the TensorBoard logdir (`out/logdir`) are written
    there; everything is first written to a staging directory inside `out` and
    moved into place only when the whole run succeeded.
    """
    validate_capture_options(batch_size, steps, warmup, host_tracer_level, device)
    backend = resolve_backend(backend)
    on_jax = backend == "jax"
    if on_jax:
        from .capture.jax_capture import capture_jax_isolated, check_jax_installed, short_device
        check_jax_installed()
    elif train:
        from .errors import UsageError
        raise UsageError("--train: training steps are profiled on the JAX backend here (--backend jax)")
    out_dir = ensure_writable_dir(out) if out is not None else None
    from . import capture
    if isinstance(model, (str, os.PathLike)) and not Path(model).exists():
        from .errors import ModelError
        raise ModelError(f"{model}: no such file or directory")
    ceilings = None
    if roofline:
        from .roofline import peaks
        # Measured once per machine, device and TensorFlow (or JAX) version, then cached.
        name = short_device(device) if on_jax else capture.resolve_device(device).replace("/device:", "")
        ceilings = peaks.get_ceilings(name, refresh=refresh_ceilings, backend="jax" if on_jax else None)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".traceflops-staging-"))
    try:
        run_capture = capture_jax_isolated if on_jax else capture.capture_isolated
        extra = {"train": train} if on_jax else {}
        captured = run_capture(
            model, staging / "logdir", allow_unsafe=allow_unsafe, allow_exposed_server=expose_profiler_port,
            batch_size=batch_size, steps=steps, warmup=warmup, device=device,
            host_tracer_level=host_tracer_level, inter_op_threads=inter_op_threads, jit_compile=jit_compile,
            **extra)
        if ceilings is not None:
            report.atomic_write_text(Path(captured.run_dir) / CEILINGS_FILE,
                                     json.dumps(report.to_jsonable(ceilings), indent=2))
        result = analyze(captured.run_dir, steps=steps, threshold=threshold)
        if out_dir is None:
            return result
        result.write(staging)
        final_run = publish(staging, out_dir, Path(captured.run_dir))
        result.run_dir = str(final_run)
        result.summary["run_dir"] = str(final_run)
        result.summary["trace_files"] = [str(final_run / Path(p).name) for p in result.summary["trace_files"]]
        report.write_summary_json(result.summary, out_dir / report.SUMMARY_JSON)
        return result
    finally:
        if out_dir is not None:
            shutil.rmtree(staging, ignore_errors=True)
