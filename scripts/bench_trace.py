"""Time and memory of `traceflops analyze` against XProf's framework_op_stats on one synthetic trace.

    python scripts/bench_trace.py [--events 2000000] [--repeats 3] [--hosts 1]

Writes a synthetic TensorFlow host trace (`traceflops.testing.synthetic`) of N op
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
ratios ours / xprof. The peak of the whole process tree (the child and its
descendants: our worker processes, summed by proportional set size, so that
pages a forked worker shares with its parent count once) is sampled every 50 ms.
With `--hosts K` the run directory holds K files (different host names) and
both tools read all of them. `--out` adds a run of ours writing every output
file; `--no-xprof` times ours alone (the bounded-memory run: `--hosts 5
--no-xprof` is 10M op events).
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
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Run in a child: writes the traces, prints the number of events in them.
WRITE = (
    "import sys\n"
    "from pathlib import Path\n"
    "from traceflops.testing import synthetic\n"
    "from traceflops.trace.files import XSpaceView\n"
    "events, paths = int(sys.argv[1]), sys.argv[2:]\n"
    "total = 0\n"
    "for k, path in enumerate(paths):\n"
    "    data = synthetic.synthetic_trace(events, seed=k, hostname=f'synthetic-host-{k}')\n"
    "    Path(path).write_bytes(data)\n"
    "    space = XSpaceView()\n"
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


def _memory_of(pid: int) -> int:
    """Bytes of memory one process holds now: its proportional set size (a page shared by k processes,
    as a forked worker shares its parent's, counts 1/k to each), else its RSS; 0 where it is gone."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _tree_rss(pid: int) -> int:
    """Memory in bytes of a process and all its descendants now (`_memory_of`, summed), read from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    tree, frontier = {pid}, [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier and child not in tree]
        tree.update(frontier)
    return sum(_memory_of(member) for member in tree)


def _sample_tree(pid: int, peak: list, done: threading.Event) -> None:
    while not done.wait(0.05):
        peak[0] = max(peak[0], _tree_rss(pid))


def run_child(argv, cwd=None) -> tuple:
    """(wall seconds, peak RSS in bytes, exit code, sampled peak RSS of the whole process tree) of one child."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd, env=env)
    peak, done = [0], threading.Event()
    sampler = threading.Thread(target=_sample_tree, args=(proc.pid, peak, done), daemon=True)
    sampler.start()
    # Read stderr while waiting so a chatty child never blocks on a full pipe.
    err = proc.stderr.read()
    done.set()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
        raise SystemExit(f"{argv[:4]} failed with exit code {proc.returncode}: {' | '.join(tail)}")
    return wall, usage.ru_maxrss * 1024, proc.returncode, max(peak[0], usage.ru_maxrss * 1024)


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


def report(results: dict, events: int) -> None:
    """Medians per tool and the ratios of ours (and ours+out) to xprof."""
    print()
    print(f"{'tool':8s} {'median s':>9s} {'events/s':>12s} {'peak RSS MiB':>13s} {'tree MiB':>9s}")
    medians = {}
    for name, runs in results.items():
        wall, rss, tree = (statistics.median(run[i] for run in runs) for i in range(3))
        medians[name] = (wall, rss, tree)
        print(f"{name:8s} {wall:9.2f} {events / wall:12,.0f} {rss / 2**20:13.0f} {tree / 2**20:9.0f}")
    if "xprof" in medians:
        for name in (n for n in medians if n != "xprof"):
            print(f"ratio {name}/xprof: time {medians[name][0] / medians['xprof'][0]:.2f}, "
                  f"memory {medians[name][1] / medians['xprof'][1]:.2f} "
                  f"(process trees {medians[name][2] / medians['xprof'][2]:.2f})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000, help="op events per host (default 2,000,000)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each tool (default 3)")
    parser.add_argument("--hosts", type=int, default=1, help="trace files in the run directory (default 1)")
    parser.add_argument("--keep", metavar="DIR", help="write the trace here and keep it")
    parser.add_argument("--out", action="store_true", help="also time ours with --out (writes every output file)")
    parser.add_argument("--no-xprof", action="store_true", help="time ours only (e.g. a 10M-event bounded-memory run)")
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
        tools = [("ours", ours_cmd)]
        if args.out:
            tools.append(("ours+out", ours_cmd[:-1] + ["--out", str(work / "out")]))
            print(f"ours+out: the same with --out {work / 'out'}")
        if not args.no_xprof:
            tools.append(("xprof", xprof_cmd))
        results = {name: [] for name, _ in tools}
        keep = set(files)
        for repeat in range(max(1, args.repeats)):
            for name, cmd in tools:
                clean(run_dir, keep)
                wall, rss, _, tree = run_child(cmd, cwd=str(REPO))
                results[name].append((wall, rss, tree))
                print(f"  run {repeat + 1} {name:8s} {wall:6.2f} s  peak RSS {rss / 2**20:7.0f} MiB"
                      f"  process tree {tree / 2**20:7.0f} MiB", flush=True)
        clean(run_dir, keep)
        report(results, events)
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
