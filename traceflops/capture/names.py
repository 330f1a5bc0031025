"""The names a capture writes that the analysis and the Keras callback read back: the files beside the
trace, and the marker that wraps each profiled step."""
from __future__ import annotations

# The executed graph (graph_record.py): partition-graph nodes, static shapes, layer scopes.
GRAPH_FILE = "traceflops_graph.json"
# What ran and how (device, batch, steps, wall times, profiler server), and what the analysis must warn about.
CAPTURE_FILE = "traceflops_capture.json"
# The TraceMe (TensorFlow) or StepTraceAnnotation (JAX) around each call, with its step number.
STEP_MARKER = "traceflops_step"
