"""Whole-process time of `traceflops profile` against a plain script that loads the model and runs
the same number of calls, side by side; and the profiler's own overhead on the step time.

    python scripts/bench_profile.py [--model PATH|resnet50v2] [--steps 10] [--warmup 3] [--batch-size 1] [--repeats 3]

`--model resnet50v2` builds Keras' ResNet50V2 (weights=None, 25.6 M parameters) into a temporary
`.keras` file first (in a child process; not timed): the issue's "ResNet-size model".

Runs, alternately and each in its own process (default model: the bundled example CNN):

- ours:  `python -m traceflops profile MODEL --steps S --warmup W --json` (the default: with the
  roofline, from this machine's cached ceilings, measured once before the timed runs by
  `traceflops peaks`; the capture runs in its sandboxed child process, which imports TensorFlow);
- plain: `python -c PLAIN MODEL CALLS BATCH`: import TensorFlow and Keras, load the model, and call it
  as one `tf.function` CALLS times (what the capture calls: 1 instantiating call, W warm-up calls,
  W unprofiled timed calls, S profiled calls and the spare before them), waiting for each result;
- plain+exit: the same script ending with `os._exit(0)`, as traceflops' capture child ends (its answer
  written, it skips TensorFlow's interpreter teardown): the ratio against it is what remains of
  traceflops' own overhead once that difference is set aside.

Prints per run the wall seconds, the medians, the ratio of the medians ours/plain, the median of the
per-repeat ratios (each repeat's runs are neighbours in time, so a drift of the machine's speed
cancels), and from ours' summary the profiler overhead (median profiled call / median unprofiled
warm call, same run).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_trace import machine  # noqa: E402

PLAIN = (
    "import sys, numpy as np\n"
    "import tensorflow as tf, keras\n"
    "path, calls, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
    "model = keras.saving.load_model(path, compile=False)\n"
    "shape = [batch] + [d or 1 for d in model.inputs[0].shape[1:]]\n"
    "x = tf.constant(np.random.default_rng(0).random(shape, dtype=np.float32))\n"
    "step = tf.function(lambda t: model(t, training=False))\n"
    "for _ in range(calls):\n"
    "    step(x).numpy()\n"
)
# The same script ending as traceflops' capture process does: exit at once, without tearing down the
# interpreter that loaded TensorFlow (over a second for ResNet50V2 on a 2-core machine).
PLAIN_QUICK_EXIT = PLAIN + "import os; sys.stdout.flush(); os._exit(0)\n"


def run(argv) -> tuple:
    """(wall seconds until the process exits, its stdout) of one command. Its output goes to files, not
    pipes: the wall time is the process's own, as a shell waiting for it sees it (traceflops' capture
    child, its stdout on our stderr, may still be returning its memory to the system then)."""
    import tempfile
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=str(REPO), env=env)
        proc.wait()
        wall = time.perf_counter() - start
        time.sleep(0.5)  # let a capture child that is still exiting finish before the next run starts
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0:
        tail = stderr.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise SystemExit(f"{argv[:4]} failed with exit code {proc.returncode}: {' | '.join(tail)}")
    return wall, stdout.decode("utf-8", "replace")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "traceflops" / "data" / "example_cnn.keras"))
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.model == "resnet50v2":
        import tempfile
        args.model = str(Path(tempfile.mkdtemp(prefix="traceflops-bench-")) / "resnet50v2.keras")
        run([sys.executable, "-c", "import sys, keras; keras.applications.ResNet50V2(weights=None)"
             ".save(sys.argv[1])", args.model])
    calls = 1 + 2 * max(args.warmup, 1) + args.steps + 1
    ours = [sys.executable, "-m", "traceflops", "profile", args.model, "--steps", str(args.steps),
            "--warmup", str(args.warmup), "--batch-size", str(args.batch_size), "--json"]
    plain = [sys.executable, "-c", PLAIN, args.model, str(calls), str(args.batch_size)]
    quick = [sys.executable, "-c", PLAIN_QUICK_EXIT, args.model, str(calls), str(args.batch_size)]
    print(f"machine: {machine()}")
    run([sys.executable, "-m", "traceflops", "peaks"])  # fills the ceilings cache: not timed
    print(f"ours:  {' '.join(ours[1:])}")
    print(f"plain: load {Path(args.model).name}, {calls} calls of one tf.function")
    walls = {"ours": [], "plain": [], "plain+exit": []}
    overheads = []
    for repeat in range(max(1, args.repeats)):
        for name, cmd in (("ours", ours), ("plain", plain), ("plain+exit", quick)):
            wall, out = run(cmd)
            walls[name].append(wall)
            line = f"  run {repeat + 1} {name:10s} {wall:6.2f} s"
            if name == "ours":
                summary = json.loads(out[out.index("{"):])
                overheads.append(summary.get("profiler_overhead"))
                line += (f"  profiler overhead {summary.get('profiler_overhead') or float('nan'):.3f}"
                         f" ({summary.get('profiled_step_wall_time_us') or float('nan'):.0f} vs "
                         f"{summary.get('unprofiled_step_wall_time_us') or float('nan'):.0f} µs per call)")
            print(line, flush=True)
    medians = {name: statistics.median(values) for name, values in walls.items()}
    print()
    for name, value in medians.items():
        print(f"{name:10s} median {value:6.2f} s")
    print(f"ratio ours/plain (whole process): {medians['ours'] / medians['plain']:.2f}")
    print(f"ratio ours/plain+exit (both skip TensorFlow's teardown): {medians['ours'] / medians['plain+exit']:.2f}")
    for peer in ("plain", "plain+exit"):
        paired = statistics.median(o / p for o, p in zip(walls["ours"], walls[peer]))
        print(f"median of per-repeat ratios ours/{peer}: {paired:.2f}")
    known = [o for o in overheads if o is not None]
    if known:
        print(f"profiler overhead (median of runs): {statistics.median(known):.3f}x the unprofiled step time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
