"""Shapes of every layer call of a Keras model, recorded from one symbolic call at the batch size counted.

Every operation below the model gets, for the duration of one call on
`keras.KerasTensor`s, instance wrappers around `compute_output_spec` (what
functional graphs and built-in layers run symbolically) and `call` (what a
subclassed model's traced `call` runs), which note the call's argument and
output shapes and nest calls made inside another call under it. Functional
graphs (and a Sequential's) are run node by node, without Keras's shortcut
for input shapes equal to the built ones, so nested models always show their
layers. Tensors are followed by identity to know which inputs depend on a
trainable weight (the input gradients of a training step). Nothing here
imports TensorFlow; it reads Keras objects only.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import keras


@dataclass
class CallRecord:
    """One recorded call: the operation, the shapes of the tensors among its positional arguments and
    outputs (flattened, in order) and its keyword arguments (a tensor as its shape)."""
    operation: object
    input_shapes: list
    kwargs: dict
    output_shapes: list = field(default_factory=list)
    input_needs_grad: bool = False
    children: list = field(default_factory=list)


def is_tensor(value) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype") and not isinstance(value, (int, float))


def shape_of(value):
    return tuple(None if d is None else int(d) for d in value.shape)


def keyword_values(kwargs: dict) -> dict:
    """Keyword arguments with a tensor as its shape; nested structures as the shapes of their tensors."""
    found = {}
    for key, value in kwargs.items():
        if is_tensor(value):
            found[key] = shape_of(value)
        elif isinstance(value, (list, tuple, dict)):
            found[key] = [shape_of(t) for t in tensors(value)]
        else:
            found[key] = value
    return found


def tensors(structure) -> list:
    return [v for v in keras.tree.flatten(structure) if is_tensor(v)]


def trains(operation) -> bool:
    return bool(getattr(operation, "trainable", False) and getattr(operation, "trainable_weights", None))


def graph_of(operation):
    """The Functional graph a model runs (a Sequential's own), or None for other operations."""
    functional = getattr(operation, "_functional", None)
    if functional is not None:
        return functional
    if hasattr(operation, "_nodes_by_depth") and hasattr(operation, "_run_through_graph"):
        return operation
    return None


def all_operations(model) -> list:
    """Every layer and graph operation below `model` (itself included), each once."""
    found, seen, stack = [], set(), [model]
    while stack:
        op = stack.pop()
        if id(op) in seen:
            continue
        seen.add(id(op))
        found.append(op)
        graph = graph_of(op)
        if graph is not None:
            stack.extend(graph.operations)
        flatten = getattr(op, "_flatten_layers", None)
        if flatten is not None:
            stack.extend(flatten(include_self=False, recursive=False))
    return found


class Recorder:
    """Wraps the operations' methods, records calls into a tree, follows which tensors need gradients."""

    def __init__(self):
        self.roots: list = []
        self.stack: list = []
        self.needs_grad: dict = {}  # id(tensor) -> (tensor, depends on a trainable weight)
        self.trained_yet = False
        self.patched: list = []

    def mark(self, structure, needs_grad: bool) -> None:
        for t in tensors(structure):
            self.needs_grad[id(t)] = (t, needs_grad)

    def depends_on_weights(self, structure) -> bool:
        found = False
        for t in tensors(structure):
            entry = self.needs_grad.get(id(t))
            found = found or (entry[1] if entry is not None else self.trained_yet)
        return found

    def run(self, operation, method, args, kwargs):
        if self.stack and self.stack[-1].operation is operation:  # call inside its own compute_output_spec
            return method(*args, **kwargs)
        record = CallRecord(operation, [shape_of(t) for t in tensors(args)], keyword_values(kwargs),
                            input_needs_grad=self.depends_on_weights((args, kwargs)))
        (self.stack[-1].children if self.stack else self.roots).append(record)
        self.stack.append(record)
        try:
            outputs = method(*args, **kwargs)
        finally:
            self.stack.pop()
        record.output_shapes = [shape_of(t) for t in tensors(outputs)]
        own = trains(operation)
        self.mark(outputs, record.input_needs_grad or own)
        self.trained_yet = self.trained_yet or own
        return outputs

    def wrap(self, operation) -> None:
        if "compute_output_spec" in vars(operation) or "call" in vars(operation):
            return  # already an instance attribute: leave it alone
        original_spec, original_call = operation.compute_output_spec, operation.call
        graph = graph_of(operation)

        def spec(*args, **kwargs):
            if graph is not None:  # node by node, never the shortcut of Function.compute_output_spec
                inner = args[0] if args else kwargs["inputs"]
                method = lambda *a, **k: graph._run_through_graph(  # noqa: E731
                    inner, operation_fn=lambda op: op.compute_output_spec)
                return self.run(operation, method, args, kwargs)
            return self.run(operation, original_spec, args, kwargs)

        def call(*args, **kwargs):
            return self.run(operation, original_call, args, kwargs)

        operation.compute_output_spec = spec
        operation.call = call
        self.patched.append(operation)

    def unwrap(self) -> None:
        for operation in self.patched:
            del operation.compute_output_spec
            del operation.call
        self.patched = []


def record_calls(model, inputs) -> CallRecord:
    """The model's call on `inputs` (a structure of KerasTensors) as a tree of CallRecords (the root)."""
    if not model.built:  # a subclassed model: its first call builds it (and its layers), unrecorded
        model(inputs)
    recorder = Recorder()
    recorder.mark(inputs, False)
    for operation in all_operations(model):
        recorder.wrap(operation)
    try:
        model.compute_output_spec(inputs)
    finally:
        recorder.unwrap()
    if len(recorder.roots) != 1:
        raise RuntimeError(f"expected one call of the model, recorded {len(recorder.roots)}")
    return recorder.roots[0]
