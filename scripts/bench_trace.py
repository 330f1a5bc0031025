"""Time and memory of `traceflops analyze` against XProf's framework_op_stats on one synthetic trace.

    python scripts/bench_trace.py [--events 2000000] [--repeats 3] [--hosts 1]

Writes a synthetic TensorFlow host trace (`traceflops.trace.synthetic`) of N op
events once, then runs, alternately and each in its own process:

- ours:  `python -m traceflops analyze FILE --json` (end to end: parse, join, report);
- xprof: `xspace_to_tools_data([FILE], "framework_op_stats", {"use_saved_result": False})`
  from `xprof.convert._pywrap_profiler_plugin` (XProf's per-op table, the
  closest tool to ours), with any cache file it leaves beside the trace
  removed before every run.

Each child's wall time is measured around it and its peak RSS read from
`os.wait4`'s rusage (ru_maxrss) for that child alone. The trace is written by
a child process too: Linux records in a child's ru_maxrss the peak of the
process it was started from (exec keeps the old address space's high-water
mark), so this process stays small. Prints per tool the median seconds,
events per second (all XEvents in the file) and median peak RSS, and the
ratios ours / xprof. With `--hosts K` the run directory holds K files
(different host names) and both tools read all of them.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Run in a child: writes the traces, prints the number of events in them.
WRITE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from traceflops.trace import synthetic\n"
    "from traceflops.trace.files import _XSpaceView\n"
    "events, paths = int(sys.argv[1]), sys.argv[2:]\n"
    "total = 0\n"
    "for k, path in enumerate(paths):\n"
    "    data = synthetic.synthetic_trace(events, seed=k, hostname=f'synthetic-host-{k}')\n"
    "    Path(path).write_bytes(data)\n"
    "    space = _XSpaceView()\n"
    "    space.ParseFromString(data)\n"
    "    total += sum(len(line.events) for plane in space.planes for line in plane.lines)\n"
    "print(total)\n"
)

XPROF = (
    "import sys\n"
    "from xprof.convert import _pywrap_profiler_plugin as p\n"
    "data, ok = p.xspace_to_tools_data(sys.argv[1:], 'framework_op_stats', {'use_saved_result': False})\n"
    "sys.exit(0 if ok and data else 1)\n"
)


def run_child(argv, cwd=None) -> tuple:
    """(wall seconds, peak RSS in bytes, exit code) of one child process."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env)
    # Read stderr while waiting so a chatty child never blocks on a full pipe.
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise SystemExit(f"{argv[:4]} failed with exit code {proc.returncode}: {' | '.join(tail)}")
    return wall, usage.ru_maxrss * 1024, proc.returncode


def clean(run_dir: Path, keep) -> None:
    """Remove whatever a tool left in the run directory (XProf caches its op stats there)."""
    for item in run_dir.iterdir():
        if item not in keep:
            shutil.rmtree(item) if item.is_dir() else item.unlink()


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kb = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        memory = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{platform.system()} {platform.machine()}, {cpu}, {os.cpu_count()} cores{memory}, Python {platform.python_version()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000, help="op events per host (default 2,000,000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each tool (default 3)")
    parser.add_argument("--hosts", type=int, default=1, help="trace files in the run directory (default 1)")
    parser.add_argument("--keep", metavar="DIR", help="write the trace here and keep it")
    args = parser.parse_args(argv)

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="traceflops-bench-"))
    run_dir = work / "plugins" / "profile" / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        started = time.perf_counter()
        files = [run_dir / f"host{k}.xplane.pb" for k in range(max(1, args.hosts))]
        written = subprocess.run([sys.executable, "-c", WRITE, str(args.events), *map(str, files)], cwd=str(REPO),
                                 capture_output=True, text=True, check=True)
        events = int(written.stdout.split()[-1])
        size = sum(f.stat().st_size for f in files)
        print(f"trace: {len(files)} file(s), {size / 1e6:.1f} MB, {args.events:,} op events per file, "
              f"{events:,} events in all (written in {time.perf_counter() - started:.1f} s)")
        print(f"machine: {machine()}")
        target = str(files[0]) if len(files) == 1 else str(run_dir)
        ours_cmd = [sys.executable, "-m", "traceflops", "analyze", target, "--json"]
        xprof_cmd = [sys.executable, "-c", XPROF, *map(str, files)]
        print(f"ours:  {' '.join(ours_cmd)}")
        print("xprof: xspace_to_tools_data([...], 'framework_op_stats', {'use_saved_result': False})")
        results = {"ours": [], "xprof": []}
        keep = set(files)
        for repeat in range(max(1, args.repeats)):
            for name, cmd in (("ours", ours_cmd), ("xprof", xprof_cmd)):
                clean(run_dir, keep)
                wall, rss, _ = run_child(cmd, cwd=str(REPO))
                results[name].append((wall, rss))
                print(f"  run {repeat + 1} {name:5s} {wall:6.2f} s  peak RSS {rss / 2**20:7.0f} MiB", flush=True)
        clean(run_dir, keep)
        print()
        print(f"{'tool':6s} {'median s':>9s} {'events/s':>12s} {'peak RSS MiB':>13s}")
        medians = {}
        for name, runs in results.items():
            wall = statistics.median(w for w, _ in runs)
            rss = statistics.median(r for _, r in runs)
            medians[name] = (wall, rss)
            print(f"{name:6s} {wall:9.2f} {events / wall:12,.0f} {rss / 2**20:13.0f}")
        time_ratio = medians["ours"][0] / medians["xprof"][0]
        memory_ratio = medians["ours"][1] / medians["xprof"][1]
        print(f"ratio ours/xprof: time {time_ratio:.2f}, memory {memory_ratio:.2f}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
