"""`profile` and `peaks` without TensorFlow installed: one clear line naming the extra, exit 6.

Runs in both environments (no `tf` marker). Where TensorFlow is not installed
(`pip install -e ".[test]"`), the CLI runs exactly as a user runs it. Where it
is installed, the subprocess first puts a finder on `sys.meta_path` that
refuses `tensorflow` the way a missing package is refused: `import tensorflow`
raises ModuleNotFoundError with `name == "tensorflow"` (the first test checks
that the simulation matches).
"""
import importlib.util
import subprocess
import sys

from conftest import CLI_ENV, TRACES, assert_clean_failure, run_cli
from traceflops.capture.tf import TENSORFLOW_MISSING
from traceflops.errors import MissingExtraError

TENSORFLOW_INSTALLED = importlib.util.find_spec("tensorflow") is not None
NO_TENSORFLOW = """
import sys

REFUSED = ("tensorflow",) + (("jax", "jaxlib") if "--no-jax" in sys.argv else ())


class _NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in REFUSED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoTensorFlow())
"""
AS_CLI = NO_TENSORFLOW + """
import runpy
sys.argv[0] = "traceflops"
sys.argv = [a for a in sys.argv if a != "--no-jax"]
runpy.run_module("traceflops", run_name="__main__", alter_sys=True)
"""
LINE = ('traceflops: error: profile and peaks need TensorFlow, which is not installed: '
        'pip install "traceflops[cpu]" (or "traceflops[gpu]")')


def python(code, *args):
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=CLI_ENV, timeout=300)


def cli_without_tensorflow(*args):
    """`python -m traceflops ARGS` where TensorFlow cannot be imported."""
    if TENSORFLOW_INSTALLED:
        return python(AS_CLI, *args)
    return run_cli(*args)


def test_the_finder_refuses_tensorflow_as_a_missing_package_is_refused():
    proc = python(NO_TENSORFLOW + """
try:
    import tensorflow
except ModuleNotFoundError as exc:
    print(type(exc).__name__, exc.name, exc)
""")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ModuleNotFoundError tensorflow No module named 'tensorflow'\n"


def test_profile_example_names_the_missing_extra(tmp_path):
    out = tmp_path / "out"
    proc = cli_without_tensorflow("profile", "--example", "--out", out)
    assert_clean_failure(proc, 6, 'pip install "traceflops[cpu]"', "TensorFlow")
    assert proc.stderr == LINE + "\n" and proc.stdout == ""
    assert not out.exists() or list(out.iterdir()) == []


def test_peaks_names_the_missing_extra():
    """With JAX installed, peaks measures through JAX instead; with neither, the extra is named."""
    proc = python(AS_CLI, "peaks", "--json", "--no-jax") if TENSORFLOW_INSTALLED else run_cli("peaks", "--json")
    assert_clean_failure(proc, 6, 'pip install "traceflops[cpu]"', "TensorFlow")
    assert proc.stderr == LINE + "\n" and proc.stdout == ""


def test_python_api_raises_the_missing_extra_error(tmp_path):
    proc = python(NO_TENSORFLOW + """
import traceflops
from traceflops.cli import example_model_path
from traceflops.errors import MissingExtraError
from traceflops.roofline import peaks
for name, call in (("profile", lambda: traceflops.profile(example_model_path(), out=sys.argv[1])),
                   ("measure_peaks", lambda: peaks.measure_peaks("CPU:0"))):
    try:
        call()
    except MissingExtraError as exc:
        print(name, exc.exit_code, exc)
""", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"profile 6 {TENSORFLOW_MISSING}\nmeasure_peaks 6 {TENSORFLOW_MISSING}\n"
    assert MissingExtraError.exit_code == 6 and LINE == f"traceflops: error: {TENSORFLOW_MISSING}"


def test_analyze_still_works_where_tensorflow_is_refused():
    proc = cli_without_tensorflow("analyze", TRACES / "cpu-example-cnn", "--json")
    assert proc.returncode == 0, proc.stderr
    assert '"macs_per_step": 25446912' in proc.stdout
