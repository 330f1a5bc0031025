"""The one column schema (traceflops/schema.py): every table's columns come from it, the docs' column tables
are rendered from it and current, the real tables have the declared dtypes, and the combine step rolls an
op's kernels up by each column's rule."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import traceflops
from traceflops import schema
from traceflops.costs import Cost
from traceflops.costs.hlo import HLO_COLUMNS, hlo_costs
from traceflops.join import HOST_COLUMNS, KERNEL_COLUMNS, MEMCPY_COLUMNS, OPS_COLUMNS, RECORD_COLUMNS
from traceflops.join.combine import combine_rows, needed
from traceflops.join.records import SOURCES
from traceflops.trace.events import WORK_KINDS

REPO = Path(__file__).resolve().parent.parent
GPU_TRACE = REPO / "traces" / "gpu" / "tf-v100-bert-multiworker.xplane.pb"
XLA_TRACE = REPO / "traces" / "gpu" / "jax-mi300-gemm.xplane.pb"


def test_every_table_lists_declared_columns_once():
    for table in schema.TABLES.values():
        assert len(set(table.columns)) == len(table.columns), table.name
        assert set(table.columns) <= set(schema.COLUMNS), table.name
        assert set(table.dtypes) | set(table.docs) <= set(table.columns), table.name


def test_the_packages_column_lists_are_the_schemas():
    assert RECORD_COLUMNS == schema.columns("records")
    assert OPS_COLUMNS == schema.columns("ops")
    assert KERNEL_COLUMNS == schema.columns("kernels")
    assert MEMCPY_COLUMNS == schema.columns("memcpy")
    assert HOST_COLUMNS == schema.columns("hosts")
    assert HLO_COLUMNS == schema.columns("hlo")


def test_declarations_are_consistent():
    cost_fields = {f.name for f in dataclasses.fields(Cost)}
    rules = {schema.KEY, schema.MAIN, schema.SUM, schema.MIN, schema.MAX, schema.PER_OCCURRENCE,
             schema.PRECEDENCE, schema.DERIVED, schema.NOT_COMBINED}
    for column in schema.COLUMNS.values():
        assert column.combine in rules, column.name
        assert not column.cost or column.cost in cost_fields, column.name
        assert set(column.inputs) <= set(schema.COLUMNS), column.name
        assert column.on_split in ("", schema.SPLIT_ZERO, schema.SPLIT_NONE), column.name
        assert (column.combine == schema.PRECEDENCE) == bool(column.precedence), column.name
        assert column.doc and "|" not in column.name
    # every column an ops row needs combined is a record's
    assert set(needed(OPS_COLUMNS)) <= set(RECORD_COLUMNS) | {"phase"}


def test_every_kind_of_work_has_a_record_source():
    assert set(SOURCES) == set(WORK_KINDS)


def test_the_docs_column_tables_are_current():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "column_tables.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rendered = set()
    for path in [REPO / "README.md", *(REPO / "docs").glob("*.md")]:
        rendered |= set(schema.docs_tables(path.read_text()))
    assert rendered == set(schema.TABLES), "every table's columns are rendered in the docs once"


def test_a_markdown_table_has_a_row_per_column():
    text = schema.markdown_table("ops")
    assert text.splitlines()[0] == "| column | dtype | unit | combines | meaning |"
    assert [line.split(" | ")[0][2:] for line in text.splitlines()[2:]] == OPS_COLUMNS
    stale = schema.DOCS_BEGIN.format(table="memcpy") + "\n| old |\n" + schema.DOCS_END
    assert schema.render_docs(stale) == (schema.DOCS_BEGIN.format(table="memcpy") + "\n"
                                         + schema.markdown_table("memcpy") + "\n" + schema.DOCS_END)


def _same_dtype(declared: str, actual) -> bool:
    if declared == "str":  # text: pandas' string dtype, or object before pandas 3
        return str(actual) in ("str", "string", "object")
    return str(actual) == declared


def test_the_tables_have_the_declared_dtypes():
    result = traceflops.analyze(str(GPU_TRACE))
    tables = [("ops", result.ops), ("kernels", result.kernels), ("memcpy", result.memcpy)]
    if XLA_TRACE.exists():
        tables.append(("hlo", hlo_costs(traceflops.analyze(str(XLA_TRACE)).trace.hlo_modules)))
    for name, table in tables:
        assert len(table), name
        spec = schema.TABLES[name]
        wrong = {c: str(table[c].dtype) for c in spec.columns if not _same_dtype(spec.dtype(c), table[c].dtype)}
        assert not wrong, f"{name}: {wrong}"


def _kernel(name, occurrences, total_ps, flops, macs, source, note="", shape="", valid=None):
    return {"device": "GPU:0", "op_name": "dense/MatMul", "op_type": "MatMul", "hlo_module": "",
            "kernel_name": name, "occurrences": occurrences, "total_ps": total_ps, "flops": flops, "macs": macs,
            "xla_valid_macs": valid, "bytes": 0 if flops is not None else None, "flops_source": source,
            "layer": "dense", "phase": "forward", "dtype": "float32", "input_shapes": shape, "output_shapes": "",
            "note": note, "source_line": ""}


def _frame(rows):
    frame = pd.DataFrame(rows)
    return schema.cast_counts(frame, "records")


def test_combine_rolls_an_ops_kernels_up_by_each_columns_rule():
    gemm = _kernel("gemm", 4, 9_000, 1000, 500, "formula", note="2 x M x N x K", shape="(float[4,8])")
    reduce = _kernel("splitk_reduce", 8, 1_000, 0, None, "split")
    [row] = combine_rows(_frame([reduce, gemm]), ["device", "op_name", "op_type", "hlo_module"], OPS_COLUMNS)
    assert row["parts"] == 2
    assert row["occurrences"] == 8  # its most-launched kernel's launches
    assert row["total_ps"] == 10_000
    assert row["flops"] == 4 * 1000 // 8  # the kernels' totals over the op's occurrences
    assert row["macs"] == 4 * 500 // 8  # from the kernels that have one
    assert row["xla_valid_macs"] is None
    assert row["flops_source"] == "formula"  # the surest source a kernel has (split counts for none)
    assert row["note"] == "2 x M x N x K" and row["input_shapes"] == "(float[4,8])"  # the longest kernel's


def test_combine_makes_an_op_unknown_when_one_kernel_is():
    gemm = _kernel("gemm", 2, 5_000, 1000, 500, "formula")
    other = _kernel("mystery", 2, 1_000, None, None, "unknown")
    [row] = combine_rows(_frame([gemm, other]), ["device", "op_name", "op_type", "hlo_module"], OPS_COLUMNS)
    assert row["flops_source"] == "unknown"
    assert row["flops"] is None and row["bytes"] is None
    assert row["macs"] is None  # unknown with the op's source


def test_records_take_the_schemas_cost_fields():
    from traceflops.join.records import memcpy_records
    events = pd.DataFrame({"host": ["h"], "plane": ["/device:GPU:0"], "line": ["Stream #1"], "name": ["MemcpyH2D"],
                           "op_name": ["x"], "op_type": [""], "duration_ps": [2_000],
                           "memcpy_details": ["size:64"]})
    [record] = memcpy_records(events)
    assert set(record) == set(RECORD_COLUMNS)
    assert {name: record[name] for name in schema.cost_columns()} == {
        "flops": 0, "macs": None, "xla_valid_macs": None, "bytes": None, "dtype": "", "flops_source": "zero",
        "note": "memory copy"}
