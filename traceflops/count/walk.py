"""`traceflops.count`: load the model, record its layer calls at the batch size counted, and walk them into
one row per layer (`outer/inner` for nested models and wrappers).

A layer with a formula is counted by it (wrappers name their sublayers as
children, counted in turn); a declared-zero layer is a zero row; a model or a
custom layer without a formula is walked into; any other layer is a row of
`not_counted` with the reason, never a silent zero. Calls of a shared layer add
up in its one row, as its ops do in the ops table's `layer` column.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import ModelError, UsageError
from .formulas import LayerCall, LayerCount, NotCounted, formula_for
from .result import CountResult, LayerRow
from .training import optimizer_update

SUBLAYERS_REASON = ("a custom layer without a formula: its sublayers are counted, its own arithmetic is not "
                    "(traceflops.register_layer_formula)")


def load_model(path, train: bool = False):
    """A `.keras` (or `.h5`) file, loaded with Keras safe mode on (compile config too for --train)."""
    path = Path(path)
    if not path.exists():
        raise ModelError(f"{path}: no such file or directory")
    if path.is_dir() or path.suffix not in (".keras", ".h5", ".hdf5"):
        raise ModelError(f"{path}: not a model file (expected .keras or .h5)")
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up lines, on that backend
    import keras
    try:
        return keras.saving.load_model(path, compile=train, safe_mode=True)
    except Exception as exc:  # Keras raises many types for one cause: the file isn't a loadable model
        message = " ".join(str(exc).split())
        raise ModelError(f"{path}: could not load the model ({type(exc).__name__}: {message[:200]})") from None


def filled_shape(shape, batch_size: int, given, name: str) -> tuple:
    dims = list(shape)
    rest = list(given) if given is not None else dims[1:]
    if len(rest) != len(dims) - 1 and dims:
        raise UsageError(f"--input-shape for {name}: {len(rest)} dimensions given, the input has {len(dims) - 1}")
    filled = (batch_size, *rest)
    if any(d is None for d in filled):
        raise UsageError(f"input {name} has unknown dimensions {tuple(shape)}: give them with --input-shape")
    return tuple(int(d) for d in filled)


def symbolic_inputs(model, batch_size: int, input_shape=None):
    """KerasTensors of the model's inputs at `batch_size`, in its input structure; `input_shape` (dims after
    the batch: a tuple, a list of tuples or {name: tuple}) fills unknown dimensions or, for a subclassed
    model, gives them."""
    import keras
    try:
        declared = list(model.inputs or [])
    except (AttributeError, ValueError):
        declared = []
    if not declared:
        if input_shape is None:
            raise UsageError(f"{model.name} declares no inputs (a subclassed model): give --input-shape")
        shapes = [input_shape] if all(isinstance(d, int) for d in input_shape) else list(input_shape)
        tensors = [keras.KerasTensor((batch_size, *s)) for s in shapes]
        return tensors[0] if len(tensors) == 1 else tensors
    names = [t.name for t in declared]
    if isinstance(input_shape, dict):
        given = [input_shape.get(n) for n in names]
    elif input_shape is None:
        given = [None] * len(declared)
    else:
        given = [input_shape] if all(isinstance(d, int) for d in input_shape) else list(input_shape)
        if len(given) != len(declared):
            raise UsageError(f"--input-shape: {len(given)} shape(s) for {len(declared)} inputs ({', '.join(names)})")
    filled = {id(t): keras.KerasTensor(filled_shape(t.shape, batch_size, g, t.name), dtype=t.dtype)
              for t, g in zip(declared, given)}
    structure = getattr(model, "_inputs_struct", declared)
    return keras.tree.map_structure(lambda t: filled[id(t)], structure)


def count_params(layer) -> int:
    try:
        return int(layer.count_params()) if getattr(layer, "built", False) else 0
    except ValueError:
        return 0


def trainable_params(layer) -> int:
    if not getattr(layer, "trainable", False):
        return 0
    return sum(math.prod(w.shape) for w in getattr(layer, "trainable_weights", []))


class Walk:
    """Rows from recorded calls: one per layer path, calls of a shared layer added up."""

    def __init__(self, train: bool):
        self.train = train
        self.rows: dict = {}
        self.not_counted: list = []

    def row(self, path: str, layer) -> LayerRow:
        if path not in self.rows:
            self.rows[path] = LayerRow(path, type(layer).__name__, params=count_params(layer),
                                       trainable_params=trainable_params(layer))
        return self.rows[path]

    def skip(self, path: str, layer, reason: str) -> None:
        self.row(path, layer).counted = False
        entry = {"layer": path, "type": type(layer).__name__, "reason": reason}
        if entry not in self.not_counted:
            self.not_counted.append(entry)

    def call(self, path: str, call: LayerCall, children=()) -> None:
        """Count one layer call at `path`; `children` are its recorded sublayer calls."""
        layer = call.layer
        formula, zero_reason = formula_for(layer)
        if formula is not None:
            try:
                count = formula(call)
            except NotCounted as exc:
                self.skip(path, layer, str(exc))
                return
            if not isinstance(count, LayerCount):
                raise TypeError(f"the formula for {type(layer).__name__} returned {type(count).__name__}, "
                                "not a LayerCount")
            row = self.row(path, layer)
            row.add(count, self.train)
            for name, child in count.children:  # a wrapper's row keeps only its own parameters
                if row.calls == 1:
                    row.params -= count_params(child.layer)
                    row.trainable_params -= trainable_params(child.layer)
                self.call(f"{path}/{name}", child)
            return
        if zero_reason is not None:
            self.row(path, layer).add(LayerCount(flops=0), self.train)
            return
        if children:
            import keras
            if not isinstance(layer, keras.Model):
                self.skip(path, layer, SUBLAYERS_REASON)
            self.records(children, path + "/")
            return
        self.skip(path, layer, "no formula for this layer (traceflops.register_layer_formula)")

    def records(self, records: list, prefix: str) -> None:
        for record in records:
            layer = record.operation
            call = LayerCall(layer, record.input_shapes, record.output_shapes, record.kwargs, self.train,
                             record.input_needs_grad)
            self.call(prefix + layer.name, call, record.children)


def count(model, *, batch_size: int = 1, train: bool = False, input_shape=None) -> CountResult:
    """Model FLOPs and MACs from the Keras layers' configs and static shapes (no profiler, no trace).

    `model` is a `.keras`/`.h5` path or a Keras model; subclassed models need `input_shape` (the dims after
    the batch). `train` counts a training step: forward + backward, the optimizer's update apart."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"batch size must be a whole number >= 1, got {batch_size!r}")
    name = None
    if isinstance(model, (str, Path)):
        name, model = str(model), load_model(model, train=train)
    elif not hasattr(model, "get_config") or not hasattr(model, "compute_output_spec"):
        raise ModelError(f"not a Keras model: {type(model).__name__}")
    from . import layers, sequence  # noqa: F401  (register the built-in formulas)
    from .record import record_calls
    inputs = symbolic_inputs(model, batch_size, input_shape)
    try:
        root = record_calls(model, inputs)
    except (UsageError, ModelError):
        raise
    except Exception as exc:
        message = " ".join(str(exc).split())
        raise ModelError(f"{model.name}: the model cannot be called at these shapes "
                         f"({type(exc).__name__}: {message[:200]})") from None
    walk = Walk(train)
    walk.records(root.children, "")
    optimizer = optimizer_update(model) if train else None
    return CountResult(name or model.name, batch_size, train, list(walk.rows.values()), walk.not_counted,
                       optimizer)
