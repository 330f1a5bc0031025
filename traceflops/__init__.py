"""traceflops: per-kernel FLOPs, measured time and FLOP/s for TensorFlow/Keras models.

Pipeline, one subpackage per stage:
    capture  (run the model under the profiler, in a sandboxed process)
 -> trace    (XSpace files to a tidy events table; HLO modules)
 -> graph    (what each op was: attributes and shapes)
 -> costs    (FLOP/byte formulas: one registry, one pricing step)
 -> join     (priced records -> ops, kernels, memcpy tables and the summary)
 -> roofline (ceilings, per-op efficiency, model-level figures)
 -> report   (terminal table, CSV/JSON files, roofline.png, report.html)

The public names are loaded on first use, so that importing the package (as the
sandboxed capture process does before it enters its namespaces) loads neither
pandas nor TensorFlow.
"""
__all__ = ["CountResult", "Result", "Summary", "analyze", "count", "profile", "register_formula",
           "register_layer_formula", "supported_ops"]
__version__ = "0.1.0"


_API = {"Result": "result", "Summary": "result", "analyze": "api", "profile": "api", "register_formula": "costs",
        "supported_ops": "costs", "CountResult": "count", "register_layer_formula": "count"}


def __getattr__(name):
    import importlib
    if name in _API:
        return getattr(importlib.import_module(f".{_API[name]}", __name__), name)
    try:  # a stage: traceflops.api, traceflops.costs...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError:
        raise AttributeError(f"module 'traceflops' has no attribute {name!r}") from None
