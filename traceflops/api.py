"""The Python API: `profile(model)` and `analyze(path)`, each returning a `Result`.

    import traceflops
    result = traceflops.profile("model.keras", batch_size=8)
    result.ops.head()          # pandas DataFrame, columns in traceflops.join
    result.summary["coverage"]
    result.write("out/")       # ops.csv, summary.json (+ the logdir when profiled)

The pipeline, one module per stage:
capture -> trace -> graph -> costs -> join -> roofline -> report.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from . import report
from .errors import TraceError, UsageError
from .graph import ExecutedGraph
from .join import join_ops
from .trace import Trace, find_trace_files, load_trace


CEILINGS_FILE = "traceflops_ceilings.json"
ROOFLINE_PNG = "roofline.png"
REPORT_HTML = "report.html"


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
        out = ensure_writable_dir(out_dir)
        written = []
        if self.ceilings is not None:
            from .report import html as html_report, plots
            png = out / ROOFLINE_PNG
            plots.roofline_png(self.ops, self.ceilings, png, title=self.summary.get("model") or "")
            html = out / REPORT_HTML
            html_report.write_report(self.ops, self.summary, self.ceilings, png, html)
            written += [png, html]
        path = out / report.OPS_CSV
        report.write_ops_csv(self.ops, path)
        written.append(path)
        for name, table in self.extra_tables.items():
            path = out / f"{name}.csv"
            report.write_ops_csv(table, path)
            written.append(path)
        path = out / report.SUMMARY_JSON
        report.write_summary_json(self.summary, path)
        written.append(path)
        return written


def ensure_writable_dir(path) -> Path:
    """Create `path` if needed and prove we can write there, before any work is done."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=out, prefix=".traceflops-probe-")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{out}: cannot write output here ({exc.strerror or exc})") from None
    return out


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
    measured (cached) CPU ceilings. Without any, no roofline columns are added
    and the summary says why.
    """
    files = find_trace_files(path)
    trace = load_trace(files)
    run_dir = files[0].parent
    capture_info = _read_json(run_dir / "traceflops_capture.json") or {}
    graph_record = _read_json(run_dir / "traceflops_graph.json")
    graph = ExecutedGraph.from_record(graph_record) if graph_record else None
    wanted = steps if steps is not None else capture_info.get("steps")
    result = _analyze_trace(trace, graph, wanted, capture_info, str(run_dir))
    if capture_info.get("training"):  # a training-step capture: which loss and optimizer ran
        result.summary["training"] = capture_info["training"]
    if ceilings is None:
        ceilings = _read_json(run_dir / CEILINGS_FILE)
    devices = set(result.ops["device"])
    if ceilings is None and measure_ceilings and any(d.startswith("CPU") for d in devices):
        from .roofline import peaks
        ceilings = peaks.get_ceilings("CPU:0")
    by_device = {}
    if ceilings is not None:
        by_device[ceilings.get("device") or "CPU:0"] = ceilings
    if any(d.startswith("GPU") for d in devices):
        from .roofline import gpu_specs
        try:
            found = gpu_specs.trace_gpu_ceilings(trace)
        except (TypeError, ValueError):  # plane stats of the wrong type: no theoretical ceilings
            found = {}
        # Only usable ceilings (a float32 peak and a bandwidth); else the "no ceilings" warning below.
        by_device.update({device: c for device, c in found.items()
                          if (c.get("peak_gflops_per_s") or {}).get("float32") and c.get("bandwidth_gbytes_per_s")})
    primary = _primary_device(result.ops)
    if primary not in by_device:
        result.summary["warnings"].append(
            f"no ceilings for {primary}: no roofline (for a CPU trace pass measure_ceilings / "
            "--measure-ceilings to use this machine's measured ceilings)")
    else:
        apply_ceilings(result, by_device, threshold, primary)
    return result


def _primary_device(ops: pd.DataFrame) -> str:
    """The device with the most op time: the one the model-level figures describe."""
    if ops.empty:
        return "CPU:0"
    return ops.groupby("device")["total_time_us"].sum().idxmax()


def apply_ceilings(result: Result, ceilings_by_device: dict, threshold: float = 0.5,
                   primary: Optional[str] = None) -> Result:
    """Add the roofline columns to `result.ops` (each device against its own ceilings) and the
    model-level figures of the primary device to the summary."""
    from . import roofline
    if "peak_gflops_per_s" in ceilings_by_device:  # a single device's ceilings
        ceilings_by_device = {ceilings_by_device.get("device") or "CPU:0": ceilings_by_device}
    primary = primary or _primary_device(result.ops)
    parts = []
    for device, part in result.ops.groupby("device", sort=False):
        if device in ceilings_by_device:
            part = roofline.apply_roofline(part, ceilings_by_device[device], threshold=threshold)
        parts.append(part)
    result.ops = pd.concat(parts).sort_values("total_time_us", ascending=False, kind="stable").reset_index(drop=True)
    result.summary["ceilings"] = {
        device: {"source": c.get("source"), "peak_gflops_per_s": c.get("peak_gflops_per_s"),
                 "tensor_core_gflops_per_s": c.get("tensor_core_gflops_per_s"),
                 "bandwidth_gbytes_per_s": c.get("bandwidth_gbytes_per_s")}
        for device, c in ceilings_by_device.items()}
    ceilings = ceilings_by_device[primary]
    figures = roofline.model_figures(result.ops[result.ops["device"] == primary], result.summary, ceilings)
    result.ceilings = ceilings
    result.summary["roofline"] = {
        "device": ceilings.get("device"), "source": ceilings.get("source"),
        "peak_gflops_per_s": ceilings.get("peak_gflops_per_s"),
        "bandwidth_gbytes_per_s": ceilings.get("bandwidth_gbytes_per_s"),
        "theoretical": ceilings.get("theoretical"), "threshold": threshold, **figures}
    result.summary["model_flops_utilization"] = figures["model_flops_utilization"]
    result.summary["memory_bound_time_share"] = figures["memory_bound_time_share"]
    for op in figures["above_ceiling_ops"]:
        if op["kind"] == "compute":  # faster than the machine's peak: the count or the time is wrong
            result.summary["warnings"].append(
                f"COUNTING ERROR? {op['op_name']} ({op['op_type']}) measured {op['gflops_per_s']:.4g} GFLOP/s, "
                f"above the {op['dtype']} compute ceiling")
    return result


def _device_work(trace: Trace, chosen: list):
    """XLA instruction costs, and GPU kernels / memcpys inside the chosen steps (when steps exist)."""
    from .join import kernels as kernel_stage
    from .costs import hlo as xla
    events = trace.events
    has_xla = (events["kind"] == "xla").any() or events["hlo_op"].notna().any()
    hlo = xla.hlo_costs(trace.hlo_modules) if has_xla else None
    if not events["kind"].isin(("kernel", "memcpy")).any():
        return hlo, None, None
    device_events = events["kind"].isin(("kernel", "memcpy"))
    if chosen and (events.loc[device_events, "step"] >= 0).any():
        keep = ~device_events | events["step"].isin(chosen)
        trace = dataclasses.replace(trace, events=events[keep])
    kernel_rows, memcpy_rows = kernel_stage.kernel_table(trace, hlo)
    return hlo, kernel_rows, memcpy_rows


def _analyze_trace(trace: Trace, graph, steps, capture_info: dict, run_dir: str) -> Result:
    from .join import kernels as kernel_stage
    from .join import select_steps
    kinds = trace.events["kind"]
    if not kinds.isin(("op", "xla", "kernel")).any():
        raise TraceError(f"{', '.join(trace.paths)}: the trace holds no TensorFlow op, XLA or kernel events")
    hlo, kernel_rows, memcpy_rows = _device_work(trace, select_steps(trace.events, steps))
    device_rows, launched = None, None
    if kernel_rows is not None and len(kernel_rows):
        device_rows = kernel_stage.device_op_rows(kernel_rows)
        # A GPU op's host event only times its launch; its work is its kernels' rows.
        launched = set(kernel_rows["op_name"])
    ops, summary = join_ops(trace, graph, steps, hlo=hlo, device_rows=device_rows, skip_ops=launched)
    warnings = list(trace.errors) + list(trace.warnings)
    if steps and summary["steps"] < steps:
        warnings.append(f"{summary['steps']} complete steps were recorded, fewer than the {steps} asked for")
    if "listened on all interfaces" in (capture_info.get("profiler_server") or ""):
        warnings.append(capture_info["profiler_server"])
    if graph is None:
        warnings.append("no executed graph beside the trace: attributes (strides, transposes, fused ops, "
                        "einsum equations) are unknown, and counts that need them are unknown")
    if summary["steps"] == 0:
        warnings.append("no step markers in the trace: totals cover the whole trace")
    summary = {
        "model": capture_info.get("model") or Path(trace.paths[0]).name,
        "device": capture_info.get("device", "").replace("/device:", "") or _primary_device(ops),
        "batch_size": capture_info.get("batch_size"),
        **summary,
        "host_tracer_level": capture_info.get("host_tracer_level"),
        "inter_op_threads": capture_info.get("inter_op_threads"),
        "tensorflow": capture_info.get("tensorflow"),
        "trace_files": list(trace.paths),
        "run_dir": run_dir,
        "warnings": warnings,
    }
    result = Result(ops, summary, trace, run_dir)
    if kernel_rows is not None:
        result.extra_tables["kernels"] = kernel_rows
        result.extra_tables["memcpy"] = memcpy_rows
        result.summary["kernel_coverage"] = kernel_stage.kernel_coverage(kernel_rows) if len(kernel_rows) else None
    return result


def profile(model, out=None, device: str = "CPU:0", batch_size: int = 1, steps: int = 10, warmup: int = 3,
            host_tracer_level: int = 3, allow_unsafe: bool = False, inter_op_threads: Optional[int] = 1,
            jit_compile: bool = False, roofline: bool = True, refresh_ceilings: bool = False,
            threshold: float = 0.5, train: bool = False) -> Result:
    """Run `model` (a Keras model, or a path to .keras/.h5/SavedModel) under the profiler and analyse it.

    With `train`, each profiled step is a full training step with the model's
    compiled loss and optimizer (stated defaults when it has none:
    `summary["training"]`); the model's weights are restored afterwards.

    With `out`, the outputs and the TensorBoard logdir (`out/logdir`) are written
    there; everything is first written to a staging directory inside `out` and
    moved into place only when the whole run succeeded.
    """
    from . import capture
    if batch_size is None or batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1 (got {batch_size})")
    out_dir = ensure_writable_dir(out) if out is not None else None
    # Threading must be fixed before TensorFlow's runtime starts (before loading a model).
    capture.set_threading(inter_op_threads)
    if isinstance(model, (str, os.PathLike)):
        model = capture.load_model(model, allow_unsafe=allow_unsafe, compile=train)
    ceilings = None
    if roofline:
        from .roofline import peaks
        # Measured once per machine, device and TensorFlow version, then cached.
        ceilings = peaks.get_ceilings(capture.resolve_device(device).replace("/device:", ""),
                                      refresh=refresh_ceilings)
    staging = Path(tempfile.mkdtemp(dir=out_dir, prefix=".traceflops-staging-"))
    try:
        result_capture = capture.capture(model, staging / "logdir", batch_size=batch_size, steps=steps,
                                         warmup=warmup, device=device, host_tracer_level=host_tracer_level,
                                         inter_op_threads=inter_op_threads, jit_compile=jit_compile,
                                         train=train)
        if ceilings is not None:
            _write_ceilings(Path(result_capture.run_dir) / CEILINGS_FILE, ceilings)
        result = analyze(result_capture.run_dir, steps=steps, threshold=threshold)
        if out_dir is None:
            return result
        result.write(staging)
        final_run = _publish(staging, out_dir, Path(result_capture.run_dir))
        result.run_dir = str(final_run)
        result.summary["run_dir"] = str(final_run)
        result.summary["trace_files"] = [str(final_run / Path(p).name) for p in result.summary["trace_files"]]
        report.write_summary_json(result.summary, out_dir / report.SUMMARY_JSON)
        return result
    finally:
        if out_dir is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _write_ceilings(path: Path, ceilings: dict) -> None:
    report.atomic_write_text(path, json.dumps(report.to_jsonable(ceilings), indent=2))


def _publish(staging: Path, out_dir: Path, run_dir: Path) -> Path:
    """Move finished outputs from the staging directory into `out_dir`."""
    for item in staging.iterdir():
        if item.is_file():
            os.replace(item, out_dir / item.name)
    relative = run_dir.relative_to(staging)
    target = out_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        shutil.rmtree(target)
    os.replace(run_dir, target)
    return target
