"""What `profile` and `analyze` return: a `Result` (the ops table, the side tables by name, the
summary, the ceilings) and its `Summary` (summary.json's figures, as typed attributes and as keys).

    result.ops                        # one row per op (join/ops_table.py)
    result.kernels, result.memcpy     # GPU traces: one row per kernel, per copy; None on a CPU trace
    result.hosts                      # several hosts: one row per host; None for one host
    result.summary.flops_per_step     # also result.summary["flops_per_step"]
    result.summary.to_dict()          # what summary.json is written from
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Optional, TypeVar

if TYPE_CHECKING:
    import pandas as pd

    from .trace import Trace

T = TypeVar("T")


class Figure(Generic[T]):
    """One summary.json key, read and written as an attribute of `Summary`; None where the key is absent
    (a figure the analysis did not reach: `straggler` of one host, `training` of an inference step)."""

    def __set_name__(self, owner, name: str) -> None:
        self.key = name

    def __get__(self, summary, owner=None) -> T:
        if summary is None:
            return self  # the class attribute itself (documentation, introspection)
        return summary.get(self.key)

    def __set__(self, summary, value: T) -> None:
        summary[self.key] = value


class Summary(dict):
    """summary.json's figures. A dict (every key, in the order summary.json has them; the stages add
    keys as they go: the roofline's, `model_match`, `straggler`), so `summary["coverage"]` and
    `json.dumps(summary)` work as before; the figures most read are also typed attributes.

    A dict rather than a dataclass because which keys a summary has depends on the trace (`training`,
    `straggler`, `backend`, the roofline's keys are present only where they apply) and summary.json
    keeps their order: fixed fields would have to track both."""

    model: Figure[Optional[str]] = Figure()
    device: Figure[Optional[str]] = Figure()
    batch_size: Figure[Optional[int]] = Figure()
    steps: Figure[int] = Figure()
    totals_cover: Figure[Optional[str]] = Figure()
    step_time_us: Figure[Optional[float]] = Figure()
    step_times_us: Figure[list] = Figure()
    op_time_per_step_us: Figure[Optional[float]] = Figure()
    flops_per_step: Figure[Optional[int]] = Figure()
    macs_per_step: Figure[Optional[int]] = Figure()
    bytes_per_step: Figure[Optional[int]] = Figure()
    gflops_per_s: Figure[Optional[float]] = Figure()
    flops_per_step_by_dtype: Figure[Optional[dict]] = Figure()
    flops_per_step_by_phase: Figure[Optional[dict]] = Figure()
    macs_per_step_by_phase: Figure[Optional[dict]] = Figure()
    coverage: Figure[Optional[float]] = Figure()
    kernel_coverage: Figure[Optional[float]] = Figure()
    unknown_op_types: Figure[dict] = Figure()
    num_ops: Figure[int] = Figure()
    model_flops_utilization: Figure[Optional[float]] = Figure()
    memory_bound_time_share: Figure[Optional[float]] = Figure()
    profiler_overhead: Figure[Optional[float]] = Figure()
    training: Figure[Optional[dict]] = Figure()
    model_match: Figure[Optional[dict]] = Figure()
    straggler: Figure[Optional[dict]] = Figure()
    trace_files: Figure[list] = Figure()
    run_dir: Figure[Optional[str]] = Figure()
    warnings: Figure[list] = Figure()

    def to_dict(self) -> dict:
        """The summary as a plain dict, the keys in summary.json's order (what summary.json is written
        from; `report.to_jsonable` of it is the file's content)."""
        return dict(self)

    def __repr__(self) -> str:
        return f"Summary({dict.__repr__(self)})"


@dataclass
class Result:
    """One analysis. `ops`: one row per op; `kernels`, `memcpy`: one row per GPU kernel and per copy
    (None where the trace has no device kernels or copies: a CPU run; where it has only one of the two,
    the other is a table of no rows, with its columns); `hosts`: one row per host (None for a trace of
    one host). `ceilings`: the roofline's ceilings, None without a roofline (the summary's warnings say
    why)."""
    ops: pd.DataFrame
    summary: Summary
    trace: Trace
    run_dir: Optional[str] = None
    ceilings: Optional[dict] = None
    kernels: Optional[pd.DataFrame] = None
    memcpy: Optional[pd.DataFrame] = None
    hosts: Optional[pd.DataFrame] = None

    def __post_init__(self) -> None:
        if not isinstance(self.summary, Summary):
            self.summary = Summary(self.summary)

    @property
    def side_tables(self) -> dict:
        """The tables beside `ops` that this trace has, by name (the CSV files' names): kernels, memcpy,
        hosts."""
        named = {"kernels": self.kernels, "memcpy": self.memcpy, "hosts": self.hosts}
        return {name: table for name, table in named.items() if table is not None}

    def write(self, out_dir) -> list:
        """Write ops.csv, summary.json, the side tables and (with ceilings) roofline.png and
        report.html into `out_dir`; each file appears whole or not at all."""
        from .report.outputs import write_outputs
        return write_outputs(self, out_dir)

    @property
    def layers(self) -> pd.DataFrame:
        """Per Keras layer (`roofline.layer_rollup`): FLOPs, MACs and bytes per step, time, share of
        op time, achieved GFLOP/s and, with a roofline, efficiency; sorted by time."""
        from .roofline import layer_rollup
        return layer_rollup(self.ops, steps=self.summary.get("steps") or 1)

    def _repr_html_(self) -> str:
        from .report.notebook import result_html
        return result_html(self)

    def __repr__(self) -> str:
        from .report.notebook import result_text
        tables = "".join(f", .{name}" for name in self.side_tables)
        return f"<traceflops.Result\n{result_text(self)}\n{len(self.ops)} ops: .ops{tables}, .layers, .summary>"
