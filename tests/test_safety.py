"""Safety of the capture: the profiler server is not reachable from outside, Ctrl-C exits cleanly."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from nonroot import NOBODY, nonroot_python

pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def nobody_python():
    with nonroot_python(NOBODY) as found:
        yield found


def _listeners() -> set:
    """(address, port) of every socket listening (state 0A) in this network namespace."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as stream:
            next(stream)  # header
            for line in stream:
                fields = line.split()
                if fields[3] == "0A":
                    address, port = fields[1].rsplit(":", 1)
                    found.add((address, int(port, 16)))
    return found


_LOOPBACK = {"0100007F", "00000000000000000000000001000000"}  # 127.0.0.1, ::1


def _exposed(before: set) -> set:
    """Listening sockets opened since `before` on an address other than loopback."""
    return {(a, p) for a, p in _listeners() - before if a not in _LOOPBACK}


def _poll_while_running(command, env, cwd=None, tail_s: float = 2.0):
    """Run `command`, polling the host namespace's listeners until it ends and `tail_s` after."""
    before = _listeners()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    exposed, polls = set(), 0
    while proc.poll() is None:
        exposed |= _exposed(before)
        polls += 1
        time.sleep(0.05)
    stdout, stderr = proc.communicate()
    deadline = time.time() + tail_s
    while time.time() < deadline:
        exposed |= _exposed(before)
        time.sleep(0.05)
    return proc, stdout, stderr, exposed, polls


API_RUN = """
import json, sys, time, traceflops
from traceflops.cli import example_model_path
result = traceflops.profile(example_model_path(), batch_size=2, steps=3, warmup=1, roofline=False)
print(json.dumps({"macs": result.summary["macs_per_step"], "warnings": result.summary["warnings"]}))
sys.stdout.flush()
time.sleep(3)  # the caller keeps polling: nothing may listen after profile() returned either
"""


def _check_no_exposure(run_as: list, python: str, cwd, env=None):
    """CLI and API captures: nothing listens beyond loopback, during or after; counts as before."""
    cli = run_as + [python, "-m", "traceflops", "profile", "--example", "--batch-size", "2", "--steps", "3",
                    "--warmup", "1", "--no-roofline", "--json"]
    proc, stdout, stderr, exposed, polls = _poll_while_running(cli, env, cwd)
    assert proc.returncode == 0, stderr
    assert polls > 10 and exposed == set(), exposed
    summary = json.loads(stdout)
    assert summary["macs_per_step"] == 25_446_912  # the example model at batch 2 (traces/README.md)
    # level 3 really ran (no fallback to level 2), inside the private namespace
    assert summary["host_tracer_level"] == 3
    assert not any("all interfaces" in w or "level 2" in w for w in summary["warnings"]), summary["warnings"]
    proc, stdout, stderr, exposed, polls = _poll_while_running(run_as + [python, "-c", API_RUN], env, cwd, tail_s=0)
    assert proc.returncode == 0, stderr
    assert polls > 10 and exposed == set(), exposed
    assert json.loads(stdout.splitlines()[-1])["macs"] == 25_446_912


def test_profiler_server_never_reachable_from_the_host_network_as_root(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    _check_no_exposure([], sys.executable, tmp_path, env)


def test_profiler_server_never_reachable_from_the_host_network_as_another_user(nobody_python):
    """The same as an unprivileged user, who gets no network namespace of its own but a user namespace
    with one (unshare -Urn)."""
    python, home = nobody_python
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1",
           "TRACEFLOPS_CACHE_DIR": str(home / "cache")}
    run_as = ["runuser", "-u", NOBODY, "--", "env", *[f"{k}={v}" for k, v in env.items()]]
    proc = subprocess.run(run_as + [python, "-c", "import os; print(os.getuid())"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() not in ("", "0"), proc.stderr  # really not root
    _check_no_exposure(run_as, python, home)


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
