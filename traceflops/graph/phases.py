"""Which phase of a training step an op belongs to, from where it sits in the graph.

Measured on Keras 3.15 / TF 2.21 training steps (tests/test_training.py), the
name scopes of a step are:

* `<model>/<layer>/...` — the forward pass (batch-norm moving-statistics
  updates included: Keras runs them inside the layer);
* `gradient_tape/<model>/<layer>/...` — gradients. The tape adds the
  gradients of a tensor used several times (a residual branch, Q/K/V of one
  input) with `AddN` nodes at the top level, outside every scope;
* `adam/...`, `sgd/...` (the optimizer's name, lower case) — the update. An
  embedding's gradient arrives as IndexedSlices and the optimizer densifies
  it with `UnsortedSegmentSum` inside its own scope: that is gradient
  accumulation, counted as backward;
* `compile_loss/<loss>/...` — the loss; unscoped arithmetic at the top level
  (`Add`, `mul`, `div_no_nan`, `AssignVariableOp`) — the loss tracker and
  compiled metrics updating their state;
* steps run by `fit` add `StatefulPartitionedCall/` in front of all of these.

JAX (XLA instructions name their origin in the HLO metadata: `jit(train_step)/jvp()/dot_general`,
checked on a jitted training step on an H200, traces/gpu-jax-h200): `jvp(...)` — the differentiated
function, forward pass and loss; `transpose(jvp(...))` — its gradients; anything else in a training
step's jitted function (`jit(train_step)/sub`) — outside the differentiated function: the parameter
update and the step's bookkeeping, counted as `optimizer`. XLA fuses as it likes: an update fused
into the kernel of a weight gradient counts with that gradient (backward). Instructions of a JAX step
without a name stack (layout transposes of the parameters, `p['conv1']['w']`) count as forward.

The names are read by the naming rules of the trace's source (trace/naming.py); this module says
which phase each kind of name is.
"""
from __future__ import annotations

from ..trace.naming import JAX_NAMING, TF_NAMING

FORWARD, BACKWARD, OPTIMIZER, LOSS_AND_METRICS = "forward", "backward", "optimizer", "loss_and_metrics"
PHASES = (FORWARD, BACKWARD, OPTIMIZER, LOSS_AND_METRICS)

# Gradient accumulation that the optimizer performs on IndexedSlices (embedding gradients).
_ACCUMULATION_OPS = ("UnsortedSegmentSum", "SparseSegmentSum", "SegmentSum")
_STEP_EDGES = ("_Arg", "_Retval", "_DeviceArg", "_DeviceRetval", "Identity", "NoOp")


def _base_type(op_type: str) -> str:
    return op_type.replace("_MklNative", "").replace("_Mkl", "")


def is_jax_name(op_name: str) -> bool:
    return JAX_NAMING.owns(op_name)


def phase_of(op_name: str, op_type: str = "") -> str:
    """`forward`, `backward`, `optimizer` or `loss_and_metrics` for an op of a training step."""
    if JAX_NAMING.owns(op_name):
        return (BACKWARD if JAX_NAMING.marks_gradients(op_name) else FORWARD if JAX_NAMING.in_differentiated(op_name)
                else OPTIMIZER)
    parts = TF_NAMING.scope_parts(op_name)
    kind = _base_type(op_type)
    if TF_NAMING.in_gradient_scope(parts):
        return BACKWARD
    top = parts[0].lower()
    if TF_NAMING.is_optimizer_scope(top):
        return BACKWARD if kind in _ACCUMULATION_OPS else OPTIMIZER
    if len(parts) == 1:  # outside every scope: the step's arguments, gradient sums, metric state
        if kind == "AddN":
            return BACKWARD
        if kind in _STEP_EDGES:
            return FORWARD
        return LOSS_AND_METRICS
    if TF_NAMING.is_loss_scope(top):
        return LOSS_AND_METRICS
    return FORWARD
