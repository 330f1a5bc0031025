"""The output columns, each declared once: its name, dtype, unit, how it combines, and what it means.

Every table's column list (the priced records, ops, kernels, memcpy, hosts and
HLO tables, so the CSV headers too) is a `Table` here, and the column tables
in README.md and docs/*.md are rendered from it (`markdown_table`;
`scripts/column_tables.py --write` puts them between their markers, and
tests/test_schema.py checks they are current). The combine rule of a column is
how the rows of one op become its one ops row (a GPU op's kernels:
`join/combine.py`, in the spirit of XProf's `CombineOpMetrics`):

* `key`: the rows share it (device, op, type, module);
* `main`: the value of the longest-running row (the op's main kernel);
* `sum`, `min`, `max`: over the rows;
* `per occurrence`: the rows' value x occurrences, summed, over the combined
  occurrences; `known` says whether one unknown row makes it unknown (`all`)
  or the rows that have one count (`any`);
* `precedence`: the first value, in `precedence` order, that any row has;
* `derived`: computed after combining, from the columns named in `inputs`;
* `-`: not carried into the ops row.

`dtype` is how the column is stored; `cast_counts` gives the nullable integer
(`Int64`) ones their dtype wherever a table is built, the others come out of
their arithmetic (tests/test_schema.py checks them on a GPU trace). Nothing
here imports the package: the costs stage reads its HLO columns from here too.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

KEY, MAIN, SUM, MIN, MAX = "key", "main", "sum", "min", "max"
PER_OCCURRENCE, PRECEDENCE, DERIVED, NOT_COMBINED = "per occurrence", "precedence", "derived", "-"
# What a kernel that is not its op's main kernel holds (the split rule, join/kernels.py).
SPLIT_ZERO, SPLIT_NONE = "zero", "none"


@dataclass(frozen=True)
class Column:
    name: str
    dtype: str  # "str", "int64", "Int64" (a count, NA when unknown), "float64", "Float64", "bool", "object"
    unit: str  # "" when the column has none
    combine: str  # one of the rules in the module doc
    doc: str
    known: str = "all"  # per-occurrence counts: unknown when any row's is ("all"), or from the rows that have one
    unknown_with_source: bool = False  # per-occurrence counts: unknown whenever the combined flops_source is
    precedence: tuple = ()  # precedence: the values in order; none of them present gives the last
    inputs: tuple = ()  # derived: the columns it is computed from
    cost: str = ""  # the `Cost` field a record takes it from (costs/registry.py), "" when none
    default: object = ""  # its value in a record whose source does not set it
    on_split: str = ""  # SPLIT_ZERO / SPLIT_NONE: what a non-main kernel of its op holds; "" untouched


_TIMES = ("total_ps", "occurrences")
_SOURCES = ("unknown", "xla", "shapes", "formula", "zero")  # costs: UNKNOWN first, then the surest count

COLUMNS = {column.name: column for column in [
    Column("source", "str", "", NOT_COMBINED, "`tf` (a TensorFlow op timed on a host thread), `xla` (an HLO "
           "instruction run on the host), `kernel` (a device kernel), `memcpy`"),
    Column("host", "str", "", NOT_COMBINED, "the host name of its `.xplane.pb`"),
    Column("device", "str", "", KEY, "where it ran (`CPU:0`, `GPU:4`)"),
    Column("stream", "str", "", NOT_COMBINED, "the GPU stream line (`Stream #134(Compute)`), \"\" for host work"),
    Column("kernel_name", "str", "", NOT_COMBINED, "the kernel's symbol (kernels and memcpys), \"\" otherwise"),
    Column("name", "str", "", NOT_COMBINED, "the memory copy's kind (`MemcpyH2D`, `MemcpyD2D`...)"),
    Column("op_name", "str", "", KEY, "the TensorFlow node as executed; for XLA the HLO instruction; for kernels "
           "and memcpys the op that launched them"),
    Column("op_type", "str", "", KEY, "the kernel type that ran (`_MklNativeFusedConv2D`...); for XLA the "
           "instruction's opcode (fusions: `fusion:kLoop`...)"),
    Column("hlo_module", "str", "", KEY, "XLA work: the HLO module it is in; \"\" for TensorFlow ops"),
    Column("program_id", "Int64", "", KEY, "XLA work: the module's program id (`program_id` stat); programs "
           "sharing a module name are told apart in `hlo_module` as `name#program_id`", default=None),
    Column("computation", "str", "", NOT_COMBINED, "the HLO computation the instruction is in"),
    Column("is_entry", "bool", "", NOT_COMBINED, "True for an instruction of the module's entry computation"),
    Column("hlo_op", "str", "", NOT_COMBINED, "XLA work: the HLO instruction's name, as kernels name it "
           "(`hlo_op` stat)"),
    Column("opcode", "str", "", NOT_COMBINED, "the HLO instruction's opcode"),
    Column("fusion_kind", "str", "", NOT_COMBINED, "a fusion's kind (`kLoop`, `kInput`, `kOutput`, `kCustom`)"),
    Column("custom_call_target", "str", "", NOT_COMBINED, "a custom call's target (`__cublas$gemm`...)"),
    Column("framework_op", "str", "", NOT_COMBINED, "XLA work: the framework op it came from (HLO metadata "
           "`op_name`, e.g. `jit(dot)/dot_general`)"),
    Column("shape", "str", "", NOT_COMBINED, "the launching op's input shapes as the trace recorded them "
           "(`(float[4,32];...)`), \"\" when none"),
    Column("input_shapes", "str", "", MAIN, "tensors as `float32[4,32];float32[32,8]`; a GPU op: its main "
           "kernel's recorded shapes"),
    Column("output_shapes", "str", "", MAIN, "the same for its outputs (\"\" for a GPU op: traces record none)"),
    Column("layer", "str", "", MAIN, "the Keras layer that owns the op (its own name; nested models as "
           "`outer/inner`; `(model)` outside every layer)"),
    Column("phase", "str", "", MAIN, "`forward`, `backward`, `optimizer` or `loss_and_metrics` (training steps; "
           "`forward` for inference)"),
    Column("occurrences", "int64", "", MAX, "executions inside the profiled steps (kernels and memcpys: launches)",
           default=None),
    Column("total_ps", "int64", "ps", SUM, "measured (self) time of all occurrences", default=None),
    Column("min_ps", "int64", "ps", MIN, "the shortest occurrence", default=None),
    Column("max_ps", "int64", "ps", MAX, "the longest occurrence", default=None),
    Column("kernel_details", "object", "", NOT_COMBINED, "the kernel's launch details (`regs:38 shm:0 "
           "grid:160,1,1 block:1024,1,1 occ_pct:50.0`), as its first occurrence reports them", default=None),
    Column("unit", "object", "", NOT_COMBINED, "the launch unit a kernel belongs to (its op or HLO "
           "instruction), for the split rule", default=None),
    Column("flops", "Int64", "FLOP", PER_OCCURRENCE, "per occurrence (one FMA = 2 FLOPs), None when unknown",
           unknown_with_source=True, cost="flops", default=None, on_split=SPLIT_ZERO),
    Column("macs", "Int64", "MAC", PER_OCCURRENCE, "per occurrence, contraction ops only (matmul, conv, einsum); "
           "a convolution counts every kernel tap (textbook)",
           known="any", unknown_with_source=True, cost="macs", default=None, on_split=SPLIT_NONE),
    Column("xla_valid_macs", "Int64", "MAC", PER_OCCURRENCE, "XLA convolutions, per occurrence: XLA's own count, "
           "FMAs over valid (non-padding) window positions only, as XProf's hlo_stats reports it",
           known="any", cost="xla_valid_macs", default=None, on_split=SPLIT_NONE),
    Column("transcendentals", "int64", "", NOT_COMBINED, "per execution: exp, log, tanh, erf, rsqrt... (each "
           "also 1 FLOP inside `flops`)"),
    Column("bytes", "Int64", "byte", PER_OCCURRENCE, "per occurrence: bytes read and written (memcpys: copied; "
           "total_bytes / occurrences)", cost="bytes", default=None, on_split=SPLIT_ZERO),
    Column("total_flops", "float64", "FLOP", DERIVED, "flops x occurrences", inputs=("flops", "occurrences")),
    Column("total_bytes", "float64", "byte", SUM, "over all occurrences (memcpys: the sum of the events' "
           "`memcpy_details` `size:N`, NaN when one is missing)", default=None),
    Column("dtype", "str", "", MAIN, "the dtype it computes in (a contraction's input dtype)", cost="dtype"),
    Column("flops_source", "str", "", PRECEDENCE, "`formula`, `zero` (declared zero-FLOP: data movement, "
           "variables, control), `xla` (priced from the HLO), `shapes` (a trace without its graph: attributes "
           "inferred from the shapes, the note says what), `split` (a kernel that is not its op's main kernel) or "
           "`unknown`",
           precedence=_SOURCES, cost="source"),
    Column("note", "str", "", MAIN, "the formula used, the zero reason, or why the count is unknown", cost="note"),
    Column("source_line", "str", "", MAIN, "XLA work: `file:line` from its HLO metadata (on JAX, the Keras "
           "layer's code that made the op), else \"\""),
    Column("total_time_us", "float64", "us", DERIVED, "measured (self) time, nested ops excluded, of all "
           "occurrences", inputs=("total_ps",)),
    Column("avg_time_us", "float64", "us", DERIVED, "total_time_us / occurrences", inputs=_TIMES),
    Column("min_time_us", "float64", "us", DERIVED, "the shortest occurrence", inputs=("min_ps",)),
    Column("max_time_us", "float64", "us", DERIVED, "the longest occurrence", inputs=("max_ps",)),
    Column("gflops_per_s", "Float64", "GFLOP/s", DERIVED, "flops x occurrences / total time",
           inputs=("flops", "occurrences", "total_time_us")),
    Column("gbytes_per_s", "Float64", "GB/s", DERIVED, "bytes x occurrences / total time (1 GB = 1e9 bytes)",
           inputs=("bytes", "occurrences", "total_time_us")),
    Column("intensity", "Float64", "FLOP/byte", DERIVED, "flops / bytes", inputs=("flops", "bytes")),
    Column("time_share", "float64", "", DERIVED, "share of all op time in the profiled steps",
           inputs=("total_time_us",)),
    Column("grid", "str", "", DERIVED, "the launch grid, from `kernel_details` (None when not reported)",
           inputs=("kernel_details",)),
    Column("block", "str", "", DERIVED, "the thread block, from `kernel_details`", inputs=("kernel_details",)),
    Column("registers", "Int64", "", DERIVED, "registers per thread, from `kernel_details`",
           inputs=("kernel_details",)),
    Column("shared_mem_bytes", "Int64", "byte", DERIVED, "shared memory (static + dynamic), from "
           "`kernel_details`", inputs=("kernel_details",)),
    Column("occupancy_pct", "float64", "%", DERIVED, "occupancy, from `kernel_details` (ROCm's `occ_pct:0`, "
           "not measured, is None)", inputs=("kernel_details",)),
    Column("steps", "int64", "", DERIVED, "the host's steps in the analysis"),
    Column("median_step_time_us", "float64", "us", DERIVED, "the median of the host's step times"),
    Column("step_time_skew", "float64", "", DERIVED, "its median step time / the median over hosts' medians, "
           "minus 1 (+0.10: 10% slower)", inputs=("median_step_time_us",)),
    Column("flops_per_step", "int64", "FLOP", DERIVED, "FLOPs of the host's analysed executions / its steps (the "
           "ops table's rule: a GPU op counts through its kernels)", inputs=("flops", "occurrences", "steps")),
    Column("mfu", "float64", "", DERIVED, "gflops_per_s / the primary device's float32 peak (only when "
           "ceilings are known)", inputs=("gflops_per_s",)),
]}


@dataclass(frozen=True)
class Table:
    name: str
    doc: str  # what one row is
    columns: tuple
    dtypes: dict = field(default_factory=dict)  # column -> how this table stores it, where not as declared
    docs: dict = field(default_factory=dict)  # column -> its meaning here, where this table narrows it
    shows_combine: bool = False  # its docs table says how each column combines (records into ops rows)

    def dtype(self, column: str) -> str:
        return self.dtypes.get(column, COLUMNS[column].dtype)


TABLES = {table.name: table for table in [
    Table("records", "one priced execution group (join/records.py): the frame every other table is built from",
          ("source", "host", "device", "stream", "kernel_name", "op_name", "op_type", "hlo_module", "program_id",
           "hlo_op", "framework_op", "shape", "input_shapes", "output_shapes", "layer", "occurrences", "total_ps",
           "min_ps", "max_ps", "kernel_details", "total_bytes", "unit", "flops", "macs", "xla_valid_macs", "bytes",
           "dtype", "flops_source", "note", "source_line"), shows_combine=True),
    Table("ops", "one executed op (`ops.csv`; join/ops_table.py): host TF ops and host XLA instructions as their "
          "records, a GPU op as the roll-up of the kernels it launched on each device",
          ("op_name", "op_type", "hlo_module", "program_id", "layer", "phase", "device", "dtype", "input_shapes",
           "output_shapes", "occurrences", "flops", "macs", "xla_valid_macs", "bytes", "total_time_us",
           "avg_time_us", "gflops_per_s", "gbytes_per_s", "intensity", "time_share", "flops_source", "note",
           "source_line"), shows_combine=True,
          docs={"occurrences": "executions inside the profiled steps (a GPU op: launches of its most-launched "
                               "kernel, one per execution)",
                "flops_source": COLUMNS["flops_source"].doc.replace(", `split` (a kernel that is not its op's main "
                                                                    "kernel) or", " or") +
                "; a GPU op: `unknown` when any kernel's is, else the surest of its kernels'",
                "note": COLUMNS["note"].doc + " (a GPU op: `N kernel(s); ` and its main kernel's note)"}),
    Table("kernels", "one (host, device, stream, kernel, launching op) (`kernels.csv`; join/kernels.py)",
          ("host", "device", "stream", "kernel_name", "op_name", "op_type", "shape", "hlo_module", "program_id",
           "hlo_op", "framework_op", "occurrences", "flops", "xla_valid_macs", "bytes", "total_flops",
           "total_bytes", "total_time_us", "avg_time_us", "min_time_us", "max_time_us", "gflops_per_s", "dtype",
           "flops_source", "note", "grid", "block", "registers", "shared_mem_bytes", "occupancy_pct"),
          # the totals are products in float64, and the per-occurrence counts are stored the same way
          dtypes={"flops": "float64", "bytes": "float64", "gflops_per_s": "float64"},
          docs={"gflops_per_s": "total_flops / total time"}),
    Table("memcpy", "one (host, device, stream, copy kind, launching op) (`memcpy.csv`; join/kernels.py)",
          ("host", "device", "stream", "name", "op_name", "op_type", "occurrences", "bytes", "total_bytes",
           "total_time_us", "avg_time_us", "gbytes_per_s"),
          dtypes={"bytes": "float64", "gbytes_per_s": "float64"},
          docs={"gbytes_per_s": "total_bytes / total time (1 GB = 1e9 bytes)"}),
    Table("hosts", "one host of a multi-host trace (`hosts.csv`; join/hosts.py)",
          ("host", "steps", "median_step_time_us", "step_time_skew", "flops_per_step", "gflops_per_s", "mfu"),
          dtypes={"gflops_per_s": "float64"}, docs={"gflops_per_s": "flops_per_step / median step time"}),
    Table("hlo", "one HLO instruction of a module (costs/hlo/module.py `hlo_costs`)",
          ("program_id", "hlo_module", "computation", "is_entry", "hlo_op", "opcode", "fusion_kind",
           "custom_call_target", "shape", "framework_op", "flops", "macs", "xla_valid_macs", "transcendentals",
           "bytes", "dtype", "flops_source", "note"),
          dtypes={"program_id": "int64", "bytes": "int64"},
          docs={"shape": "its result shape, e.g. `bf16[256,256]`",
                "flops": "per execution (loop trip counts not applied), None when unknown",
                "macs": "per execution, contractions only (convolutions: the textbook count, every kernel tap)",
                "xla_valid_macs": "convolutions (and fusions holding one): FMAs over valid window positions only, "
                                  "XLA HloCostAnalysis's count, which XProf's hlo_stats reports",
                "bytes": "operand bytes + result bytes (custom-call scratch workspaces excluded)",
                "flops_source": "`xla` (counted here, zero included) or `unknown` (flops is None; `note` says why)"}),
]}


def columns(table: str) -> list:
    """The columns of one table, in order (a new list: callers may extend it)."""
    return list(TABLES[table].columns)


def count_columns(table: str) -> list:
    """The columns of `table` stored as nullable integers (`Int64`)."""
    return [name for name in TABLES[table].columns if TABLES[table].dtype(name) == "Int64"]


def cast_counts(frame, table: str):
    """`frame` with its nullable-integer columns of `table` (those it has) as `Int64`, in place; returned."""
    import pandas as pd  # here, so that reading the schema needs no pandas
    for name in count_columns(table):
        if name in frame:
            frame[name] = pd.array(frame[name], dtype="Int64")
    return frame


def cost_columns() -> dict:
    """Record column -> the `Cost` field it is taken from."""
    return {name: COLUMNS[name].cost for name in TABLES["records"].columns if COLUMNS[name].cost}


def record_defaults() -> dict:
    """Record column -> its value in a record whose source does not set it."""
    return {name: COLUMNS[name].default for name in TABLES["records"].columns}


def split_columns(value: str) -> list:
    """The record columns a non-main kernel holds `value` in (SPLIT_ZERO: 0, SPLIT_NONE: NA)."""
    return [name for name in TABLES["records"].columns if COLUMNS[name].on_split == value]


def _combine_text(column: Column) -> str:
    if column.combine == PER_OCCURRENCE:
        return f"per occurrence ({'any row' if column.known == 'any' else 'all rows'})"
    if column.combine == PRECEDENCE:
        return "precedence"
    return column.combine


def markdown_table(table: str) -> str:
    """The column table of `table` as the docs hold it: column, dtype, unit, (combine rule,) meaning."""
    spec = TABLES[table]
    head = ["column", "dtype", "unit"] + (["combines"] if spec.shows_combine else []) + ["meaning"]
    rows = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name in spec.columns:
        column = COLUMNS[name]
        cells = [name, spec.dtype(name), column.unit] + ([_combine_text(column)] if spec.shows_combine else [])
        cells.append((spec.docs.get(name) or column.doc).replace("|", "\\|"))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


# A column table in the docs sits between these markers; `render_docs` rewrites what is between them.
DOCS_BEGIN = "<!-- columns: {table} (scripts/column_tables.py --write) -->"
DOCS_END = "<!-- columns: end -->"
_DOCS_BLOCK = re.compile(r"(<!-- columns: (\w+) \(scripts/column_tables\.py --write\) -->\n)(.*?)(<!-- columns: end -->)",
                         re.DOTALL)


def render_docs(text: str) -> str:
    """`text` (a markdown file) with every marked column table rendered afresh from the schema."""
    return _DOCS_BLOCK.sub(lambda m: m.group(1) + markdown_table(m.group(2)) + "\n" + m.group(4), text)


def docs_tables(text: str) -> list:
    """The names of the tables `text` holds between markers."""
    return [match.group(2) for match in _DOCS_BLOCK.finditer(text)]
