"""Real TensorFlow runs on CPU: exact MACs per layer, the join, and both shape sources.

Expected MACs are textbook counts from the layer configs:
conv = output elements x kernel volume x input channels / groups;
transposed conv = input elements x kernel volume x output channels;
dense = batch rows x in x out; attention = projections + QK^T + AV + output.
"""
import json
from pathlib import Path

import pytest

import traceflops
from traceflops.costs import FORMULAS

pytestmark = pytest.mark.tf

SEQ_BATCH, IMG_BATCH, VOL_BATCH = 3, 2, 2
SEQ_EXPECTED = {
    "dense3d": SEQ_BATCH * 20 * 16 * 8,
    "c1s": SEQ_BATCH * 9 * 6 * 3 * 16,          # stride 2: (20-3)//2+1 = 9 outputs
    "c1causal": SEQ_BATCH * 20 * 6 * 3 * 16,    # causal keeps 20 outputs
    "c1dsame": SEQ_BATCH * 20 * 6 * 3 * 16,
    # 3 projections 16->2x4, scores b*h*q*k*d, context b*h*q*k*d, output 8->16
    "mha": 3 * (SEQ_BATCH * 20 * 16 * 8) + 2 * (SEQ_BATCH * 2 * 20 * 20 * 4) + SEQ_BATCH * 20 * 8 * 16,
}
IMG_EXPECTED = {
    "c2same": IMG_BATCH * 6 * 6 * 5 * (3 * 3 * 4),
    "c2dil": IMG_BATCH * 8 * 10 * 5 * (3 * 2 * 4),  # dilation 2: extents 5x3 -> 8x10 outputs
    "dw": IMG_BATCH * 10 * 10 * 8 * 9,              # depth multiplier 2
    "sep": IMG_BATCH * 10 * 10 * 4 * 9 + IMG_BATCH * 10 * 10 * 7 * 4,
    "tconv": IMG_BATCH * 12 * 12 * 4 * (3 * 3) * 3,
    "dense2d": IMG_BATCH * 576 * 5,
}
VOL_EXPECTED = {
    "c3": VOL_BATCH * 6 * 3 * 6 * 4 * (27 * 2),
    "c3d": VOL_BATCH * 4 * 4 * 4 * 4 * (8 * 2),
}


def seq_model(keras):
    L = keras.layers
    x = keras.Input((20, 16))
    return keras.Model(x, [
        L.Dense(8, name="dense3d")(x),
        L.Conv1D(6, 3, strides=2, name="c1s")(x),
        L.Conv1D(6, 3, dilation_rate=2, padding="causal", name="c1causal")(x),
        L.Conv1D(6, 3, dilation_rate=2, padding="same", name="c1dsame")(x),
        L.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(x, x)], name="seq")


def img_model(keras):
    L = keras.layers
    y = keras.Input((12, 12, 4))
    return keras.Model(y, [
        L.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="c2same")(y),
        L.Conv2D(5, (3, 2), padding="valid", dilation_rate=2, name="c2dil")(y),
        L.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(y),
        L.SeparableConv2D(7, 3, name="sep")(y),
        L.Conv2DTranspose(3, 3, strides=2, name="tconv")(y),
        L.Dense(5, name="dense2d")(L.Flatten(name="flat")(y))], name="img")


def vol_model(keras):
    L = keras.layers
    z = keras.Input((6, 6, 6, 2))
    return keras.Model(z, [L.Conv3D(4, 3, strides=(1, 2, 1), padding="same", name="c3")(z),
                           L.Conv3D(4, 2, dilation_rate=2, name="c3d")(z)], name="vol")


def macs_by_layer(ops):
    layer = ops["layer"].str.replace(r"_\d+$", "", regex=True)  # Keras scopes add "_1"
    contractions = ops[ops["macs"].notna()]
    return (contractions["macs"] * contractions["occurrences"]).groupby(layer[contractions.index]).sum()


@pytest.fixture(scope="module")
def keras(tf_runtime):
    import keras
    return keras


@pytest.fixture(scope="module")
def seq_result(keras):
    return traceflops.profile(seq_model(keras), batch_size=SEQ_BATCH, steps=2, warmup=1)


def plain(op_type: str) -> str:
    """The op type without oneDNN's prefix: TF 2.21 runs `_MklNative*` kernels only on CPUs where it
    enables oneDNN by default (AVX-512 VNNI/BF16, AMX), plain ones on AVX2 machines."""
    for prefix in ("_MklNative", "_Mkl"):
        if op_type.startswith(prefix):
            rest = op_type[len(prefix):]
            return "_" + rest if rest.startswith("Fused") else rest
    return op_type


@pytest.fixture(scope="module")
def img_result(keras):
    return traceflops.profile(img_model(keras), batch_size=IMG_BATCH, steps=2, warmup=1)


@pytest.mark.parametrize("expected", [SEQ_EXPECTED], ids=["seq"])
def test_sequence_layers_exact_macs(seq_result, expected):
    got = macs_by_layer(seq_result.ops) / seq_result.summary["steps"]
    assert {k: int(got[k]) for k in expected} == expected
    types = set(seq_result.ops["op_type"])
    # attention ran as einsum + batch matmul (oneDNN's `_Mkl` kernels on CPUs where TF enables it)
    assert {"Einsum", "BatchMatMulV2"} <= {plain(t) for t in types}
    assert seq_result.summary["coverage"] >= 0.99


def test_image_layers_exact_macs(img_result):
    got = macs_by_layer(img_result.ops) / img_result.summary["steps"]
    assert {k: int(got[k]) for k in IMG_EXPECTED} == IMG_EXPECTED
    assert "Conv2DBackpropInput" in {plain(t) for t in img_result.ops["op_type"]}
    assert img_result.summary["coverage"] >= 0.99
    assert img_result.summary["macs_per_step"] == sum(IMG_EXPECTED.values())


def test_volume_layers_exact_macs(keras):
    result = traceflops.profile(vol_model(keras), batch_size=VOL_BATCH, steps=2, warmup=1)
    got = macs_by_layer(result.ops) / result.summary["steps"]
    assert {k: int(got[k]) for k in VOL_EXPECTED} == VOL_EXPECTED
    assert result.summary["coverage"] >= 0.99


def test_no_op_beats_the_compute_ceiling(seq_result, img_result):
    """An op above the measured compute peak would be a counting error."""
    for result in (seq_result, img_result):
        ops = result.ops
        assert "efficiency" in ops.columns and result.summary["roofline"]["peak_gflops_per_s"] > 0
        compute_bound = ops[ops["bound"] == "compute"]
        assert (compute_bound["gflops_per_s"] <= 1.05 * compute_bound["attainable_gflops_per_s"]).all()
        assert not any(op["kind"] == "compute" for op in result.summary["roofline"]["above_ceiling_ops"])


def test_join_every_compute_op_has_a_time_and_steps_hold_their_ops(img_result):
    record = json.loads((Path(img_result.run_dir) / "traceflops_graph.json").read_text())
    compute = {n["name"] for n in record["nodes"] if n["op"] in FORMULAS}
    measured = img_result.ops.set_index("op_name")["total_time_us"]
    assert compute and compute <= set(measured.index)
    assert (measured[list(compute)] > 0).all()
    events = img_result.trace.events
    chosen = sorted(img_result.ops["occurrences"].unique())
    assert chosen == [img_result.summary["steps"]]  # every op ran once per profiled step
    steps = events[events["kind"] == "step"]
    for _, step in steps.iterrows():
        ops = events[(events["kind"] == "op") & (events["step"] == step["step"])]
        assert 0 < ops["self_ps"].sum() <= step["duration_ps"]


def test_both_shape_sources(img_result, keras):
    """Level 3 trace shapes and the executed graph each give the counts on their own."""
    events = img_result.trace.events
    ops = events[events["kind"] == "op"]
    conv = ops[ops["op_type"].map(plain) == "_FusedConv2D"]
    assert conv["shape"].notna().all()  # trace source: shapes recorded at level 3
    record = json.loads((Path(img_result.run_dir) / "traceflops_graph.json").read_text())
    fused = [n for n in record["nodes"] if plain(n["op"]) == "_FusedConv2D"]
    assert fused and all(n["attrs"]["fused_ops"] for n in fused)  # graph source: attributes
    assert any(n["attrs"].get("strides") == [1, 2, 2, 1] for n in fused)
    # level 2: no shapes in the trace, so every shape comes from the graph; counts unchanged
    level2 = traceflops.profile(img_model(keras), batch_size=IMG_BATCH, steps=2, warmup=1,
                                host_tracer_level=2)
    l2_ops = level2.trace.events[level2.trace.events["kind"] == "op"]
    assert l2_ops["shape"].isna().all()
    got = macs_by_layer(level2.ops) / level2.summary["steps"]
    assert {k: int(got[k]) for k in IMG_EXPECTED} == IMG_EXPECTED


def test_dense_2d_and_summary_files(keras, tmp_path):
    model = keras.Sequential([keras.Input((16,)), keras.layers.Dense(8, activation="relu", name="fc")], name="mlp")
    result = traceflops.profile(model, out=tmp_path / "out", batch_size=4, steps=3, warmup=1)
    fc = result.ops[result.ops["op_type"].map(plain) == "_FusedMatMul"].iloc[0]
    assert (fc["macs"], fc["flops"], fc["occurrences"]) == (4 * 16 * 8, 2 * 4 * 16 * 8 + 2 * 32, 3)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    for key in ("model", "device", "batch_size", "steps", "step_time_us", "flops_per_step", "coverage"):
        assert key in summary
    assert (summary["model"], summary["device"], summary["batch_size"], summary["steps"]) == ("mlp", "CPU:0", 4, 3)
    assert summary["flops_per_step"] == 2 * 4 * 16 * 8 + 2 * 32
    header = (tmp_path / "out" / "ops.csv").read_text().splitlines()[0].split(",")
    for column in ("op_name", "op_type", "layer", "device", "occurrences", "flops", "macs", "bytes",
                   "total_time_us", "avg_time_us", "gflops_per_s", "gbytes_per_s", "intensity", "flops_source"):
        assert column in header
    logdir_traces = list((tmp_path / "out" / "logdir").rglob("*.xplane.pb"))
    assert len(logdir_traces) == 1  # the TensorBoard logdir stays in the output directory
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".traceflops")]


def test_h5_and_savedmodel_with_integer_inputs_in_embedding_range(keras, tmp_path):
    tokens = keras.Input((10,), dtype="int32")
    embedded = keras.layers.Embedding(50, 8, name="emb")(tokens)
    model = keras.Model(tokens, keras.layers.Dense(4, name="fc")(keras.layers.Flatten()(embedded)), name="embm")
    model.save(tmp_path / "m.h5")
    model.export(str(tmp_path / "saved"))
    for path in (tmp_path / "m.h5", tmp_path / "saved"):
        # a token >= 50 would make the embedding lookup fail on CPU: the run itself checks the range
        result = traceflops.profile(path, batch_size=3, steps=2, warmup=1, roofline=False)
        fc = result.ops[result.ops["macs"].notna()]
        # a Keras file gives the layer's own name; a SavedModel has no Keras layers, only TF's scopes
        assert list(fc["macs"]) == [3 * 80 * 4] and list(fc["layer"]) == (["fc"] if path.suffix else ["fc_1"])
        assert result.summary["coverage"] == 1.0
