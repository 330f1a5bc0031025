"""Capture: which graph name scope each Keras layer call got, so ops carry the layer's own name.

TensorFlow uniquifies name scopes while a function is traced: the Keras layer
`conv2d` runs under `model_1/conv2d_1`, and the layer `conv2d_1` under
`model_1/conv2d_1_2`, so a scope is no layer name. While the step function is
traced, every layer's `call` is wrapped to note the scope it runs in
(`tf.get_current_name_scope()`) against the layer's path in the model
(`outer/inner` for nested models); the wrappers are removed right after.
"""
from __future__ import annotations

import contextlib
import functools


def _layer_paths(model) -> list:
    """(layer, path) of every layer below `model`, depth first; nested models as `outer/inner`."""
    found, stack = [], [(model, "")]
    while stack:
        parent, prefix = stack.pop()
        for layer in getattr(parent, "layers", None) or []:
            path = f"{prefix}{layer.name}"
            found.append((layer, path))
            stack.append((layer, path + "/"))
    return found


def _wrapped(layer, path: str, scopes: dict, tf):
    original = layer.call

    @functools.wraps(original)
    def call(*args, **kwargs):
        scopes[tf.get_current_name_scope()] = path
        return original(*args, **kwargs)
    return call


@contextlib.contextmanager
def recording_layer_scopes(model):
    """Yields a dict that fills, while the model is traced, with {graph scope: layer path}."""
    import tensorflow as tf
    scopes: dict = {}
    layers = _layer_paths(model) if hasattr(model, "layers") else []
    patched = []
    try:
        for layer, path in layers:
            if "call" in vars(layer):  # already an instance attribute: leave it alone
                continue
            layer.call = _wrapped(layer, path, scopes, tf)
            patched.append(layer)
        yield scopes
    finally:
        for layer in patched:
            del layer.call
