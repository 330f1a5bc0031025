"""What a capture is asked (`CaptureRequest`, one frozen value from the API to the capture child and
back into the capture) and what it gives back (`CaptureResult`)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from .options import validate_capture_options


@dataclass(frozen=True)
class CaptureRequest:
    """How to run and record the model; the model itself and the logdir are passed beside it.

    `input_shape`: the dimensions after the batch of inputs the model leaves unknown (a tuple, a list of
    tuples, or a dict by input name), or of every input of a subclassed model. `allow_unsafe`: load
    models Keras safe mode refuses (Lambda layers). `allow_exposed_server`: where no private network
    namespace can be made, start the level-3 profiler server anyway, reachable on every interface.
    """
    batch_size: int = 1
    steps: int = 10
    warmup: int = 3
    device: str = "CPU:0"
    host_tracer_level: int = 3
    inter_op_threads: Optional[int] = 1
    jit_compile: bool = False
    train: bool = False
    seed: int = 0
    input_shape: Any = None
    allow_unsafe: bool = False
    allow_exposed_server: bool = False

    def validate(self) -> "CaptureRequest":
        """Itself, once every option is one the capture can use (UsageError naming the flag otherwise)."""
        validate_capture_options(self.batch_size, self.steps, self.warmup, self.host_tracer_level, self.device)
        return self

    def replace(self, **changes) -> "CaptureRequest":
        return dataclasses.replace(self, **changes)

    @property
    def shapes_by_name(self) -> bool:
        """Whether `input_shape` names the inputs (a dict), so that inputs are passed as a dict."""
        return isinstance(self.input_shape, dict)

    def to_json(self) -> dict:
        """As JSON-able data, for a child process (`from_json` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "CaptureRequest":
        return cls(**data)


@dataclass
class CaptureResult:
    logdir: str
    run_dir: str
    trace_files: list
    steps_requested: int
    step_wall_times_us: list
    device: str
    batch_size: int
    model_name: str
    inter_op_threads: Optional[int]
    host_tracer_level: int
    graph_nodes: int
    extra: dict = field(default_factory=dict)
