"""Safety of the capture: the profiler server is not reachable from outside, Ctrl-C exits cleanly."""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

import traceflops
from traceflops import capture

pytestmark = pytest.mark.tf


def _listening_in_host_namespace(port: int) -> bool:
    """Whether any socket in this network namespace listens (state 0A) on `port`."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as stream:
            next(stream)  # header
            for line in stream:
                fields = line.split()
                if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
                    return True
    return False


def test_profiler_server_is_not_reachable_from_the_host_network(tf_runtime, tmp_path):
    import keras
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)], name="tiny")
    result = traceflops.profile(model, out=tmp_path / "out", batch_size=2, steps=2, warmup=1, roofline=False)
    service = capture.profiler._SERVICE
    assert service is not None and service.port
    if service.isolated:
        # the server's socket lives in a private network namespace: nothing listens here
        assert not _listening_in_host_namespace(service.port)
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex(("127.0.0.1", service.port)) != 0
        assert not any("all interfaces" in w for w in result.summary["warnings"])
    else:
        # where namespaces are not permitted the run says so, loudly
        assert any("listened on all interfaces" in w for w in result.summary["warnings"])


def test_ctrl_c_exits_cleanly_without_partial_outputs(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen([sys.executable, "-m", "traceflops", "profile", "--example", "--steps", "2000",
                             "--out", str(out), "--no-roofline"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    # wait until the capture has started writing its staging directory, then interrupt
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and any(p.name.startswith(".traceflops") for p in out.iterdir())):
        time.sleep(0.2)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert [line for line in stderr.splitlines() if line.startswith("traceflops:")] == ["traceflops: interrupted"]
    assert sorted(p.name for p in out.iterdir()) == []  # staging removed, nothing half-written
