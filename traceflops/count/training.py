"""The optimizer's update per parameter in a counted training step, from the Keras 3 update rules.

FLOPs per trainable parameter element, counted op by op from `update_step` in
`keras/src/optimizers/*.py` (per-step scalars such as Adam's bias corrections
are not counted; a square root counts 1, as every transcendental):
SGD `v -= lr*g`: 2; momentum `m = m*mu - lr*g; v += m`: 4; Nesterov 7;
Adam 12 (`m += (g-m)(1-b1)`: 3, `v += (g^2-v)(1-b2)`: 4, `v -= m*alpha / (sqrt(v)+eps)`: 5), amsgrad +1;
RMSprop 9 (`v = rho*v + (1-rho)*g^2`: 4, `+eps`: 1, `lr*g / sqrt(.)`: 3, `v -= `: 1), centered +5,
momentum +2; any optimizer with `weight_decay` (AdamW's default) +3 (`v - v*wd*lr`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

WEIGHT_DECAY_FLOPS = 3


@dataclass
class OptimizerUpdate:
    """The optimizer counted: its Keras name, FLOPs per parameter element, and how that was decided."""
    name: str
    flops_per_parameter: Optional[int]
    note: str


def sgd_flops(optimizer) -> int:
    momentum = float(getattr(optimizer, "momentum", 0) or 0)
    if not momentum:
        return 2
    return 7 if getattr(optimizer, "nesterov", False) else 4


def adam_flops(optimizer) -> int:
    return 12 + (1 if getattr(optimizer, "amsgrad", False) else 0)


def rmsprop_flops(optimizer) -> int:
    flops = 9 + (5 if getattr(optimizer, "centered", False) else 0)
    return flops + (2 if float(getattr(optimizer, "momentum", 0) or 0) > 0 else 0)


UPDATE_RULES = {"SGD": sgd_flops, "Adam": adam_flops, "AdamW": adam_flops, "RMSprop": rmsprop_flops}


def optimizer_update(model) -> OptimizerUpdate:
    """The update of the model's compiled optimizer; SGD (stated) when none is compiled."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        return OptimizerUpdate("SGD", 2, "no optimizer compiled: SGD assumed")
    name = type(optimizer).__name__
    rule = UPDATE_RULES.get(name)
    if rule is None:
        return OptimizerUpdate(name, None, f"{name}: no update rule counted (SGD, Adam, AdamW, RMSprop are)")
    flops = rule(optimizer)
    if getattr(optimizer, "weight_decay", None):
        flops += WEIGHT_DECAY_FLOPS
    return OptimizerUpdate(name, flops, "the model's compiled optimizer")
