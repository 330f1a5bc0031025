"""graph/match.py without TensorFlow: trace names joined to a rebuilt graph's by name and by structure."""
from traceflops.graph.match import UNMATCHED_SCOPE, join_rebuilt, match_names, strip_calls


def test_strip_calls():
    assert strip_calls("StatefulPartitionedCall/seq/dense/MatMul") == "seq/dense/MatMul"
    assert strip_calls("StatefulPartitionedCall_3/PartitionedCall/x") == "x"
    assert strip_calls("StatefulPartitionedCall") == "StatefulPartitionedCall"


TRACE = [("StatefulPartitionedCall/sequential_2_1/conv2d_2_1/Relu", "_FusedConv2D"),
         ("StatefulPartitionedCall/sequential_2_1/conv2d_3_1/Relu", "_FusedConv2D"),
         ("StatefulPartitionedCall/sequential_2_1/conv2d_3_1/convolution/ReadVariableOp", "ReadVariableOp"),
         ("StatefulPartitionedCall/sequential_2_1/dense_3_1/BiasAdd", "_FusedMatMul"),
         ("StatefulPartitionedCall/adam/Add_3", "AddV2"),
         ("StatefulPartitionedCall/sequential_2_1/max_pooling2d_1_1/MaxPool2d", "MaxPool")]
GRAPH = [("StatefulPartitionedCall/sequential_1/conv2d_1/Relu", "_FusedConv2D"),
         ("StatefulPartitionedCall/sequential_1/conv2d_1/convolution/ReadVariableOp", "ReadVariableOp"),
         ("StatefulPartitionedCall/sequential_1/conv2d_1_2/Relu", "_FusedConv2D"),
         ("StatefulPartitionedCall/sequential_1/conv2d_1_2/convolution/ReadVariableOp", "ReadVariableOp"),
         ("StatefulPartitionedCall/sequential_1/dense_1/BiasAdd", "BiasAdd"),  # another op type
         ("StatefulPartitionedCall/adam/Add_3", "AddV2"),
         ("StatefulPartitionedCall/adam/Add_2", "AddV2"),
         ("StatefulPartitionedCall/sequential_1/max_pooling2d_1/MaxPool2d", "MaxPool")]


def test_layers_paired_in_creation_order_and_types_never_crossed():
    result = match_names(TRACE, GRAPH)
    assert result.names[TRACE[0][0]] == GRAPH[0][0]  # first conv with first conv
    assert result.names[TRACE[1][0]] == GRAPH[2][0]
    assert result.names[TRACE[2][0]] == GRAPH[3][0]
    assert TRACE[3][0] not in result.names  # _FusedMatMul never priced from a BiasAdd
    assert result.names[TRACE[4][0]] == TRACE[4][0]  # same name: by name
    assert result.names[TRACE[5][0]] == GRAPH[7][0]


def test_renamed_record_and_counts():
    record = {"nodes": [{"name": n, "op": o, "inputs": ["StatefulPartitionedCall/adam/Add_2"], "attrs": {}}
                        for n, o in GRAPH],
              "static_tensors": {f"{GRAPH[0][0]}:0": {"dtype": "float32", "dims": [4, 10, 10, 4]}},
              "layer_scopes": {"sequential_1/conv2d_1": "conv2d"}}
    events = TRACE + [TRACE[0]] * 2
    renamed, counts = join_rebuilt(record, events)
    names = {n["name"] for n in renamed["nodes"]}
    assert TRACE[0][0] in names and UNMATCHED_SCOPE + GRAPH[6][0] in names
    assert renamed["nodes"][0]["inputs"] == [UNMATCHED_SCOPE + GRAPH[6][0]]
    assert renamed["static_tensors"] == {f"{TRACE[0][0]}:0": {"dtype": "float32", "dims": [4, 10, 10, 4]}}
    assert renamed["layer_scopes"] == {"sequential_2_1/conv2d_2_1": "conv2d"}
    assert counts == {"by_name": 1, "by_structure": 6, "unmatched": 1, "unmatched_op_types": {"_FusedMatMul": 1}}
