"""Every HLO opcode XLA knows has a formula or a declared zero reason in the one registry (issue 21, scope 5)."""
from pathlib import Path

import pytest

import traceflops
from traceflops.costs.hlo.opcodes import OPCODES

TRACES = Path(__file__).resolve().parent.parent / "traces"

# XLA's HloOpcode list, spelt as HLO text prints the opcodes (xla/hlo/ir/hlo_opcode.h).
XLA_OPCODES = """
abs add add-dependency after-all all-gather all-gather-done all-gather-start all-reduce all-reduce-done
all-reduce-start all-to-all and async-done async-start async-update atan2 batch-norm-grad
batch-norm-inference batch-norm-training bitcast bitcast-convert broadcast call cbrt ceil cholesky clamp
collective-broadcast collective-permute collective-permute-done collective-permute-start compare complex
composite concatenate conditional constant convert convolution copy copy-done copy-start cosine
count-leading-zeros custom-call divide domain dot dynamic-reshape dynamic-slice dynamic-update-slice erf
exponential exponential-minus-one fft floor fusion gather get-dimension-size get-tuple-element imag infeed
iota is-finite log log-plus-one logistic map maximum minimum multiply negate not opt-barrier or outfeed pad
parameter partition-id popcnt power ragged-all-to-all ragged-dot real recv recv-done reduce
reduce-precision reduce-scatter reduce-window remainder replica-id reshape reverse rng rng-bit-generator
rng-get-and-update-state round-nearest-afz round-nearest-even rsqrt scatter select select-and-scatter send
send-done set-dimension-size shift-left shift-right-arithmetic shift-right-logical sign sine slice sort
sqrt stochastic-convert subtract tan tanh top-k transpose triangular-solve tuple while xor
""".split()


def test_the_list_is_xlas_whole_list():
    assert len(XLA_OPCODES) == len(set(XLA_OPCODES)) == 124


def test_every_xla_opcode_has_a_formula_or_a_zero_reason():
    missing = [opcode for opcode in XLA_OPCODES if opcode not in OPCODES]
    assert not missing
    for opcode in XLA_OPCODES:
        entry = OPCODES[opcode]
        assert entry.kind in ("formula", "zero"), opcode
        assert entry.description, opcode


def test_the_registry_spells_opcodes_as_xla_does():
    """No made-up spellings (`sin`, `cos`, `clz`) beside XLA's: every `hlo:` key is an XLA opcode or a fusion kind."""
    extra = [key for key in OPCODES if key not in XLA_OPCODES and not key.startswith("fusion:")]
    assert not extra


def test_supported_ops_lists_every_hlo_opcode():
    listed = set(traceflops.supported_ops()["op_type"])
    assert {f"hlo:{opcode}" for opcode in XLA_OPCODES} <= listed


def test_sine_and_cosine_are_transcendentals():
    for opcode in ("sine", "cosine"):
        assert OPCODES[opcode].family == "elementwise" and OPCODES[opcode].kind == "formula"


def test_mi300_elementwise_is_fully_priced():
    """Its loop fusions hold `sine` and `cosine`: 25% of its op time was unknown before they had formulas."""
    result = traceflops.analyze(TRACES / "gpu" / "jax-mi300-elementwise.xplane.pb")
    assert result.summary["coverage"] == pytest.approx(1.0)
    assert not (result.ops["flops_source"] == "unknown").any()
    notes = " ".join(result.ops["note"].astype(str))
    assert "transcendental" in notes


def _module():
    """entry: a f32[64,32], w f32[4,32,16] (4 groups), sizes s32[4] -> ragged-dot f32[64,16];
    top-k of a (k = 4); batch-norm-training of x f32[8,6,6,3] over its 3 features; sine of a."""
    from traceflops.trace import hlo_schema as hs
    f32, s32 = 11, 4
    m = hs.HloModuleProto(name="jit_ops", id=7, entry_computation_id=1)
    entry = m.computations.add(name="main", id=1)
    add = entry.instructions.add
    add(name="a", opcode="parameter", id=1, shape=hs.ShapeProto(element_type=f32, dimensions=[64, 32]))
    add(name="w", opcode="parameter", id=2, shape=hs.ShapeProto(element_type=f32, dimensions=[4, 32, 16]))
    add(name="sizes", opcode="parameter", id=3, shape=hs.ShapeProto(element_type=s32, dimensions=[4]))
    ragged = add(name="ragged-dot.1", opcode="ragged-dot", id=4, operand_ids=[1, 2, 3],
                 shape=hs.ShapeProto(element_type=f32, dimensions=[64, 16]))
    ragged.ragged_dot_dimension_numbers.dot_dimension_numbers.lhs_contracting_dimensions.append(1)
    ragged.ragged_dot_dimension_numbers.dot_dimension_numbers.rhs_contracting_dimensions.append(1)
    ragged.ragged_dot_dimension_numbers.lhs_ragged_dimensions.append(0)
    ragged.ragged_dot_dimension_numbers.rhs_group_dimensions.append(0)
    topk = add(name="top-k.1", opcode="top-k", id=5, operand_ids=[1])
    topk.shape.tuple_shapes.add(element_type=f32, dimensions=[64, 4])
    topk.shape.tuple_shapes.add(element_type=s32, dimensions=[64, 4])
    add(name="x", opcode="parameter", id=6, shape=hs.ShapeProto(element_type=f32, dimensions=[8, 6, 6, 3]))
    add(name="scale", opcode="parameter", id=7, shape=hs.ShapeProto(element_type=f32, dimensions=[3]))
    add(name="offset", opcode="parameter", id=8, shape=hs.ShapeProto(element_type=f32, dimensions=[3]))
    bn = add(name="batch-norm-training.1", opcode="batch-norm-training", id=9, operand_ids=[6, 7, 8])
    for dims in ([8, 6, 6, 3], [3], [3]):
        bn.shape.tuple_shapes.add(element_type=f32, dimensions=dims)
    add(name="sine.1", opcode="sine", id=10, operand_ids=[1],
        shape=hs.ShapeProto(element_type=f32, dimensions=[64, 32]))
    return m


def test_new_opcode_formulas_count_by_hand():
    from traceflops.costs.hlo import module_costs
    table = module_costs(_module()).set_index("hlo_op")
    assert table.loc["ragged-dot.1", "flops"] == 2 * 64 * 32 * 16  # each row of a meets one group's matrix
    assert table.loc["ragged-dot.1", "macs"] == 64 * 32 * 16
    assert table.loc["top-k.1", "flops"] == 64 * 32 * 2  # n x ceil(log2 k) per row
    assert table.loc["batch-norm-training.1", "flops"] == 5 * 8 * 6 * 6 * 3 + 5 * 3
    assert table.loc["sine.1", "flops"] == 64 * 32
    assert (table.loc[["ragged-dot.1", "top-k.1", "batch-norm-training.1", "sine.1"], "flops_source"] == "xla").all()
