"""The batch size a trace ran at, read off its recorded shapes against a graph rebuilt from the model.

A level-2 trace (TensorBoard `profile_batch`, `tf.profiler.experimental.start`)
records no shapes: there the batch size must be given. A trace with `shape`
stats (level 3) does: for every matched event, its recorded first input is
compared with the rebuilt node's first input; where all other dimensions
agree, the leading ones give the trace's batch (rebuilt at batch b, recorded
at B: the trace ran at B). Used to infer a missing `--batch-size` and to
refuse a wrong one.
"""
from __future__ import annotations

from collections import Counter
from typing import Optional

from .shapes import parse_shape_list


def _recorded_first(shape_text) -> Optional[tuple]:
    specs = parse_shape_list(shape_text) if isinstance(shape_text, str) and shape_text else None
    if not specs or specs[0] is None or not specs[0].known or specs[0].rank < 1:
        return None
    return tuple(specs[0].dims)


def batch_seen(events, graph, rebuilt_batch: int) -> Optional[int]:
    """The batch size the trace's recorded shapes imply (None when it recorded none that tell).

    `events`: op events with `op_name`, `op_type`, `shape`; `graph`: the renamed ExecutedGraph."""
    votes = Counter()
    shaped = events[events["shape"].notna()]
    for name, op_type, shape in shaped[["op_name", "op_type", "shape"]].drop_duplicates().itertuples(index=False):
        recorded = _recorded_first(shape)
        node = graph.node(str(name), str(op_type)) if recorded else None
        if node is None or node.op != op_type:
            continue
        specs = graph.input_specs(node)
        rebuilt = specs[0] if specs else None
        if rebuilt is None or not rebuilt.known or rebuilt.rank != len(recorded) or rebuilt.rank < 2:
            continue
        if tuple(rebuilt.dims[1:]) != recorded[1:] or rebuilt.dims[0] != rebuilt_batch:
            continue
        votes[recorded[0]] += 1
    if not votes:
        return None
    return votes.most_common(1)[0][0]
