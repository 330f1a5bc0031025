"""Command line: a thin layer over `traceflops.api`.

Exit codes: 0 success; 1 other failure; 2 bad arguments or output directory;
3 model cannot be loaded; 4 trace missing or unreadable; 5 capture failed;
6 TensorFlow not installed (profile and peaks need the [cpu] or [gpu] extra);
70 internal error (a bug: please report it); 130 interrupted; 141 the reader of the output went away.
Errors are one line on stderr; set TRACEFLOPS_DEBUG=1 for a traceback.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from .errors import TraceflopsError

INTERNAL_ERROR = 70
INTERRUPTED = 130
BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader went away


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's own usage errors: one line, exit 2
        self.exit(2, f"traceflops: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="traceflops", description="Per-kernel FLOPs, time and FLOP/s for TensorFlow/Keras models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    prof = sub.add_parser("profile", help="run a model under the profiler and report per-op FLOP/s")
    prof.add_argument("model", nargs="?", help=".keras or .h5 file, or a SavedModel directory")
    prof.add_argument("--example", action="store_true", help="profile the bundled example model")
    prof.add_argument("--device", default="CPU:0", help="CPU:0 or GPU:N (default CPU:0)")
    prof.add_argument("--batch-size", type=int, default=1)
    prof.add_argument("--steps", type=int, default=10, help="profiled steps (default 10)")
    prof.add_argument("--warmup", type=int, default=3, help="warm-up calls before profiling (default 3)")
    prof.add_argument("--host-tracer-level", type=int, default=3, choices=(2, 3),
                      help="3 (default) records input shapes through a loopback profiler server; "
                           "2 uses the in-process profiler and takes shapes from the graph only")
    prof.add_argument("--inter-op-threads", type=int, default=1,
                      help="TensorFlow inter-op threads (default 1: ops run one at a time, so their "
                           "times add up; 0 leaves TensorFlow's default)")
    prof.add_argument("--backend", choices=("tensorflow", "jax"), default=None,
                      help="Keras backend to run the model on (default: $KERAS_BACKEND, else tensorflow); jax "
                           "profiles a jitted step through XLA and needs no TensorFlow (pip install "
                           "'traceflops[jax]')")
    prof.add_argument("--jit-compile", action="store_true",
                      help="compile the inference step with XLA (Keras does this by default on GPU)")
    prof.add_argument("--input-shape", action="append", metavar="[NAME:]D1,D2,...",
                      help="dimensions after the batch of an input the model leaves unknown, or of every input of "
                           "a subclassed model; repeat per input, NAME for models with several")
    prof.add_argument("--train", action="store_true",
                      help="profile full training steps (forward, loss, gradients, optimizer update) with the "
                           "model's compiled loss and optimizer (SGD and a loss fitting the output if it has none)")
    prof.add_argument("--expose-profiler-port", action="store_true",
                      help="where no private network namespace can be made, let TensorFlow's profiler server "
                           "listen on every interface (an unauthenticated service anyone who reaches this machine "
                           "can use) instead of capturing at host tracer level 2")
    prof.add_argument("--allow-unsafe", action="store_true",
                      help="load models Keras safe mode refuses (Lambda layers); only for files you trust")
    prof.add_argument("--refresh-ceilings", action="store_true",
                      help="measure the device's compute and memory ceilings again instead of using the cache")
    prof.add_argument("--no-roofline", action="store_true", help="skip the ceilings and the roofline")
    _common(prof)

    ana = sub.add_parser("analyze", help="analyse a trace recorded elsewhere (logdir, run dir or .xplane.pb)")
    ana.add_argument("path", nargs="+", help="logdir, run directory, .xplane.pb, or an fsspec URL (s3://...); "
                     "several: analysed together")
    ana.add_argument("--scheduler", metavar="ADDRESS",
                     help="run the per-file parse and pricing on this Dask scheduler (tcp://host:8786); "
                          "needs the dask extra")
    ana.add_argument("--steps", type=int, default=None, help="analyse this many steps (default: all)")
    ana.add_argument("--measure-ceilings", action="store_true",
                     help="when the trace carries no ceilings, use this machine's measured CPU ceilings")
    ana.add_argument("--model", default=None,
                     help="the model the trace ran (.keras/.h5): rebuild its graph to price a trace recorded "
                          "without shapes (TensorBoard profile_batch, tf.profiler.experimental.start)")
    ana.add_argument("--batch-size", type=int, default=None, help="with --model: the batch size the trace ran")
    ana.add_argument("--train", action="store_true", default=None,
                     help="with --model: the trace is of training steps (default: when it holds gradient ops)")
    ana.add_argument("--allow-unsafe", action="store_true",
                     help="with --model: load models Keras safe mode refuses; only for files you trust")
    _common(ana)

    cnt = sub.add_parser("count", help="model FLOPs and MACs per layer from the Keras layer configs (no profiler)")
    cnt.add_argument("model", help=".keras or .h5 file")
    cnt.add_argument("--batch-size", type=int, default=1)
    cnt.add_argument("--input-shape", action="append", metavar="[NAME:]D1,D2,...",
                     help="dimensions after the batch of an input the model leaves unknown; repeat per input, "
                          "NAME for models with several")
    cnt.add_argument("--train", action="store_true",
                     help="count a training step: forward + backward, the optimizer's update apart")
    cnt.add_argument("--json", action="store_true", help="print the count as JSON instead of a table")

    pk = sub.add_parser("peaks", help="measure (or show cached) compute and memory ceilings of a device")
    pk.add_argument("--device", default="CPU:0")
    pk.add_argument("--refresh", action="store_true", help="measure again instead of using the cache")
    pk.add_argument("--backend", choices=("tensorflow", "jax"), default=None,
                    help="measure through TensorFlow or JAX (default: jax when KERAS_BACKEND=jax or TensorFlow "
                         "is not installed, else tensorflow)")
    pk.add_argument("--json", action="store_true")
    return parser


def _common(parser):
    parser.add_argument("--out", help="directory for ops.csv, summary.json and other outputs")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of tables")
    parser.add_argument("--top", type=int, default=15, help="ops shown in the terminal table")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="efficiency below which an op taking >= 1%% of the time is underutilized (default 0.5)")


def example_model_path() -> str:
    from importlib import resources
    return str(resources.files("traceflops") / "data" / "example_cnn.keras")


def _peaks(args) -> int:
    from .roofline import peaks
    env_jax = "jax" if os.environ.get("KERAS_BACKEND", "").strip().lower() == "jax" else None
    backend = peaks.measuring_backend(args.backend or env_jax)
    if backend == "jax":
        from .capture.jax_capture import check_jax_installed, short_device
        check_jax_installed()
        device = short_device(args.device)
    else:
        from . import capture
        capture.set_threading(None)
        device = capture.resolve_device(args.device).replace("/device:", "")
    ceilings = peaks.get_ceilings(device, refresh=args.refresh, backend=backend)
    if args.json:
        from .report import to_jsonable
        print(json.dumps(to_jsonable(ceilings), indent=2))
        return 0
    theoretical = ceilings.get("theoretical") or {}
    print(f"{ceilings['device']}: ceilings {'from the cache' if ceilings.get('cached') else 'measured now'}"
          f" ({ceilings.get('cache_file')})")
    conditions = (ceilings.get("measured") or {}).get("conditions") or {}
    print(f"  {ceilings.get('age')}, confidence {ceilings.get('confidence') or 'unknown'}"
          + (f" ({conditions['confidence_reason']})" if conditions.get("confidence_reason") else ""))
    if ceilings.get("remeasured_because"):
        print(f"  the cached ceilings were measured again: {ceilings['remeasured_because']}")
    for dtype, value in ceilings["peak_gflops_per_s"].items():
        theory = (theoretical.get("peak_gflops_per_s") or {}).get(dtype)
        print(f"  {dtype:<10} {value:10.1f} GFLOP/s measured"
              + (f"   {theory:10.1f} GFLOP/s theoretical" if theory else ""))
    print(f"  bandwidth  {ceilings['bandwidth_gbytes_per_s']:10.1f} GB/s measured"
          + (f"   {theoretical['bandwidth_gbytes_per_s']:.1f} GB/s theoretical"
             if theoretical.get("bandwidth_gbytes_per_s") else "   (no theoretical figure on CPU)"))
    for assumption in theoretical.get("assumptions") or []:
        print(f"  assumption: {assumption}")
    print("  the roofline uses the measured figures")
    return 0


def _count(args) -> int:
    from .count import count
    from .count.table import render_count
    result = count(args.model, batch_size=args.batch_size, train=args.train,
                   input_shape=parse_input_shapes(args.input_shape))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        render_count(result)
    return 0


def _prefetch(args) -> None:
    """`analyze` of one large local file: start decoding most of it in a second process before the
    pipeline (pandas and the rest, most of a second) is imported here (trace/parallel.py)."""
    if args.command != "analyze" or args.scheduler or len(args.path) != 1 or not os.path.exists(args.path[0]):
        return
    from .trace.parallel import prefetch
    from .trace.source import XSPACE, find_files, source_of
    try:
        files = find_files(args.path[0])
    except TraceflopsError:
        return  # said again, in full, by analyze itself
    if len(files) == 1 and source_of(files[0]) is XSPACE:  # the XSpace parser's head start
        prefetch(files[0], tune_allocator=True)  # this process is the CLI's own


def _prestart(args) -> None:
    """`profile` on TensorFlow at host tracer level 3: start its sandboxed capture child now, before the
    rest of traceflops is imported, so that TensorFlow's import there starts as early as it can
    (capture/sandbox.py: prestart; `run` ends it if nothing used it)."""
    if args.command != "profile" or args.host_tracer_level != 3:
        return
    from .capture.options import resolve_backend
    try:
        if resolve_backend(args.backend) != "tensorflow":
            return
    except TraceflopsError:
        return  # said again by profile itself
    from .capture import sandbox
    sandbox.prestart()


def _run(args) -> int:
    _prefetch(args)
    _prestart(args)
    from . import api  # light: the stages are imported where used (profile: while its capture runs)
    if args.command == "peaks":
        return _peaks(args)
    if args.command == "count":
        return _count(args)
    if args.command == "profile":
        if args.example:
            args.model = example_model_path()
        if not args.model:
            raise_usage("profile needs a model path (or --example)")
        result = api.profile(args.model, out=args.out, device=args.device, batch_size=args.batch_size,
                             steps=args.steps, warmup=args.warmup, host_tracer_level=args.host_tracer_level,
                             allow_unsafe=args.allow_unsafe, expose_profiler_port=args.expose_profiler_port,
                             inter_op_threads=args.inter_op_threads or None, jit_compile=args.jit_compile,
                             roofline=not args.no_roofline, refresh_ceilings=args.refresh_ceilings,
                             threshold=args.threshold, train=args.train, backend=args.backend,
                             input_shape=parse_input_shapes(args.input_shape))
    else:
        if args.out:
            from .report.outputs import ensure_writable_dir
            ensure_writable_dir(args.out)
        path = args.path[0] if len(args.path) == 1 else args.path
        result = api.analyze(path, steps=args.steps, measure_ceilings=args.measure_ceilings,
                             threshold=args.threshold, scheduler=args.scheduler, model=args.model,
                             batch_size=args.batch_size, train=args.train, allow_unsafe=args.allow_unsafe)
        if args.out:
            result.write(args.out)
    from . import report
    if args.json:
        print(json.dumps(report.to_jsonable(result.summary), indent=2))
    else:
        report.render_terminal(result.ops, result.summary, top=args.top)
        training = result.summary.get("training")
        if training:
            print(f"training step: loss {training['loss']}, optimizer {training['optimizer']}"
                  + (" (defaults: the model had no compiled loss or optimizer)" if training["defaulted"] else
                     " (the model's compiled loss and optimizer)"))
        if args.out:
            extra = ", roofline.png, report.html" if result.ceilings is not None else ""
            print(f"wrote {args.out}/: ops.csv, summary.json{extra}")
    return 0


def parse_input_shapes(values):
    """`--input-shape` values to what the API takes: a tuple, a list of tuples, or {name: tuple}."""
    if not values:
        return None
    named, shapes = {}, []
    for value in values:
        name, sep, dims = value.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            raise_usage(f"--input-shape {value!r}: expected [NAME:]D1,D2,... with whole numbers")
        if not shape or any(d < 1 for d in shape):
            raise_usage(f"--input-shape {value!r}: every dimension must be at least 1")
        if sep:
            named[name] = shape
        else:
            shapes.append(shape)
    if named and shapes:
        raise_usage("--input-shape: name every input (NAME:D1,D2) or none")
    return named or (shapes[0] if len(shapes) == 1 else shapes)


def raise_usage(message: str):
    from .errors import UsageError
    raise UsageError(message)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except TraceflopsError as exc:
        print(f"traceflops: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("traceflops: interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:  # the reader of our output went away (`| head`): nothing to say, nowhere to say it
        _silence_stdout()
        return BROKEN_PIPE
    except Exception as exc:  # last resort: a bug must still not print a traceback
        if os.environ.get("TRACEFLOPS_DEBUG"):
            raise
        text = " ".join(str(exc).split())[:300]
        print(f"traceflops: internal error: {type(exc).__name__}: {text} "
              "(set TRACEFLOPS_DEBUG=1 for a traceback)", file=sys.stderr)
        return INTERNAL_ERROR
    finally:
        if "traceflops.capture.child_process" in sys.modules:  # a capture child started for nothing (an error)
            sys.modules["traceflops.capture.child_process"].discard_prestarted()


def run() -> None:
    """The `traceflops` command (and `python -m traceflops`): `main`, then an exit that skips tearing
    down the interpreter object by object (a quarter of a second after a large trace: its tables are
    millions of rows), once the output is flushed and any decoding child is reaped."""
    code = main()
    from .trace.parallel import discard_prefetched
    discard_prefetched()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        code = code or BROKEN_PIPE
    os._exit(code)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing what is left of it cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


if __name__ == "__main__":
    run()
