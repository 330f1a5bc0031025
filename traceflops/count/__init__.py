"""Model FLOPs from Keras layer configs: `traceflops count` and `traceflops.count` (no profiler, no trace).

One row per layer (`outer/inner` for nested models and wrappers, the names of
the ops table's `layer` column) with its MACs, FLOPs and parameters; the
conventions are docs/count.md's. Built-in layers are counted by the formulas of
`count/layers.py` and `count/sequence.py`; `register_layer_formula` adds one
for a custom layer. Keras objects only: nothing here imports TensorFlow.
The package itself is callable (`traceflops.count(model)`), since importing it
makes `traceflops.count` this module rather than the function.
"""
import sys

from .formulas import LayerCall, LayerCount, NotCounted, register_layer_formula  # noqa: F401
from .result import CountResult  # noqa: F401
from .walk import count  # noqa: F401


class CountModule(type(sys)):
    """This package, callable as its `count` function: `traceflops.count(model)` calls it, though importing
    the subpackage makes `traceflops.count` the module."""

    def __call__(self, *args, **kwargs):
        return count(*args, **kwargs)


sys.modules[__name__].__class__ = CountModule
