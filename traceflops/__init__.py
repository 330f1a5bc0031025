"""traceflops: per-kernel FLOPs, measured time and FLOP/s for TensorFlow/Keras models.

Pipeline, one module per stage:
    capture  (run the model under the profiler)
 -> trace    (XSpace to a tidy events table)
 -> graph    (what each op was: attributes and shapes)
 -> costs    (FLOP/byte formulas, one registry of op knowledge)
 -> join     (per-op counts, times and rates)
 -> report   (terminal table, ops.csv, summary.json)
"""
from .api import Result, analyze, profile
from .costs import register_formula, supported_ops

__all__ = ["Result", "analyze", "profile", "register_formula", "supported_ops"]
__version__ = "0.1.0"
