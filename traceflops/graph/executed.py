"""Stage 3: what each executed op was — its attributes and its tensors' shapes.

Sources, best first (see docs/design.md for why each exists):
1. shapes recorded in the trace (`shape` stat, host tracer level 3): the
   inputs of every execution, exactly as they ran;
2. the same trace's shapes seen from the other side of an edge: an op's
   output k is some consumer's input, so consumers' recorded inputs give
   producers' outputs;
3. the executed graph written at capture (`traceflops_graph.json`):
   attributes, edges, `_input_shapes` on fused nodes, `_output_shapes` on
   arguments, constant shapes, variable handle shapes, and the static shape
   of every tensor of the traced FuncGraph under the same node names.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..ops import TensorSpec, canonical_dtype
from .layers import LayerIndex


@dataclass
class Node:
    name: str
    op: str
    inputs: list  # data inputs as "node:index"
    attrs: dict
    device: str = ""


def _edge(text: str) -> Optional[str]:
    if text.startswith("^"):
        return None  # control edge: no tensor flows
    name, _, index = text.rpartition(":")
    if name and index.isdigit():
        return f"{name}:{index}"
    return f"{text}:0"


def _spec(dtype: Optional[str], dims) -> Optional[TensorSpec]:
    if dims is None or dtype is None:
        return None
    return TensorSpec(canonical_dtype(dtype), tuple(dims))


@dataclass
class ExecutedGraph:
    """Nodes by name (a name can repeat across function bodies) and known tensor shapes."""
    nodes: dict = field(default_factory=dict)
    static: dict = field(default_factory=dict)
    observed: dict = field(default_factory=dict)
    consumers_count: dict = field(default_factory=dict)
    layers: LayerIndex = field(default_factory=LayerIndex)

    @classmethod
    def from_record(cls, record: dict) -> "ExecutedGraph":
        graph = cls()
        for raw in record.get("nodes", []):
            node = Node(raw["name"], raw["op"], [e for e in map(_edge, raw.get("inputs", [])) if e],
                        raw.get("attrs", {}), raw.get("device", ""))
            graph.nodes.setdefault(node.name, []).append(node)
            for edge in node.inputs:
                src, _, index = edge.rpartition(":")
                graph.consumers_count[src] = max(graph.consumers_count.get(src, 0), int(index) + 1)
        graph.layers = LayerIndex(record.get("layer_scopes"))
        for key, value in record.get("static_tensors", {}).items():
            spec = _spec(value.get("dtype"), value.get("dims"))
            if spec is not None:
                graph.static[key] = spec
        return graph

    @classmethod
    def load(cls, path) -> "ExecutedGraph":
        return cls.from_record(json.loads(Path(path).read_text()))

    def node(self, name: str, op_type: str = "") -> Optional[Node]:
        candidates = self.nodes.get(name) or []
        for node in candidates:
            if node.op == op_type:
                return node
        return candidates[0] if candidates else None

    def observe(self, node: Node, input_specs: list) -> None:
        """Record that `node`'s inputs were seen with these shapes (gives producers' outputs)."""
        for edge, spec in zip(node.inputs, input_specs):
            if spec is not None and spec.known and edge not in self.observed:
                self.observed[edge] = spec

    def tensor(self, edge: str) -> Optional[TensorSpec]:
        """Shape of tensor `node:index` from every source we have."""
        spec = self.observed.get(edge)
        if spec is not None:
            return spec
        spec = self.static.get(edge)
        if spec is not None and spec.known:
            return spec
        name, _, index = edge.rpartition(":")
        index = int(index)
        producer = self.node(name)
        if producer is None:
            return spec
        attrs = producer.attrs
        dtype = attrs.get("T") or attrs.get("dtype")
        if producer.op == "Const" and isinstance(attrs.get("value"), dict):
            value = attrs["value"]
            return _spec(value.get("dtype"), value.get("dims"))
        shapes = attrs.get("_output_shapes")
        if isinstance(shapes, list) and index < len(shapes) and shapes[index] is not None and dtype:
            return _spec(dtype if isinstance(dtype, str) else None, shapes[index])
        if producer.op == "ReadVariableOp" and producer.inputs:
            handle = self.node(producer.inputs[0].rpartition(":")[0])
            if handle is not None:
                handle_shapes = handle.attrs.get("_handle_shapes") or []
                handle_dtypes = handle.attrs.get("_handle_dtypes") or []
                if handle_shapes and handle_dtypes:
                    return _spec(handle_dtypes[0], handle_shapes[0])
        return spec

    def input_specs(self, node: Node) -> list:
        """Inputs from edges, with `_input_shapes` (fused nodes) where an edge gives nothing."""
        specs = [self.tensor(edge) for edge in node.inputs]
        declared = node.attrs.get("_input_shapes")
        dtype = node.attrs.get("T")
        if isinstance(declared, list) and isinstance(dtype, str):
            for i, dims in enumerate(declared[: len(specs)]):
                if (specs[i] is None or not specs[i].known) and dims is not None:
                    specs[i] = _spec(dtype, dims)
        return specs

    def output_specs(self, node: Node) -> list:
        count = self.consumers_count.get(node.name, 0)
        while f"{node.name}:{count}" in self.static:
            count += 1
        return [self.tensor(f"{node.name}:{i}") for i in range(count)]
