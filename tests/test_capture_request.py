"""The capture's request value and its TensorFlow-free child-process runner."""
import json
import subprocess
import sys

import pytest

from traceflops.capture.request import CaptureRequest
from traceflops.errors import UsageError


def test_a_request_travels_to_the_child_as_json_and_back_unchanged():
    request = CaptureRequest(batch_size=8, steps=4, warmup=1, train=True, input_shape={"image": [32, 32, 3]},
                             jit_compile=True, device="CPU:0")
    again = CaptureRequest.from_json(json.loads(json.dumps(request.to_json())))
    assert again == request
    assert again.shapes_by_name and not CaptureRequest(input_shape=(4,)).shapes_by_name
    assert request.replace(steps=2).steps == 2 and request.steps == 4  # frozen: replace makes a new one


@pytest.mark.parametrize("field, value", [("batch_size", 0), ("steps", 0), ("warmup", -1),
                                          ("host_tracer_level", 4), ("device", "TPU:0")])
def test_a_request_the_capture_cannot_run_is_refused_before_anything_starts(field, value):
    with pytest.raises(UsageError):
        CaptureRequest(**{field: value}).validate()


def test_the_child_process_runner_and_the_request_import_no_tensorflow_or_jax():
    code = ("import sys; import traceflops.capture.child_process, traceflops.capture.request, "
            "traceflops.capture.names; "
            "print(sorted(m for m in ('tensorflow', 'jax', 'keras') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
