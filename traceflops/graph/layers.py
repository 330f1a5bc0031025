"""Graph stage: the Keras layer an op belongs to.

With the scopes the capture recorded (`layer_scopes` in traceflops_graph.json:
graph scope -> layer path, see capture/layers.py), an op's layer is the layer
whose scope is the longest prefix of the op's name, after the scopes that
function calls and gradients add (`StatefulPartitionedCall/`, `gradient_tape/`,
a JAX `jit(...)` frame: trace/naming.py); an op in no layer (arguments, the model's own casts,
an optimizer's updates) is `(model)`.
Without them (a trace recorded elsewhere) the layer is read off the name:
`model/layer/.../Op` -> `layer`, which keeps TensorFlow's scope suffixes.
"""
from __future__ import annotations

from typing import Optional

from ..trace.naming import JAX_NAMING, TF_NAMING

MODEL_LEVEL = "(model)"


def _model_parts(op_name: str) -> list:
    """The op name's scope parts without call and gradient scopes and JAX transformation frames
    (`jit(step)`, `jvp(...)`, `transpose(jvp(...))`), by the naming rules of trace/naming.py."""
    return TF_NAMING.model_parts(JAX_NAMING.without_frames(op_name.split("/")))


def layer_of(op_name: str) -> str:
    """The layer from the name alone: `model/layer/.../Op` -> `layer` ("" when there is none)."""
    parts = _model_parts(op_name)
    return parts[1] if len(parts) >= 3 else ""


class LayerIndex:
    """Scope -> layer path, as recorded at capture; `layer_of` finds an op's layer."""

    def __init__(self, scopes: Optional[dict] = None):
        self.scopes = dict(scopes or {})

    def __bool__(self) -> bool:
        return bool(self.scopes)

    def layer_of(self, op_name: str) -> str:
        if not self.scopes:
            return layer_of(op_name)
        parts = _model_parts(op_name)
        for end in range(len(parts) - 1, 0, -1):  # the op's own name is no scope
            found = self.scopes.get("/".join(parts[:end]))
            if found is not None:
                return found
        return MODEL_LEVEL
