"""Roofline stage: which ceilings each device of an analysis is measured against, and what follows.

Ceilings, first found: those given by the caller; those stored beside the
trace by `profile` (`traceflops_ceilings.json`); with `measure`, this machine's
measured (cached) CPU ceilings; for GPU devices, the theoretical figures the
trace's device planes give (SM count, clock, compute capability, bandwidth).
`apply_ceilings` adds the roofline columns per device and the model-level
figures of the primary device to the summary, with the warnings they raise.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import pandas as pd

from . import apply_roofline, model_figures
from .trust import COUNTING_ERROR_MARGIN, check_against_ops, mfu_note

CEILINGS_FILE = "traceflops_ceilings.json"


def _read_json(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _gpu_ceilings(trace) -> dict:
    """Usable theoretical ceilings (a float32 peak and a bandwidth) of the trace's GPU and TPU planes."""
    from .gpu_specs import trace_gpu_ceilings, trace_tpu_ceilings
    try:
        found = {**trace_gpu_ceilings(trace), **trace_tpu_ceilings(trace)}
    except (TypeError, ValueError):  # plane stats of the wrong type: no theoretical ceilings
        return {}
    return {device: c for device, c in found.items()
            if (c.get("peak_gflops_per_s") or {}).get("float32") and c.get("bandwidth_gbytes_per_s")}


def choose_ceilings(devices: set, trace, run_dir, given: Optional[dict] = None, measure: bool = False) -> dict:
    """{device: ceilings} for the devices of an analysis (see the module doc for the order)."""
    ceilings = given if given is not None else _read_json(Path(run_dir) / CEILINGS_FILE)
    if ceilings is None and measure and any(d.startswith("CPU") for d in devices):
        from . import peaks
        ceilings = peaks.get_ceilings("CPU:0")
    by_device = {}
    if ceilings is not None:
        if "peak_gflops_per_s" not in ceilings:  # already {device: ceilings}
            by_device.update(ceilings)
        else:
            by_device[ceilings.get("device") or "CPU:0"] = ceilings
    if any(d.startswith(("GPU", "TPU")) for d in devices):
        by_device.update(_gpu_ceilings(trace))
    return by_device


def no_ceilings_warning(device: str) -> str:
    return (f"no ceilings for {device}: no roofline (for a CPU trace pass measure_ceilings / "
            "--measure-ceilings to use this machine's measured ceilings)")


def _ceiling_summary(ceilings_by_device: dict) -> dict:
    return {device: {"source": c.get("source"), "peak_gflops_per_s": c.get("peak_gflops_per_s"),
                     "tensor_core_gflops_per_s": c.get("tensor_core_gflops_per_s"),
                     "bandwidth_gbytes_per_s": c.get("bandwidth_gbytes_per_s")}
            for device, c in ceilings_by_device.items()}


def _above_ceiling_warnings(figures: dict) -> list:
    """Counting errors only: ops above max(theoretical, measured) x COUNTING_ERROR_MARGIN."""
    return [f"COUNTING ERROR? {op['op_name']} ({op['op_type']}) measured {op['gflops_per_s']:.4g} GFLOP/s, "
            f"more than {COUNTING_ERROR_MARGIN - 1:.0%} above the highest {op['dtype']} ceiling of the device "
            "(matrix or vector units; the higher of the theoretical and the measured peak): its FLOP count is too high or its time too short"
            for op in figures["above_ceiling_ops"] if op["kind"] == "compute"]


def apply_ceilings(ops: pd.DataFrame, summary: dict, ceilings_by_device: dict, threshold: float,
                   primary: str):
    """(ops with roofline columns, the primary device's ceilings); the summary gains the model-level
    figures and warnings. Each device is rated against its own ceilings."""
    if "peak_gflops_per_s" in ceilings_by_device:  # a single device's ceilings
        ceilings_by_device = {ceilings_by_device.get("device") or "CPU:0": ceilings_by_device}
    parts, trust_warnings, raised_by_device = [], [], {}
    ceilings_by_device = dict(ceilings_by_device)
    for device, part in ops.groupby("device", sort=False):
        if device in ceilings_by_device:
            checked, warnings, raised = check_against_ops(part, ceilings_by_device[device])
            ceilings_by_device[device] = checked
            trust_warnings += [f"{device}: {w}" for w in warnings]
            measured = ceilings_by_device[device].get("measured")
            conditions = measured.get("conditions") if isinstance(measured, dict) else None
            conditions = conditions if isinstance(conditions, dict) else {}
            if conditions.get("confidence") == "low":
                trust_warnings.append(
                    f"{device}: the ceilings were measured with low confidence ({conditions.get('confidence_reason')})"
                    "; efficiencies are rough, and the next run measures them again")
            if ceilings_by_device[device].get("remeasured_because"):
                trust_warnings.append(f"{device}: the cached ceilings were measured again: "
                                      f"{ceilings_by_device[device]['remeasured_because']}")
            raised_by_device[device] = raised
            part = apply_roofline(part, checked, threshold=threshold)
        parts.append(part)
    ops = pd.concat(parts).sort_values("total_time_us", ascending=False, kind="stable").reset_index(drop=True)
    summary["ceilings"] = _ceiling_summary(ceilings_by_device)
    ceilings = ceilings_by_device[primary]
    figures = model_figures(ops[ops["device"] == primary], summary, ceilings)
    summary["roofline"] = {
        "device": ceilings.get("device"), "source": ceilings.get("source"),
        "peak_gflops_per_s": ceilings.get("peak_gflops_per_s"),
        "bandwidth_gbytes_per_s": ceilings.get("bandwidth_gbytes_per_s"),
        "theoretical": ceilings.get("theoretical"), "threshold": threshold, **figures}
    summary["ceiling_trust"] = {device: {"measured_at": c.get("measured_at"), "confidence": c.get("confidence"),
                                         "raised": raised_by_device.get(device) or {}}
                                for device, c in ceilings_by_device.items()}
    summary["model_flops_utilization"] = figures["model_flops_utilization"]
    summary["model_flops_utilization_roof"] = figures["model_flops_utilization_roof"]
    summary["model_flops_utilization_note"] = mfu_note(figures["model_flops_utilization"],
                                                       raised_by_device.get(primary) or {}, ceilings.get("source"))
    summary["memory_bound_time_share"] = figures["memory_bound_time_share"]
    summary["warnings"].extend(trust_warnings)
    summary["warnings"].extend(_above_ceiling_warnings(figures))
    in_cache = sum(1 for op in figures["above_ceiling_ops"] if op["kind"] == "memory")
    summary["memory_roof_note"] = (
        f"{in_cache} op(s) ran above the memory roof (efficiency above 100%): their data stayed in cache, "
        "and the roof is the DRAM streaming bandwidth; not a counting error") if in_cache else None
    note = summary["model_flops_utilization_note"]
    if note:
        summary["warnings"].append(f"model FLOPs utilization {100 * figures['model_flops_utilization']:.2f}%: {note}")
    return ops, ceilings
