"""Stage 1: run a model under the TensorFlow profiler.

What it records, and why (see docs/design.md for the measured facts):

* The executed graph. TensorFlow hands out the post-optimization partition
  graphs (final kernel types such as `_MklNativeFusedConv2D`, with every
  attribute) only when run metadata is enabled while the function is first
  instantiated, so the first call is made under `enable_run_metadata()`.
  Static shapes of every tensor come from the traced FuncGraph. Both are
  written to `traceflops_graph.json` next to the trace, so `analyze` of the
  same logdir needs no model and no TensorFlow graph classes.
* The trace, at host tracer level 3, the only level whose op events carry
  input shapes and that records inexpensive ops (Reshape, Squeeze...). TF
  2.21 silently ignores the level passed to `tf.profiler.experimental.start`,
  so level 3 is requested through the profiler service: a profiler server in
  this process, addressed on 127.0.0.1. TensorFlow cannot stop that server;
  it ends with the process (the CLI runs one process per capture). Level 2
  (`host_tracer_level=2`) uses the plain in-process API and no server.
* Steps. Each call is wrapped in a `traceflops_step` TraceMe with its step
  number; the analysis keeps only complete steps recorded after warm-up.
"""
from .graph_record import graph_record  # noqa: F401
from .model import (SavedModelRunner, build_step_function, input_specs, load_model,  # noqa: F401
                    synthetic_inputs)
from .names import CAPTURE_FILE, GRAPH_FILE, STEP_MARKER  # noqa: F401
from .request import CaptureRequest, CaptureResult  # noqa: F401
from .run import capture, resolve_device, run_capture, set_threading  # noqa: F401
from .sandbox import capture_isolated  # noqa: F401
from .tf import import_tf  # noqa: F401
