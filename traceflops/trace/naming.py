"""Framework naming rules: what the scopes of a TensorFlow op name and the frames of a JAX name stack say.

A trace source carries the naming rules of the frameworks whose traces it reads
(`source.py`: the XSpace source reads TensorFlow ops and XLA instructions named
by TensorFlow or by a JAX name stack); the graph and join stages ask these
objects instead of knowing `gradient_tape/` or `jit(...)` themselves.

TensorFlow (measured on Keras 3.15 / TF 2.21 steps, graph/phases.py): an op is
named by its scopes, `<model>/<layer>/.../<op>`; function calls add
`StatefulPartitionedCall/` in front, gradients `gradient_tape/`, the optimizer
its lower-cased name (`adam/...`), the compiled loss `compile_loss/...`; a
tensor is `<node>:<k>`.

JAX: the name stack starts with the jitted (or pmapped) function, `jit(step)/...`;
transformations wrap the scopes they apply to: `jvp(...)` the differentiated
function, `transpose(jvp(...))` its gradients.
"""
from __future__ import annotations

import re

# Keras optimizer scope names, lower-cased (TF may add `_1`).
_OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "ftrl", "lion",
               "lamb", "adafactor", "loss_scale_optimizer", "lossscaleoptimizer", "optimizer")
_OPTIMIZER_SCOPE = re.compile(r"^(%s)(_\d+)?(_|$)" % "|".join(_OPTIMIZERS))
_LOSS_SCOPES = ("compile_loss", "compile_metrics", "loss", "metrics", "loss_tracker")
_LOSS_WORDS = ("crossentropy", "mean_squared_error", "mean_absolute_error", "hinge", "huber", "poisson",
               "kl_divergence", "cosine_similarity", "accuracy", "log_cosh")
_NAME_STACK = re.compile(r"^(jit|pjit|pmap|xla_pmap)\(")


class TfNaming:
    """TensorFlow's op and tensor names (module doc)."""
    framework = "tensorflow"
    call_scopes = ("StatefulPartitionedCall", "PartitionedCall")
    gradient_scopes = ("gradient_tape", "gradients")
    gradient_mark = "gradient_tape/"  # in the name of every op of a tape's gradients

    def marks_gradients(self, op_name: str) -> bool:
        """Whether the name shows an op of a gradient computation (a trace of training steps holds them)."""
        return self.gradient_mark in op_name

    def scope_parts(self, op_name: str) -> list:
        """The name's parts without the leading function-call scopes (the op's own name stays)."""
        parts = op_name.split("/")
        while len(parts) > 1 and parts[0] in self.call_scopes:
            parts = parts[1:]
        return parts

    def in_gradient_scope(self, parts: list) -> bool:
        """Whether a scope of `scope_parts` (the op's own name aside) is a gradient scope."""
        return any(part.startswith(self.gradient_scopes) for part in parts[:-1])

    def model_parts(self, parts: list) -> list:
        """`parts` without the leading scopes calls and gradients add (`StatefulPartitionedCall_3/` too)."""
        while parts and (parts[0] in self.call_scopes or parts[0] == "gradient_tape"
                         or parts[0].startswith("StatefulPartitionedCall_")):
            parts = parts[1:]
        return parts

    @staticmethod
    def is_optimizer_scope(scope: str) -> bool:
        """A Keras optimizer's scope (`adam`, `sgd_1`...), lower-cased."""
        return bool(_OPTIMIZER_SCOPE.match(scope))

    @staticmethod
    def is_loss_scope(scope: str) -> bool:
        """The compiled loss's or metrics' scope (`compile_loss`, `categorical_crossentropy`...), lower-cased."""
        return re.sub(r"_\d+$", "", scope) in _LOSS_SCOPES or any(word in scope for word in _LOSS_WORDS)

    @staticmethod
    def node_of(tensor: str) -> str:
        """The node of a tensor name: `model/dense/MatMul:0` -> `model/dense/MatMul`."""
        return tensor.rpartition(":")[0]


class JaxNaming:
    """JAX's name stacks (module doc)."""
    framework = "jax"
    gradient_mark = "transpose(jvp("
    forward_mark = "jvp("

    @staticmethod
    def owns(op_name: str) -> bool:
        """Whether the name is a JAX name stack (starts with the jitted or pmapped function)."""
        return bool(_NAME_STACK.match(op_name))

    def marks_gradients(self, op_name: str) -> bool:
        """Whether the name is inside the gradients of the differentiated function."""
        return self.gradient_mark in op_name

    def in_differentiated(self, op_name: str) -> bool:
        """Inside the differentiated function (its forward pass and loss, or their gradients)."""
        return self.forward_mark in op_name

    @staticmethod
    def without_frames(parts: list) -> list:
        """Name parts without transformation frames (`jit(step)`, `jvp(...)`: a layer name has no parenthesis)."""
        return [p for p in parts if "(" not in p]


TF_NAMING = TfNaming()
JAX_NAMING = JaxNaming()
NAMINGS = (TF_NAMING, JAX_NAMING)


def marks_gradients(op_name: str, namings: tuple = NAMINGS) -> bool:
    """Whether any of `namings` reads the name as an op of a gradient computation."""
    return any(naming.marks_gradients(op_name) for naming in namings)
