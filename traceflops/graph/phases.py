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
"""
from __future__ import annotations

import re

FORWARD, BACKWARD, OPTIMIZER, LOSS_AND_METRICS = "forward", "backward", "optimizer", "loss_and_metrics"
PHASES = (FORWARD, BACKWARD, OPTIMIZER, LOSS_AND_METRICS)

_CALL_SCOPES = {"StatefulPartitionedCall", "PartitionedCall"}
_GRADIENT_SCOPES = ("gradient_tape", "gradients")
# Keras optimizer scope names, lower-cased (TF may add `_1`).
_OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "ftrl", "lion",
               "lamb", "adafactor", "loss_scale_optimizer", "lossscaleoptimizer", "optimizer")
_OPTIMIZER_SCOPE = re.compile(r"^(%s)(_\d+)?(_|$)" % "|".join(_OPTIMIZERS))
_LOSS_SCOPES = ("compile_loss", "compile_metrics", "loss", "metrics", "loss_tracker")
_LOSS_WORDS = ("crossentropy", "mean_squared_error", "mean_absolute_error", "hinge", "huber", "poisson",
               "kl_divergence", "cosine_similarity", "accuracy", "log_cosh")
# Gradient accumulation that the optimizer performs on IndexedSlices (embedding gradients).
_ACCUMULATION_OPS = ("UnsortedSegmentSum", "SparseSegmentSum", "SegmentSum")
_STEP_EDGES = ("_Arg", "_Retval", "_DeviceArg", "_DeviceRetval", "Identity", "NoOp")
# A JAX name stack: the jitted (or pmapped) function first.
_JAX_NAME = re.compile(r"^(jit|pjit|pmap|xla_pmap)\(")


def _base_type(op_type: str) -> str:
    return op_type.replace("_MklNative", "").replace("_Mkl", "")


def is_jax_name(op_name: str) -> bool:
    return bool(_JAX_NAME.match(op_name))


def phase_of(op_name: str, op_type: str = "") -> str:
    """`forward`, `backward`, `optimizer` or `loss_and_metrics` for an op of a training step."""
    if is_jax_name(op_name):
        return BACKWARD if "transpose(jvp(" in op_name else FORWARD if "jvp(" in op_name else OPTIMIZER
    parts = op_name.split("/")
    while len(parts) > 1 and parts[0] in _CALL_SCOPES:
        parts = parts[1:]
    kind = _base_type(op_type)
    if any(part.startswith(_GRADIENT_SCOPES) for part in parts[:-1]):
        return BACKWARD
    top = parts[0].lower()
    if _OPTIMIZER_SCOPE.match(top):
        return BACKWARD if kind in _ACCUMULATION_OPS else OPTIMIZER
    if len(parts) == 1:  # outside every scope: the step's arguments, gradient sums, metric state
        if kind == "AddN":
            return BACKWARD
        if kind in _STEP_EDGES:
            return FORWARD
        return LOSS_AND_METRICS
    if re.sub(r"_\d+$", "", top) in _LOSS_SCOPES or any(word in top for word in _LOSS_WORDS):
        return LOSS_AND_METRICS
    return FORWARD
