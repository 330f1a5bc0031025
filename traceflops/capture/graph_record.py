"""Capture: the executed graph (run metadata partition graphs) as plain JSON-able data."""
from __future__ import annotations

from .tf import import_tf


def _attr_to_python(attr):
    which = attr.WhichOneof("value")
    if which is None:
        return None
    if which == "list":
        lst = attr.list
        for kind in ("i", "f", "b"):
            values = getattr(lst, kind)
            if len(values):
                return list(values)
        if len(lst.s):
            return [s.decode("utf-8", "replace") for s in lst.s]
        if len(lst.type):
            return [_dtype_name(t) for t in lst.type]
        if len(lst.shape):
            return [_shape_dims(s) for s in lst.shape]
        return []
    value = getattr(attr, which)
    if which == "s":
        return value.decode("utf-8", "replace")
    if which == "type":
        return _dtype_name(value)
    if which == "shape":
        return _shape_dims(value)
    if which == "tensor":
        return {"dtype": _dtype_name(value.dtype), "dims": _shape_dims(value.tensor_shape)}
    if which == "func":
        return value.name
    if which in ("i", "f", "b"):
        return value
    return None


def _dtype_name(enum_value) -> str:
    tf = import_tf()
    try:
        return tf.dtypes.as_dtype(enum_value).name
    except TypeError:
        return f"dtype_{enum_value}"


def _shape_dims(shape_proto):
    if shape_proto.unknown_rank:
        return None
    return [d.size if d.size >= 0 else None for d in shape_proto.dim]


def static_tensors(concrete):
    """Static shape and dtype of every tensor in the traced graph and its nested functions."""
    tensors = {}
    graphs = [concrete.graph]
    seen = set()
    while graphs:
        graph = graphs.pop()
        if id(graph) in seen:
            continue
        seen.add(id(graph))
        for op in graph.get_operations():
            for index, out in enumerate(op.outputs):
                dims = out.shape.as_list() if out.shape.rank is not None else None
                tensors.setdefault(f"{op.name}:{index}", {"dtype": out.dtype.name, "dims": dims})
        for fn in getattr(graph, "_functions", {}).values():
            inner = getattr(fn, "graph", None)
            if inner is not None:
                graphs.append(inner)
    return tensors


def graph_record(run_metadata, concrete) -> dict:
    """The executed graph as plain JSON-able data: nodes with op, attrs, inputs and shapes."""
    nodes = []
    for function_graph in run_metadata.function_graphs:
        graph_defs = list(function_graph.partition_graphs) or [function_graph.post_optimization_graph]
        for graph_def in graph_defs:
            for node in graph_def.node:
                attrs = {key: _attr_to_python(value) for key, value in node.attr.items()}
                nodes.append({"name": node.name, "op": node.op, "device": node.device,
                              "inputs": list(node.input), "attrs": attrs})
    record = {"nodes": nodes, "static_tensors": static_tensors(concrete) if concrete is not None else {}}
    fill_rewritten_shapes(record)
    return record


def fill_rewritten_shapes(record: dict, passes: int = 8) -> None:
    """Static shapes for elementwise nodes Grappler created (`ArithmeticOptimizer/AddOpsRewrite_add`).

    Such nodes exist in no traced graph, so without level-3 trace shapes their
    consumers would be unpriced; an elementwise op's output is the broadcast
    of its inputs, which the record does know.
    """
    from ..costs import ELEMENTWISE_FLOPS
    from ..graph import ExecutedGraph
    static = record["static_tensors"]
    graph = ExecutedGraph.from_record(record)
    candidates = [n for nodes in graph.nodes.values() for n in nodes
                  if (n.op in ELEMENTWISE_FLOPS or n.op == "AddN") and f"{n.name}:0" not in static]
    for _ in range(passes):
        filled = 0
        for node in candidates:
            key = f"{node.name}:0"
            if key in graph.static:
                continue
            specs = graph.input_specs(node)
            if not specs or any(s is None or not s.known for s in specs):
                continue
            rank = max(s.rank for s in specs)
            dims = [max(s.dims[axis - rank + s.rank] for s in specs if axis - rank + s.rank >= 0)
                    for axis in range(rank)]
            graph.static[key] = type(specs[0])(specs[0].dtype, tuple(dims))
            static[key] = {"dtype": specs[0].dtype, "dims": dims}
            filled += 1
        if not filled:
            return

