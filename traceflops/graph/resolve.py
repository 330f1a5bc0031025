"""Stage 3: what each executed TensorFlow op was, as an `OpInfo` ready to be priced.

`describe_tf_ops(groups, graph)` takes the distinct (op name, op type, recorded
input shapes) of the executions to price and returns one description per
group: the op's attributes and its input and output tensors, from the best
source first (docs/design.md):

1. the trace's own `shape` stat (host tracer level 3), entry by entry;
2. the same trace seen from the consumer side: an op's output k is some
   consumer's input k', so every recorded consumer shape is `observe`d on the
   graph before any op is described;
3. the executed graph written at capture: edges, `_input_shapes`, static
   FuncGraph shapes, constants and variable handles.

Without an executed graph (a trace recorded elsewhere) attributes are unknown
(`attrs_known=False`), and formulas infer from shapes what they can.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..ops import OpInfo
from ..trace.naming import TF_NAMING
from .executed import ExecutedGraph
from .layers import MODEL_LEVEL, LayerIndex
from .shapes import parse_shape_list


@dataclass
class TfOpDescription:
    """One distinct TF op execution group, resolved: what the costs stage prices."""
    info: OpInfo
    device: str  # the graph node's device, "" when unknown
    layer: str  # the Keras layer that owns the op (graph/layers.py)


def _owning_layer(op_name: str, node, graph: Optional[ExecutedGraph]) -> str:
    """The op's layer. A grappler-fused op is named after the LAST op it fused (a conv fused with the
    next layer's Relu is `model/activation/Relu`), so its owner is the layer of its weights (input 1)."""
    layers = graph.layers if graph is not None else LayerIndex()
    layer = layers.layer_of(op_name)
    if node is None or not node.attrs.get("fused_ops") or len(node.inputs) < 2 or not layers:
        return layer
    owner = layers.layer_of(TF_NAMING.node_of(node.inputs[1]))
    return owner if owner != MODEL_LEVEL else layer


def observe_consumers(groups, graph: ExecutedGraph) -> None:
    """Record every recorded input shape on the graph, so producers learn their outputs."""
    for op_name, op_type, shape in groups:
        node = graph.node(op_name, op_type)
        specs = parse_shape_list(shape)
        if node is not None and specs is not None:
            graph.observe(node, specs)


def _merge_inputs(recorded: Optional[list], from_graph: list) -> list:
    """Trace shapes win; the graph fills the entries the trace left empty (handles among them)."""
    if recorded is None:
        return from_graph
    return [t if t is not None else (from_graph[i] if i < len(from_graph) else None)
            for i, t in enumerate(recorded)]


def describe_tf_op(op_name: str, op_type: str, shape: Optional[str],
                   graph: Optional[ExecutedGraph]) -> TfOpDescription:
    """The description of one op group; `graph` None means no executed graph (offline trace)."""
    recorded = parse_shape_list(shape) if shape else None
    node = graph.node(op_name, op_type) if graph is not None else None
    layer = _owning_layer(op_name, node, graph)
    if node is None:
        return TfOpDescription(OpInfo(op_type, recorded or [], [], {}, attrs_known=False), "", layer)
    inputs = _merge_inputs(recorded, graph.input_specs(node))
    return TfOpDescription(OpInfo(op_type, inputs, graph.output_specs(node), node.attrs), node.device, layer)


def describe_tf_ops(groups: list, graph: Optional[ExecutedGraph]) -> list:
    """`groups`: [(op_name, op_type, shape text or None)]; one `TfOpDescription` each, in order."""
    if graph is not None:
        observe_consumers(groups, graph)
    return [describe_tf_op(op_name, op_type, shape, graph) for op_name, op_type, shape in groups]
