"""What `traceflops count` returns: per-layer rows, totals, what was not counted, its JSON and its table."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

ROW_FIELDS = ("layer", "type", "macs", "flops", "params")
CAUSAL_FIELDS = ("causal_macs", "causal_flops")
TRAIN_FIELDS = ("forward_macs", "forward_flops", "backward_macs", "backward_flops", "optimizer_flops")


@dataclass
class LayerRow:
    """One layer (path `outer/inner`): forward and backward sums over its calls."""
    layer: str
    type: str
    params: int = 0
    trainable_params: int = 0
    forward_flops: int = 0
    forward_macs: Optional[int] = None
    backward_flops: int = 0
    backward_macs: Optional[int] = None
    causal_flops: Optional[int] = None
    causal_macs: Optional[int] = None
    optimizer_flops: Optional[int] = None
    counted: bool = True
    calls: int = 0

    def add(self, count, train: bool) -> None:
        """Add one call's LayerCount."""
        self.calls += 1
        self.forward_flops += count.flops
        self.forward_macs = plus(self.forward_macs, count.macs)
        self.causal_flops = plus(self.causal_flops, count.causal_flops)
        self.causal_macs = plus(self.causal_macs, count.causal_macs)
        if train:
            self.backward_flops += count.backward_flops
            self.backward_macs = plus(self.backward_macs, count.backward_macs)

    @property
    def macs(self) -> Optional[int]:
        if not self.counted:
            return None
        return self.forward_macs if self.backward_macs is None else plus(self.forward_macs, self.backward_macs)

    @property
    def flops(self) -> Optional[int]:
        return self.forward_flops + self.backward_flops if self.counted else None


def plus(a: Optional[int], b: Optional[int]) -> Optional[int]:
    return a if b is None else (b if a is None else a + b)


class CountResult:
    """Model FLOPs of one step: `.layers` (DataFrame), `.macs`, `.flops`, `.not_counted`, `.to_dict()`.

    `flops` and `macs` are the forward pass, or with `train` forward + backward; the optimizer's update
    is apart (`optimizer_flops`)."""

    def __init__(self, model: str, batch_size: int, train: bool, rows: list, not_counted: list, optimizer=None):
        self.model, self.batch_size, self.train = model, batch_size, train
        self.rows, self.not_counted, self.optimizer = rows, not_counted, optimizer
        if train and optimizer is not None and optimizer.flops_per_parameter is not None:
            for row in rows:
                row.optimizer_flops = optimizer.flops_per_parameter * row.trainable_params

    @property
    def macs(self) -> int:
        return sum(row.macs or 0 for row in self.rows)

    @property
    def flops(self) -> int:
        return sum(row.flops or 0 for row in self.rows)

    @property
    def params(self) -> int:
        return sum(row.params for row in self.rows)

    @property
    def causal(self) -> bool:
        return any(row.causal_flops is not None for row in self.rows)

    def total(self, name: str) -> Optional[int]:
        values = [getattr(row, name) for row in self.rows if getattr(row, name) is not None]
        return sum(values) if values else None

    @property
    def optimizer_flops(self) -> Optional[int]:
        return self.total("optimizer_flops") if self.train else None

    def fields(self) -> tuple:
        return ROW_FIELDS + (CAUSAL_FIELDS if self.causal else ()) + (TRAIN_FIELDS if self.train else ())

    def row_dict(self, row: LayerRow) -> dict:
        return {name: getattr(row, name) for name in self.fields()}

    @property
    def layers(self):
        """One row per layer: layer, type, macs, flops, params (+ causal_*, + forward/backward/optimizer)."""
        import pandas as pd
        frame = pd.DataFrame([self.row_dict(row) for row in self.rows], columns=list(self.fields()))
        for name in self.fields()[2:]:
            frame[name] = frame[name].astype("Int64")
        return frame

    def to_dict(self) -> dict:
        found = {"model": self.model, "batch_size": self.batch_size, "train": self.train, "macs": self.macs,
                 "flops": self.flops, "params": self.params}
        if self.causal:
            found["causal_macs"], found["causal_flops"] = self.total("causal_macs"), self.total("causal_flops")
        if self.train:
            found.update(forward_flops=self.total("forward_flops"), backward_flops=self.total("backward_flops"),
                         optimizer=self.optimizer.name, optimizer_flops_per_parameter=self.optimizer.flops_per_parameter,
                         optimizer_flops=self.optimizer_flops, optimizer_note=self.optimizer.note)
        found["layers"] = [self.row_dict(row) for row in self.rows]
        found["not_counted"] = list(self.not_counted)
        return found

    def __repr__(self) -> str:
        return (f"CountResult({self.model!r}, batch_size={self.batch_size}, train={self.train}, "
                f"macs={self.macs:,}, flops={self.flops:,}, not_counted={len(self.not_counted)})")
