"""Join a rebuilt executed graph (capture/rebuild.py) to the op events of a trace recorded elsewhere.

The graph rebuilt from the model in another process names its nodes as the
trace does up to TensorFlow's uniquifying suffixes (`conv2d_1` there,
`conv2d_1_2` here; `sequential` vs `sequential_1`) and outer call scopes
(`StatefulPartitionedCall/`). Both name sets are read as trees of scope
components, leading call scopes removed. At every level, sibling components
are grouped by their base (the name without `_N` suffixes) and paired:

1. by name, where every trace spelling exists in the graph and holds (op type
   and relative path) no more than the graph's component of that spelling;
2. else by rank, where both sides have as many (suffix order is creation order:
   the n-th `conv2d` scope of the trace is the n-th of the graph);
3. else in order, each trace component with the next graph component that
   holds everything it holds.

An op event is then matched to the graph node at its paired position only
when the op types agree: no event is ever priced from a node of another type.
The result is a graph record whose nodes carry the trace's names (unmatched
nodes move under a `~rebuilt~/` scope no trace name has), with static shapes,
edges and layer scopes renamed alike, so describe/price work unchanged.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_SUFFIX = re.compile(r"(?:_\d+)+$")
_CALL_SCOPES = ("StatefulPartitionedCall", "PartitionedCall")
UNMATCHED_SCOPE = "~rebuilt~/"


def strip_calls(name: str) -> str:
    """The name without leading call scopes: `StatefulPartitionedCall/seq/dense/MatMul` -> `seq/dense/MatMul`."""
    parts = name.split("/")
    while len(parts) > 1 and parts[0].startswith(_CALL_SCOPES):
        parts = parts[1:]
    return "/".join(parts)


def _base(component: str) -> str:
    return _SUFFIX.sub("", component) or component


def _suffix_key(component: str) -> tuple:
    found = _SUFFIX.search(component)
    return tuple(int(n) for n in found.group(0).split("_")[1:]) if found else ()


class _Tree:
    __slots__ = ("children", "ops", "_content")

    def __init__(self):
        self.children: dict = {}
        self.ops: dict = {}  # op type -> [full names]
        self._content = None

    def add(self, stripped: str, op_type: str, full: str) -> None:
        node = self
        for part in stripped.split("/"):
            node = node.children.setdefault(part, _Tree())
        node.ops.setdefault(op_type, []).append(full)

    def content(self) -> frozenset:
        """(relative path, op type) of every op at or below this node."""
        if self._content is None:
            items = {("", op) for op in self.ops}
            for name, child in self.children.items():
                items.update((f"{name}/{path}", op) for path, op in child.content())
            self._content = frozenset(items)
        return self._content


def _pair(trace: dict, graph: dict, base: str) -> list:
    t_names = sorted((c for c in trace if _base(c) == base), key=_suffix_key)
    g_names = sorted((c for c in graph if _base(c) == base), key=_suffix_key)
    if all(c in graph and trace[c].content() <= graph[c].content() for c in t_names):
        return [(c, c) for c in t_names]
    if len(t_names) == len(g_names):
        return list(zip(t_names, g_names))
    pairs, start = [], 0
    for name in t_names:
        wanted = trace[name].content()
        for k in range(start, len(g_names)):
            if wanted <= graph[g_names[k]].content():
                pairs.append((name, g_names[k]))
                start = k + 1
                break
    return pairs


@dataclass
class MatchResult:
    names: dict = field(default_factory=dict)  # trace op name -> graph node name (same op type)
    scopes: dict = field(default_factory=dict)  # graph stripped scope -> trace stripped scope


def _align(trace: _Tree, graph: _Tree, t_path: str, g_path: str, result: MatchResult) -> None:
    for op_type, t_names in trace.ops.items():
        g_names = graph.ops.get(op_type)
        if g_names:
            for t_name in t_names:
                result.names.setdefault(t_name, t_name if t_name in g_names else g_names[0])
    for base in {_base(c) for c in trace.children}:
        for t_comp, g_comp in _pair(trace.children, graph.children, base):
            t_sub = f"{t_path}/{t_comp}" if t_path else t_comp
            g_sub = f"{g_path}/{g_comp}" if g_path else g_comp
            result.scopes.setdefault(g_sub, t_sub)
            _align(trace.children[t_comp], graph.children[g_comp], t_sub, g_sub, result)


def match_names(trace_ops: list, graph_nodes: list) -> MatchResult:
    """`trace_ops`, `graph_nodes`: [(name, op type)]. Exact name and type first, then the tree alignment."""
    by_name = {}
    for name, op in graph_nodes:
        by_name.setdefault((name, op), name)
    t_tree, g_tree = _Tree(), _Tree()
    for name, op in set(trace_ops):
        t_tree.add(strip_calls(name), op, name)
    for name, op in dict.fromkeys(graph_nodes):
        g_tree.add(strip_calls(name), op, name)
    result = MatchResult()
    _align(t_tree, g_tree, "", "", result)
    used = set(result.names.values())
    for name, op in set(trace_ops):
        if name not in result.names and (name, op) in by_name and name not in used:
            result.names[name] = name
    # One graph node for one trace name: a second claim on a node is dropped.
    seen, names = set(), {}
    for t_name in sorted(result.names, key=lambda n: (result.names[n] != n, n)):
        g_name = result.names[t_name]
        if g_name not in seen:
            seen.add(g_name)
            names[t_name] = g_name
    result.names = names
    return result


def _rename_edge(edge: str, mapping: dict) -> str:
    control = edge.startswith("^")
    text = edge[1:] if control else edge
    name, sep, index = text.rpartition(":")
    if not (sep and index.isdigit()):
        name, sep, index = text, "", ""
    renamed = mapping.get(name, UNMATCHED_SCOPE + name)
    return ("^" if control else "") + renamed + (f":{index}" if sep else "")


def renamed_record(record: dict, result: MatchResult) -> dict:
    """The graph record with matched nodes under their trace names, the rest under `~rebuilt~/`."""
    mapping = {g: t for t, g in result.names.items()}
    nodes = []
    for raw in record.get("nodes", []):
        nodes.append({**raw, "name": mapping.get(raw["name"], UNMATCHED_SCOPE + raw["name"]),
                      "inputs": [_rename_edge(e, mapping) for e in raw.get("inputs", [])]})
    static = {}
    for key, value in record.get("static_tensors", {}).items():
        static.setdefault(_rename_edge(key, mapping), value)
    scopes = {}
    for scope, layer in (record.get("layer_scopes") or {}).items():
        scopes[result.scopes.get(strip_calls(scope), UNMATCHED_SCOPE + scope)] = layer
    return {**record, "nodes": nodes, "static_tensors": static, "layer_scopes": scopes}


def match_counts(events: list, result: MatchResult) -> dict:
    """`events`: (name, op type) of every op event. By name / by structure / unmatched counts."""
    counts = Counter()
    unmatched = Counter()
    for name, op in events:
        target = result.names.get(name)
        if target is None:
            counts["unmatched"] += 1
            unmatched[op] += 1
        else:
            counts["by_name" if target == name else "by_structure"] += 1
    return {"by_name": counts["by_name"], "by_structure": counts["by_structure"],
            "unmatched": counts["unmatched"], "unmatched_op_types": dict(unmatched.most_common())}


def join_rebuilt(record: dict, events: list) -> tuple:
    """(renamed record, match counts) for the trace's op events [(name, op type)]."""
    graph_nodes = [(raw["name"], raw["op"]) for raw in record.get("nodes", [])]
    result = match_names(list(set(events)), graph_nodes)
    return renamed_record(record, result), match_counts(events, result)
