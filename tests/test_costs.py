"""Each formula family on hand-computed cases (one FMA = 2 FLOPs)."""
from traceflops.costs import FORMULA, UNKNOWN, ZERO, OpInfo, op_cost
from traceflops.ops import TensorSpec


def f32(*dims):
    return TensorSpec("float32", tuple(dims))


def cost(op_type, inputs, outputs=(), **attrs):
    return op_cost(OpInfo(op_type, list(inputs), list(outputs), attrs))


def test_matmul_and_transposes():
    c = cost("MatMul", [f32(4, 16), f32(16, 8)], [f32(4, 8)])
    assert (c.macs, c.flops, c.bytes, c.source) == (512, 1024, (64 + 128 + 32) * 4, FORMULA)
    # transpose_b: B is [N, K]
    assert cost("MatMul", [f32(4, 16), f32(8, 16)], transpose_b=True).macs == 512
    assert cost("MatMul", [f32(16, 4), f32(16, 8)], transpose_a=True).macs == 512
    # K disagrees: shapes do not fit, so unknown rather than a guess
    assert cost("MatMul", [f32(4, 16), f32(8, 16)]).source == UNKNOWN


def test_fused_matmul_counts_its_epilogue():
    c = cost("_MklNativeFusedMatMul", [f32(4, 16), f32(16, 8), f32(8)], [f32(4, 8)],
             fused_ops=["BiasAdd", "Relu"])
    # 512 MACs -> 1024 FLOPs, + bias add 32 + relu 32
    assert (c.macs, c.flops) == (512, 1088)
    gelu = cost("_FusedMatMul", [f32(4, 16), f32(16, 8), f32(8)], [f32(4, 8)],
                fused_ops=["BiasAdd", "GeluApproximate"])
    assert gelu.flops == 1024 + 32 + 9 * 32
    unknown = cost("_FusedMatMul", [f32(4, 16), f32(16, 8)], [f32(4, 8)], fused_ops=["Mystery"])
    assert unknown.source == UNKNOWN


def test_batch_matmul_broadcasts_batch_dims():
    c = cost("BatchMatMulV2", [f32(3, 1, 5, 7), f32(4, 7, 2)], adj_x=False, adj_y=False)
    assert c.macs == 3 * 4 * 5 * 2 * 7
    assert cost("_MklBatchMatMulV2", [f32(2, 7, 5), f32(2, 2, 7)], adj_x=True, adj_y=True).macs == 2 * 5 * 2 * 7


def test_einsum_equations():
    # attention scores: b=3 heads=2 q=20 k=20 d=4
    c = cost("Einsum", [f32(3, 20, 2, 4), f32(3, 20, 2, 4)], equation="aecd,abcd->acbe")
    assert (c.macs, c.flops) == (3 * 20 * 2 * 4 * 20, 2 * 3 * 20 * 2 * 4 * 20)
    assert cost("_MklEinsum", [f32(6, 5, 4), f32(4, 3)], equation="...k,kn->...n").macs == 6 * 5 * 4 * 3
    # one operand: a sum over j is (elements - outputs) adds; a transpose is free
    assert cost("Einsum", [f32(6, 5)], equation="ij->i").flops == 30 - 6
    assert cost("Einsum", [f32(6, 5)], equation="ij->ji").flops == 0
    assert cost("Einsum", [f32(6, 5)]).source == UNKNOWN  # no equation attribute


def test_convolutions():
    # Conv2D NHWC, 3x3, 4 -> 5 channels, output [2,6,6,5]
    c = cost("Conv2D", [f32(2, 12, 12, 4), f32(3, 3, 4, 5)], [f32(2, 6, 6, 5)])
    assert c.macs == 2 * 6 * 6 * 5 * 3 * 3 * 4
    # grouped: filter in-channels = 4 / 2 groups
    assert cost("Conv2D", [f32(2, 12, 12, 4), f32(3, 3, 2, 6)], [f32(2, 10, 10, 6)]).macs == 2 * 10 * 10 * 6 * 9 * 2
    c3 = cost("_MklNativeFusedConv3D", [f32(2, 6, 6, 6, 2), f32(3, 3, 3, 2, 4), f32(4)], [f32(2, 6, 3, 6, 4)],
              fused_ops=["BiasAdd", "Relu"])
    assert c3.macs == 864 * 54 and c3.flops == 2 * 864 * 54 + 2 * 864
    dw = cost("DepthwiseConv2dNative", [f32(2, 12, 12, 4), f32(3, 3, 4, 2)], [f32(2, 10, 10, 8)])
    assert dw.macs == 2 * 10 * 10 * 8 * 9
    # transposed conv: out_backprop [2,12,12,4] x 3x3 x 3 output channels
    tc = cost("Conv2DBackpropInput", [TensorSpec("int32", (4,)), f32(3, 3, 3, 4), f32(2, 12, 12, 4)],
              [f32(2, 25, 25, 3)])
    assert tc.macs == 2 * 12 * 12 * 4 * 9 * 3
    assert cost("Conv2D", [f32(2, 12, 12, 4), f32(3, 3, 4, 5)]).source == UNKNOWN  # no output shape


def test_elementwise_broadcast_and_activations():
    assert cost("AddV2", [f32(4, 1, 8), f32(5, 1)]).flops == 4 * 5 * 8
    assert cost("Relu6", [f32(10)], [f32(10)]).flops == 20
    assert cost("Sigmoid", [f32(10)], [f32(10)]).flops == 40
    assert cost("AddN", [f32(3, 3), f32(3, 3), f32(3, 3)], [f32(3, 3)]).flops == 18


def test_normalization_softmax_pooling_reductions():
    bn = cost("FusedBatchNormV3", [f32(2, 4, 4, 8), f32(8), f32(8), f32(8), f32(8)], [f32(2, 4, 4, 8)],
              is_training=False, data_format="NHWC")
    assert bn.flops == 2 * 256 + 5 * 8
    assert cost("Softmax", [f32(4, 10)], [f32(4, 10)]).flops == 200
    assert cost("MaxPool", [f32(2, 8, 8, 3)], [f32(2, 4, 4, 3)], ksize=[1, 2, 2, 1]).flops == 3 * 96
    assert cost("AvgPool3D", [f32(1, 4, 4, 4, 2)], [f32(1, 2, 2, 2, 2)], ksize=[1, 2, 2, 2, 1]).flops == 8 * 16
    assert cost("Mean", [f32(2, 8, 8, 3), TensorSpec("int32", (2,))], [f32(2, 3)]).flops == 384
    assert cost("Max", [f32(6, 5), TensorSpec("int32", (1,))], [f32(6)]).flops == 24


def test_zero_and_unknown_are_declared():
    reshape = cost("Reshape", [f32(4, 6), TensorSpec("int32", (2,))], [f32(24)])
    assert (reshape.flops, reshape.source, reshape.bytes) == (0, ZERO, 96 + 8 + 96)
    assert "moves" in reshape.note
    mystery = cost("SomeCustomOp", [f32(3)], [f32(3)])
    assert mystery.source == UNKNOWN and mystery.flops is None and mystery.bytes == 24


def test_bytes_use_the_real_dtype():
    bf16 = TensorSpec("bfloat16", (4, 16))
    c = cost("MatMul", [bf16, TensorSpec("bfloat16", (16, 8))], [TensorSpec("bfloat16", (4, 8))])
    assert c.bytes == (64 + 128 + 32) * 2 and c.dtype == "bfloat16"


def test_without_attributes_shapes_decide_and_say_so():
    """A trace recorded elsewhere has no graph: transposes are inferred from which dims agree."""
    c = op_cost(OpInfo("MatMul", [f32(4, 16), f32(8, 16)], [], attrs_known=False))
    assert (c.macs, c.source) == (4 * 8 * 16, "shapes") and "inferred" in c.note
    # square operands: every transpose choice gives the same count, so it is determined
    sq = op_cost(OpInfo("MatMul", [f32(8, 8), f32(8, 8)], [], attrs_known=False))
    assert sq.macs == 512
    # shapes that fit two ways with the same count are determined; with different counts, unknown
    agree = op_cost(OpInfo("BatchMatMulV2", [f32(2, 4, 4), f32(2, 4, 6)], [], attrs_known=False))
    assert agree.macs == 2 * 4 * 6 * 4 and agree.source == "shapes"  # both readings give 96 MACs
    both = op_cost(OpInfo("MatMul", [f32(3, 6), f32(6, 3)], [], attrs_known=False))
    assert both.source == UNKNOWN  # 3x6x3 (no transposes) vs 6x6x3 (both transposed): ambiguous
    fused = op_cost(OpInfo("_FusedMatMul", [f32(4, 16), f32(16, 8), f32(8)], [], attrs_known=False))
    assert (fused.flops, fused.source) == (2 * 4 * 16 * 8, "shapes") and "lower bound" in fused.note
    # with the graph's attributes the same fused op counts its epilogue and is a plain formula
    known = op_cost(OpInfo("_FusedMatMul", [f32(4, 16), f32(16, 8), f32(8)], [], {"fused_ops": ["BiasAdd"]}))
    assert (known.flops, known.source) == (2 * 4 * 16 * 8 + 32, FORMULA)


def test_layer_norm_and_mean():
    assert cost("_MklLayerNorm", [f32(2, 10, 16), f32(16), f32(16)], [f32(2, 10, 16)]).flops == 8 * 320


# ---------------------------------------------------------------- the registry

import pytest  # noqa: E402

import traceflops  # noqa: E402
from traceflops import costs  # noqa: E402
from traceflops.costs import docs as costs_docs  # noqa: E402
from traceflops.costs.epilogues import epilogue_flops  # noqa: E402
from traceflops.costs.registry import (FORMULAS, ZERO_OPS, declare_zero, family_of, lookup, register,  # noqa: E402
                                       register_elementwise, unregister)


def test_duplicate_registration_raises():
    with pytest.raises(ValueError, match="already registered"):
        @register("MatMul", family="matmul/einsum")
        def again(op):
            """A second MatMul formula."""
            return 0, None
    with pytest.raises(ValueError, match="already registered"):
        register_elementwise("Relu", 1)
    with pytest.raises(ValueError, match="already registered"):
        declare_zero("AddV2", reason="not really")  # zero against a formula
    with pytest.raises(ValueError, match="already registered"):
        register_elementwise("_MklNativeTanh", 1, variants=False)  # a generated spelling is taken too
    # a refused registration leaves nothing behind, not even its new op types
    with pytest.raises(ValueError):
        declare_zero("BrandNewZeroOp", "Reshape", reason="half new")
    assert lookup("BrandNewZeroOp") is None
    with pytest.raises(ValueError, match="unknown op family"):
        register("SomethingNew", family="elementwsie")


def test_oneDNN_spellings_are_generated():
    for base, variants in {"Conv2D": ["_MklConv2D", "_MklNativeConv2D"],
                           "_FusedConv2D": ["_MklFusedConv2D", "_MklNativeFusedConv2D"],
                           "MatMul": ["_MklMatMul", "_MklNativeMatMul"],
                           "_MklLayerNorm": ["_MklNativeLayerNorm"], "Relu": ["_MklRelu", "_MklNativeRelu"],
                           "Reshape": ["_MklReshape", "_MklNativeReshape"]}.items():
        for variant in variants:
            entry = lookup(variant)
            assert entry is not None and entry.variant_of == base, variant
            assert entry.family == lookup(base).family and entry.kind == lookup(base).kind
    assert FORMULAS["_MklNativeFusedConv2D"] is FORMULAS["Conv2D"]
    # a generated spelling prices like its op type (the _Mkl elementwise spellings crashed before)
    assert cost("_MklAddV2", [f32(4, 8), f32(8)]).flops == 32
    assert cost("_MklNativeSigmoid", [f32(10)], [f32(10)]).flops == 40
    assert ZERO_OPS["_MklNativeTranspose"] == ZERO_OPS["Transpose"]


def test_family_of_agrees_with_every_elementwise_formula():
    """The drift bug: Tan, Asin, Sinh, IsNan had formulas but plotted as `other`."""
    from traceflops.roofline import op_family
    elementwise = [t for t in FORMULAS if costs.ELEMENTWISE_FLOPS.get(t) is not None]
    assert {"Tan", "Asin", "Sinh", "IsNan", "_MklNativeTan"} <= set(elementwise)
    for op_type in elementwise + ["AddN", "_MklAddN"]:
        assert family_of(op_type) == "elementwise" == op_family(op_type), op_type
    for entry in costs.entries():
        assert op_family(entry.op_type) == entry.family
    assert family_of("__inference_train_step_287") == "call"
    assert family_of("NoSuchOp") == "other"


def test_every_registered_op_prices_without_crashing():
    x = f32(2, 3, 4, 5)
    for op_type in list(FORMULAS) + list(ZERO_OPS):
        c = cost(op_type, [x, x], [x])
        assert c.source in (FORMULA, ZERO, UNKNOWN), op_type


def test_epilogues_come_from_the_elementwise_registrations():
    assert epilogue_flops("tf", "Relu") == costs.ELEMENTWISE_FLOPS["Relu"] == epilogue_flops("cudnn", "kRelu")
    assert epilogue_flops("cublaslt", "BIAS_GELU") == (costs.ELEMENTWISE_FLOPS["BiasAdd"]
                                                      + costs.ELEMENTWISE_FLOPS["GeluApproximate"])
    assert epilogue_flops("tf", "_FusedHardSwish") == costs.ELEMENTWISE_FLOPS["Swish"]
    assert epilogue_flops("cublaslt", "DEFAULT") == 0
    assert epilogue_flops("cudnn", "kMystery") is None and epilogue_flops("tf", "Mystery") is None


def test_transcendentals_are_counted_beside_flops():
    c = cost("Tanh", [f32(10)], [f32(10)])
    assert (c.flops, c.transcendentals) == (10, 10)
    assert cost("Relu", [f32(10)], [f32(10)]).transcendentals == 0


def test_docs_table_is_generated_from_the_registry():
    assert costs_docs.documented_table() == costs_docs.formulas_table(), \
        "docs/formulas.md is stale: run python -m traceflops.costs.docs --write"


def test_one_registration_adds_an_elementwise_op_everywhere():
    """The docs' example: one line, then the plot family, the docs table and supported_ops() have it."""
    from traceflops.roofline import op_family
    assert "FakeCbrt" not in set(traceflops.supported_ops()["op_type"])
    register_elementwise("FakeCbrt", 3, transcendentals=1)
    try:
        assert family_of("FakeCbrt") == op_family("FakeCbrt") == "elementwise"
        assert family_of("_MklNativeFakeCbrt") == "elementwise"
        table = traceflops.supported_ops().set_index("op_type")
        assert table.loc["FakeCbrt", "kind"] == FORMULA and table.loc["FakeCbrt", "family"] == "elementwise"
        assert table.loc["_MklFakeCbrt", "variant_of"] == "FakeCbrt"
        row = [line for line in costs_docs.formulas_table().splitlines() if "FakeCbrt" in line]
        assert row and "3 FLOPs per output element" in row[0]
        assert cost("FakeCbrt", [f32(4)], [f32(4)]).flops == 12
    finally:
        unregister("FakeCbrt")
    assert lookup("FakeCbrt") is None and lookup("_MklFakeCbrt") is None
    assert family_of("FakeCbrt") == "other"
    assert costs_docs.documented_table() == costs_docs.formulas_table()


def test_register_formula_for_a_custom_op():
    @traceflops.register_formula("MyCustomOp", family="matmul/einsum")
    def my_custom_op(op):
        """2 x 7 FLOPs per output element, 7 MACs."""
        out = op.output(0)
        return None if out is None else (14 * out.num_elements, 7 * out.num_elements)
    try:
        c = cost("MyCustomOp", [f32(3)], [f32(5)])
        assert (c.flops, c.macs, c.source, c.note) == (70, 35, FORMULA, "my_custom_op")
        assert lookup("_MklMyCustomOp") is None  # a user's op gets no oneDNN spellings
        table = traceflops.supported_ops().set_index("op_type")
        assert table.loc["MyCustomOp", "description"] == "2 x 7 FLOPs per output element, 7 MACs."
        assert cost("MyCustomOp", [f32(3)]).source == UNKNOWN  # the formula returned None
    finally:
        unregister("MyCustomOp")
    assert cost("MyCustomOp", [f32(3)], [f32(5)]).source == UNKNOWN


def test_supported_ops_lists_formulas_and_zeros():
    table = traceflops.supported_ops()
    assert list(table.columns) == ["op_type", "family", "kind", "description", "variant_of"]
    assert table["op_type"].is_unique
    rows = table.set_index("op_type")
    assert rows.loc["Reshape", "kind"] == ZERO and "moves" in rows.loc["Reshape", "description"]
    assert rows.loc["Conv2D", "family"] == "conv" and rows.loc["Conv2D", "description"].startswith("2·MACs")
    assert set(table["family"]) <= set(costs.FAMILIES)


def test_the_roofline_plot_has_a_colour_for_every_compute_family():
    from traceflops.report.plots import FAMILY_COLOURS
    from traceflops.roofline import FAMILIES
    assert FAMILIES == list(costs.COMPUTE_FAMILIES) and FAMILIES[-1] == "other"
    assert set(FAMILIES) <= set(FAMILY_COLOURS)


def test_hlo_opcodes_have_registry_families():
    from traceflops.costs.hlo import OPCODES, opcode_family
    assert {spec.family for spec in OPCODES.values()} <= set(costs.FAMILIES)
    assert opcode_family("fusion:kLoop") == "elementwise" and opcode_family("dot") == "matmul/einsum"
    assert opcode_family("tanh") == "elementwise" and opcode_family("bitcast") == "data movement"
