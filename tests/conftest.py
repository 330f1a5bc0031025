import os
import subprocess
import sys
from pathlib import Path

import pytest

# Nothing heavy here: TensorFlow is imported by the `tf_runtime` fixture, for tests marked `tf`.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parent.parent
TRACES = REPO / "traces"
SHARED_FIXTURES = REPO.parent / "shared" / "fixtures"


def pytest_collection_modifyitems(config, items):
    """A test that uses TensorFlow through `tf_runtime` must carry the `tf` marker (so -m "not tf" skips it)."""
    unmarked = [item.nodeid for item in items
                if "tf_runtime" in getattr(item, "fixturenames", ()) and item.get_closest_marker("tf") is None]
    if unmarked:
        raise pytest.UsageError("tests using tf_runtime without @pytest.mark.tf: " + ", ".join(unmarked))


@pytest.fixture(scope="session")
def tf_runtime():
    """TensorFlow with one inter-op thread, set before its runtime starts (as the CLI does)."""
    from traceflops import capture
    capture.set_threading(1)
    import tensorflow as tf
    return tf

CLI_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def run_cli(*args, cwd=None, env=None):
    """`python -m traceflops ARGS` in a subprocess, as a user runs it (`env`: variables added)."""
    return subprocess.run([sys.executable, "-m", "traceflops", *map(str, args)], capture_output=True,
                          text=True, env={**CLI_ENV, **(env or {})}, cwd=cwd, timeout=300)


def assert_clean_failure(proc, code, *words):
    """Exit `code`, no traceback, exactly one `traceflops:` line on stderr containing `words`."""
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    ours = [line for line in proc.stderr.splitlines() if line.startswith("traceflops:")]
    assert len(ours) == 1, proc.stderr
    for word in words:
        assert word in ours[0], ours[0]
