"""The one formula registry: TF op types, HLO opcodes and custom-call targets under namespaced keys,
registered from user code with `traceflops.register_formula` and used when an XLA trace is priced."""
from types import SimpleNamespace

import pytest

import traceflops
from traceflops import costs
from traceflops.costs import docs as costs_docs
from traceflops.costs.hlo import module_costs
from traceflops.costs.price import HloIndex, price
from traceflops.costs.registry import family_of, find, lookup, unregister
from traceflops.trace import hlo_schema

F32, S32 = 11, 4


def _shape(dtype, dims):
    return hlo_schema.ShapeProto(element_type=dtype, dimensions=dims)


def _module():
    """entry: x f32[8,128] -> topk (values f32[8,4], indices s32[8,4]), and two custom calls
    nothing prices: `my_kernel` and `mylib$fused_v2`."""
    m = hlo_schema.HloModuleProto(name="jit_topk", id=5, entry_computation_id=1)
    entry = m.computations.add(name="main", id=1)
    entry.instructions.add(name="x", opcode="parameter", id=10, shape=_shape(F32, [8, 128]))
    topk = entry.instructions.add(name="topk.1", opcode="topk", id=11, operand_ids=[10])
    topk.shape.tuple_shapes.add(element_type=F32, dimensions=[8, 4])
    topk.shape.tuple_shapes.add(element_type=S32, dimensions=[8, 4])
    entry.instructions.add(name="custom-call.2", opcode="custom-call", id=12, operand_ids=[10],
                           custom_call_target="my_kernel", shape=_shape(F32, [8, 128]))
    entry.instructions.add(name="custom-call.3", opcode="custom-call", id=13, operand_ids=[10],
                           custom_call_target="mylib$fused_v2", shape=_shape(F32, [8, 128]))
    return m


def _row(frame, hlo_op):
    rows = frame[frame["hlo_op"] == hlo_op]
    assert len(rows) == 1, hlo_op
    return rows.iloc[0]


def test_an_hlo_opcode_formula_registered_from_user_code_prices_the_instruction():
    before = _row(module_costs(_module()), "topk.1")
    assert before.flops_source == "unknown" and "no formula for opcode topk" in before.note

    @traceflops.register_formula("hlo:topk", family="other")
    def my_topk(op):
        """One comparison per input element per kept element."""
        x, values = op.input(0), op.output(0)
        return None if x is None or values is None else (x.num_elements * values.dims[-1], None)
    try:
        after = _row(module_costs(_module()), "topk.1")
        assert (after.flops, after.flops_source, after.note, after["dtype"]) == (8 * 128 * 4, "xla", "my_topk", "float32")
        assert after.bytes == before.bytes  # bytes are the instruction's, whatever prices its FLOPs
        assert family_of("topk") == "other" and lookup("hlo:topk").formula is my_topk
        table = traceflops.supported_ops().set_index("op_type")
        assert table.loc["hlo:topk", "description"] == "One comparison per input element per kept element."
        assert "| other | topk | formula | One comparison per input element" in costs_docs.formulas_table()
    finally:
        unregister("hlo:topk")
    assert _row(module_costs(_module()), "topk.1").flops_source == "unknown"


def test_the_user_formula_is_used_where_the_join_prices_xla_kernels():
    """`price(HloIndex.describe(...))` is the step XLA kernels and host XLA ops go through."""
    module = _module()
    index = HloIndex([SimpleNamespace(proto=module, program_id=5, name=module.name)])
    assert price(index.describe(5, module.name, "custom-call.2")).source == "unknown"

    @traceflops.register_formula("custom_call:my_kernel", family="elementwise")
    def my_kernel(op):
        """3 FLOPs per output element, 1 of them transcendental."""
        out = op.output(0)
        return 3 * out.num_elements, None, out.num_elements
    try:
        cost = price(index.describe(5, module.name, "custom-call.2"))
        assert (cost.flops, cost.transcendentals, cost.source, cost.note) == (3 * 8 * 128, 8 * 128, "xla", "my_kernel")
        assert cost.bytes == 2 * 8 * 128 * 4
    finally:
        unregister("custom_call:my_kernel")
    assert price(index.describe(5, module.name, "custom-call.2")).source == "unknown"


def test_a_custom_call_pattern_prices_every_target_it_matches():
    @traceflops.register_formula("custom_call:mylib$fused", pattern=r"^mylib\$fused", family="other")
    def mylib_fused(op):
        """2 FLOPs per input element."""
        return 2 * op.input(0).num_elements, None
    try:
        assert find("custom_call", "mylib$fused_v2") is lookup("custom_call:mylib$fused")
        assert find("custom_call", "otherlib$fused") is None
        row = _row(module_costs(_module()), "custom-call.3")
        assert (row.flops, row.note) == (2 * 8 * 128, "mylib_fused")
    finally:
        unregister("custom_call:mylib$fused")
    assert _row(module_costs(_module()), "custom-call.3").flops_source == "unknown"
    with pytest.raises(ValueError, match="pattern"):
        traceflops.register_formula("hlo:topk", pattern="top")


def test_a_formula_that_cannot_count_leaves_the_instruction_unknown():
    @traceflops.register_formula("hlo:topk")
    def needs_attrs(op):
        """Needs an attribute the instruction lacks."""
        return None
    try:
        row = _row(module_costs(_module()), "topk.1")
        assert row.flops_source == "unknown" and "needs_attrs" in row.note
    finally:
        unregister("hlo:topk")


def test_one_registry_holds_every_namespace():
    assert lookup("tf:Conv2D") is lookup("Conv2D") and lookup("Conv2D").namespace == "tf"
    dot = lookup("hlo:dot")
    assert (dot.namespace, dot.name, dot.family, dot.signature) == ("hlo", "dot", "matmul/einsum", costs.INSTRUCTION)
    assert find("custom_call", "__cublas$lt$matmul") is lookup("custom_call:__cublas$gemm")
    assert find("custom_call", "__cudnn$convBiasActivationForward").family == "conv"
    assert lookup("custom_call:Sharding").kind == costs.ZERO
    ops = set(traceflops.supported_ops()["op_type"])
    assert {"Conv2D", "hlo:dot", "hlo:fusion:kLoop", "custom_call:__cublas$gemm"} <= ops
    assert {e.namespace for e in costs.entries()} == set(costs.NAMESPACES)
    with pytest.raises(ValueError, match="already registered"):
        traceflops.register_formula("hlo:dot")(lambda op: (0, None))
    assert "dot" not in costs.FORMULAS and "Conv2D" in costs.FORMULAS  # the TF views stay TF's


def test_the_docs_tables_cover_hlo_opcodes_and_custom_call_targets():
    table = costs_docs.formulas_table()
    assert "HLO opcodes" in table and "Custom-call targets" in table
    assert "| matmul/einsum | dot | formula |" in table
    assert "`__cublas$gemm` (pattern" in table
