"""Fuzzing the trace parser: damaged bytes and random XSpace messages never crash it.

Properties:
- `traceflops.analyze(path)` on mutated or truncated real and synthetic traces,
  and on randomly built XSpace messages (wrong stat types, dangling metadata
  ids, negative durations, huge offsets, non-UTF-8 bytes), returns a Result or
  raises TraceflopsError, never anything else;
- the vectorised wire decoder agrees with a plain Python decoder on random bytes;
- on valid random messages the parser's events equal those of a plain
  per-event reading of protobuf's own parse (the reference below);
- self times agree with the stack walk on random intervals;
- the CLI on mutated files exits 0 or 4 without a traceback.

Bounded to run in well under a minute on two cores.
"""
import math
import re
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import traceflops
from traceflops.testing import synthetic
from traceflops.trace import EVENT_COLUMNS, load_trace, xplane_schema
from traceflops.trace.events import (DERIVED_DEVICE_LINES, KINDS, LAUNCHER_STATS, NUMBER_STATS, STRING_STATS,
                                     WANTED_EVENT_STATS)
from traceflops.trace.parse import parse_file, merge_shares
from traceflops.trace.timeline import nested_self_times
from traceflops.trace.tpu import SKIPPED_LINES as TPU_SKIPPED_LINES
from traceflops.trace.values import as_number, as_text, parse_launcher, split_op_event
from traceflops.trace.values import stat_value as decoded_stat_value
from traceflops.trace.wire import _Bad, decode_events, _py_fields, Wire
from traceflops.testing.builder import Ref, Uint64, XSpaceBuilder, varint
from traceflops.errors import TraceflopsError

from conftest import TRACES

REAL = TRACES / "cpu-example-cnn" / "host.xplane.pb"
REAL_BYTES = REAL.read_bytes()
SYNTHETIC_BYTES = synthetic.synthetic_trace(600, num_names=12, ops_per_step=100, threads=2,
                                            device_plane="/device:GPU:0")
# Under CI the examples are derandomized (the same ones every run), so the gate is reproducible;
# run locally, every run explores new examples.
_BASE = settings(deadline=None, database=None, derandomize=bool(os.environ.get("CI")),
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])


def fuzz(examples: int):
    """Bounded hypothesis settings: no deadline, no example database written into the checkout."""
    return settings(_BASE, max_examples=examples)


def analyze_bytes(data: bytes, with_graph: bool = False):
    """`traceflops.analyze` on `data` written as a run directory; returns the Result or the TraceflopsError."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "host.xplane.pb"
        path.write_bytes(data)
        if with_graph:
            for name in ("traceflops_graph.json", "traceflops_capture.json"):
                shutil.copy(REAL.parent / name, Path(tmp) / name)
        try:
            return traceflops.analyze(path)
        except TraceflopsError as exc:
            assert str(path.name) in str(exc) or "trace" in str(exc), exc
            return exc


# ---------------------------------------------------------------- damaged bytes

def mutations(source: bytes):
    size = len(source)
    flips = st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 255)), min_size=1, max_size=8)
    return st.one_of(
        st.integers(0, size - 1).map(lambda n: source[:n]),  # truncated
        flips.map(lambda fl: _flip(source, fl)),  # bytes overwritten
        st.tuples(st.integers(0, size - 1), st.binary(min_size=1, max_size=16)).map(
            lambda a: source[:a[0]] + a[1] + source[a[0]:]),  # bytes inserted
        st.tuples(st.integers(0, size - 1), st.integers(1, 64)).map(
            lambda a: source[:a[0]] + source[a[0] + a[1]:]),  # bytes deleted
    )


def _flip(source: bytes, flips) -> bytes:
    data = bytearray(source)
    for at, value in flips:
        data[at] = value
    return bytes(data)


@fuzz(250)
@given(mutations(REAL_BYTES))
def test_mutated_real_trace_never_crashes(data):
    result = analyze_bytes(data, with_graph=True)
    assert isinstance(result, (traceflops.api.Result, TraceflopsError))


@fuzz(150)
@given(mutations(SYNTHETIC_BYTES))
def test_mutated_synthetic_trace_never_crashes(data):
    result = analyze_bytes(data)
    assert isinstance(result, (traceflops.api.Result, TraceflopsError))


@fuzz(200)
@given(st.sampled_from([REAL_BYTES, SYNTHETIC_BYTES]).flatmap(mutations))
def test_mutated_trace_loads_or_fails_cleanly(data):
    """The parser alone (no full protobuf parse first): damaged events inside intact lines are skipped."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "host.xplane.pb"
        path.write_bytes(data)
        try:
            loaded = load_trace(path)
        except TraceflopsError as exc:
            assert "host.xplane.pb" in str(exc)
            return
    assert list(loaded.events.columns) == EVENT_COLUMNS
    assert (loaded.events["duration_ps"] >= 0).all()
    assert (loaded.events["self_ps"] <= loaded.events["duration_ps"]).all()


@fuzz(100)
@given(st.integers(0, len(REAL_BYTES) - 1))
def test_truncated_real_trace_fails_cleanly_naming_the_file(cut):
    result = analyze_bytes(REAL_BYTES[:cut], with_graph=True)
    # XPlane writes its metadata after its lines: a cut file cannot be salvaged.
    assert isinstance(result, TraceflopsError)
    assert "host.xplane.pb" in str(result)


# ---------------------------------------------------------------- random XSpace messages

STAT_NAMES = ["shape", "step_num", "_r", "hlo_op", "hlo_module", "program_id", "tf_op", "level 0", "annotation",
              "kernel_details", "memcpy_details", "correlation_id", "dropped_traces", "profile_start_time",
              "profile_stop_time", "profile_options", "id", "(float[2,3];float[3,4])", "a/b:MatMul#shape=(f[1])#",
              ""]
PLANE_NAMES = ["/host:CPU", "/device:GPU:0", "/device:TPU:0", "/device:XPU:0", "Task Environment",
               "/host:metadata", ""]
LINE_NAMES = ["tf_Compute/1", "python", "stream 1", "XLA Ops", "Steps", "TensorFlow Ops", ""]
EVENT_NAMES = ["a/b:MatMul", "conv:Conv2D", "traceflops_step", "ExecutorState::Process", "MemcpyH2D",
               "Memset", "kernel_x", "x:Y:Z", "::", ""]
DISPLAY_NAMES = ["", "MatMul", "Conv2D", "Y", "Z", "1bad"]
HUGE = st.integers(-(2**63), 2**63 - 1)


def int64s(valid: bool, low: int = 0, high: int = 10**9):
    if valid:
        return st.integers(low, high)
    return st.one_of(st.integers(-5, 10**9), HUGE, st.sampled_from([2**63 - 1, -(2**63), 2**62, -1]))


def stat_value(draw, stat_ids, valid):
    """A value of a random XStat type (None: no value at all), for the builder to write."""
    which = draw(st.sampled_from(["none", "double", "uint64", "int64", "str", "bytes", "ref"]))
    if which == "double":
        return draw(st.floats(allow_nan=not valid, allow_infinity=not valid, width=64))
    if which == "uint64":
        return Uint64(draw(st.integers(0, 2**64 - 1) if not valid else st.integers(0, 5)))
    if which == "int64":
        return draw(int64s(valid, -3, 5))
    if which == "str":
        return draw(st.sampled_from(STAT_NAMES) | st.text(max_size=12))
    if which == "bytes":
        return draw(st.binary(max_size=12))
    if which == "ref":
        return Ref(draw(st.sampled_from(stat_ids + [999]) if stat_ids else st.integers(0, 2**64 - 1)))
    return None


def _stats(draw, stat_ids, valid, most):
    """(raw stat metadata id, value) pairs: ids from the plane's, or the dangling 77."""
    return [(draw(st.sampled_from(stat_ids + [77])), stat_value(draw, stat_ids, valid))
            for _ in range(draw(st.integers(0, most)))]


def _random_line(draw, plane, meta_ids, stat_ids, valid):
    line = plane.line(draw(st.integers(0, 9)), draw(st.sampled_from(LINE_NAMES)),
                      display_name=draw(st.sampled_from(["", "Steps", "stream 2"])),
                      timestamp_ns=draw(int64s(valid, 0, 10**6)),
                      duration_ps=draw(st.sampled_from([0]) if valid else int64s(False)))
    for _ in range(draw(st.integers(0, 10))):
        metadata_id = draw(st.sampled_from(meta_ids + [55]) | st.integers(-9, 99))
        duration = draw(int64s(valid))
        if draw(st.booleans()):
            timing = {"offset_ps": draw(int64s(valid))}
        else:
            timing = {"num_occurrences": draw(st.integers(0, 3))}
        line.event(metadata_id=metadata_id, duration_ps=duration, stats=_stats(draw, stat_ids, valid, 3), **timing)


@st.composite
def xspaces(draw, valid: bool = False):
    """A random XSpace message; with `valid`, times that fit int64 and no durations below zero.

    Built with the trace builder, every metadata id explicit (drawn, negative, dangling or
    shared by several names) rather than interned, so the parser meets what a damaged
    or foreign trace holds."""
    space = XSpaceBuilder(hostnames=draw(st.lists(st.text(max_size=6), max_size=2)),
                          errors=draw(st.lists(st.text(max_size=12), max_size=2)),
                          warnings=draw(st.lists(st.text(max_size=12), max_size=2)))
    plane_names = st.sampled_from(PLANE_NAMES)
    for _ in range(draw(st.integers(0 if not valid else 1, 3))):
        name = draw(st.one_of(st.just("/host:CPU"), st.just("/device:GPU:0"), plane_names, st.text(max_size=8)))
        plane = space.plane(name, id=draw(st.integers(-3, 3)))
        stat_ids = draw(st.lists(st.integers(0, 30), max_size=10, unique=True))
        for sid in stat_ids:
            plane.stat_metadata(draw(st.sampled_from(STAT_NAMES)), id=sid)
        meta_ids = draw(st.lists(st.integers(-2, 30), min_size=1, max_size=8, unique=True))
        for mid in meta_ids:
            plane.event_metadata(draw(st.sampled_from(EVENT_NAMES)), draw(st.sampled_from(DISPLAY_NAMES)), id=mid,
                                 stats=_stats(draw, stat_ids, valid, 2))
        plane.stats(_stats(draw, stat_ids, valid, 2))
        for _ in range(draw(st.integers(1, 3))):
            _random_line(draw, plane, meta_ids, stat_ids, valid)
    return space.space


@fuzz(150)
@given(xspaces())
def test_random_xspace_never_crashes(space):
    result = analyze_bytes(space.SerializeToString())
    assert isinstance(result, (traceflops.api.Result, TraceflopsError))


@fuzz(25)
@given(xspaces(), st.data())
def test_random_xspace_with_non_utf8_strings_fails_cleanly(space, data):
    """A string field holding bytes that are not UTF-8: protobuf refuses the file, we say so."""
    marker = "\u00a7MARK\u00a7"
    where = data.draw(st.sampled_from(["hostname", "plane", "warning"]))
    if where == "hostname":
        space.hostnames.append(marker)
    elif where == "plane":
        space.planes.add(name=marker)
    else:
        space.warnings.append(marker)
    raw = space.SerializeToString()
    encoded = marker.encode()
    bad = b"\xff\xfe" + b"\xc3" * (len(encoded) - 2)
    result = analyze_bytes(raw.replace(encoded, bad))
    assert isinstance(result, TraceflopsError)


# ---------------------------------------------------------------- the wire decoder against plain Python

def _python_events(data: bytes, starts, ends):
    out = []
    for a, b in zip(starts, ends):
        try:
            fields = list(_py_fields(data, a, b))
        except _Bad:
            out.append(None)
            continue
        meta = offset = duration = 0
        stats = []
        for number, wire, x, y in fields:
            if wire == 0 and number == 1:
                meta = x
            elif wire == 0 and number == 2:
                offset = x
            elif wire == 0 and number == 3:
                duration = x
            elif wire == 2 and number == 4:
                stats.append((x, y))
        out.append((meta, offset, duration, stats))
    return out


varint_values = st.one_of(st.integers(0, 300), st.integers(0, 2**64 - 1), st.sampled_from([2**63, 2**64 - 1, 127, 128]))


@st.composite
def event_bodies(draw):
    """Bytes of one XEvent-like message: real fields, unknown fields, wrong wire types or plain noise."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=24))
    body = b""
    for _ in range(draw(st.integers(0, 6))):
        number = draw(st.sampled_from([1, 2, 3, 4, 5, 6, 15, 16, 300]))
        wire = draw(st.sampled_from([0, 0, 1, 2, 5, 3, 7]))
        tag = varint((number << 3) | wire)
        if wire == 0:
            body += tag + varint(draw(varint_values))
        elif wire == 1:
            body += tag + draw(st.binary(min_size=8, max_size=8))
        elif wire == 5:
            body += tag + draw(st.binary(min_size=4, max_size=4))
        elif wire == 2:
            inner = draw(st.binary(max_size=10))
            body += tag + varint(len(inner) + draw(st.sampled_from([0, 0, 0, 1, -1]))) + inner
        else:
            body += tag
    if draw(st.integers(0, 8)) == 0 and body:
        body = body[:draw(st.integers(0, len(body) - 1))]
    return body


@fuzz(150)
@given(st.lists(event_bodies(), min_size=1, max_size=80))
def test_vectorised_decoder_matches_python_decoder(bodies):
    data = b"".join(bodies) + bytes(16)
    sizes = np.array([len(b) for b in bodies], dtype=np.int64)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    wire = Wire(data)
    decoded = decode_events(wire, starts, ends)
    meta, offset, duration, bad = decoded.meta_id, decoded.offset_ps, decoded.duration_ps, decoded.bad
    stat_event, stat_start, stat_end = decoded.stat_event, decoded.stat_start, decoded.stat_end
    expected = _python_events(data, starts.tolist(), ends.tolist())
    for i, want in enumerate(expected):
        assert bool(bad[i]) == (want is None), (i, bodies[i])
        if want is None:
            continue
        got_stats = [(int(a), int(b)) for e, a, b in zip(stat_event, stat_start, stat_end) if e == i]
        got = (int(meta[i]) & (2**64 - 1), int(offset[i]) & (2**64 - 1), int(duration[i]) & (2**64 - 1),
               sorted(got_stats))
        assert got == (want[0], want[1], want[2], sorted(want[3])), (i, bodies[i])


# ---------------------------------------------------------------- events against a reference reading

def _reference_rows(space, path: str):
    """The events, read one protobuf object at a time, by the rules in traceflops/trace/events.py's docstring."""
    rows = []
    limit = 2**63 - 1
    for plane in space.planes:
        stat_names = {k: m.name for k, m in plane.stat_metadata.items()}
        is_device, is_host = plane.name.startswith("/device:"), plane.name.startswith("/host:CPU")
        if not (is_device or is_host):
            continue

        def stats_of(stats):
            out = {}
            for stat in stats:
                name = stat_names.get(stat.metadata_id)
                if name is None or name not in WANTED_EVENT_STATS:
                    continue
                out[name] = decoded_stat_value(stat, stat_names)
            return out

        is_tpu = plane.name.startswith("/device:TPU:")
        # A TPU's programs by id, from the metadata of its "XLA Modules" line (`jit_f(1219...)`).
        programs = {int(m.group(2)) & (2**64 - 1): m.group(1) for m in
                    (re.fullmatch(r"([^\s(]+)\((\d+)\)", meta.name) for meta in plane.event_metadata.values()) if m}

        def meta_stats_of(meta):
            out = stats_of(meta.stats)
            if is_tpu and out.get("program_id") is not None:  # an "XLA Ops" event: instruction, module
                if not out.get("hlo_op") and meta.display_name:
                    out["hlo_op"] = meta.display_name
                if not out.get("hlo_module"):
                    try:
                        module = programs.get(int(out["program_id"]) & (2**64 - 1))
                    except (TypeError, ValueError, OverflowError):
                        module = None
                    if module:
                        out["hlo_module"] = module
            return out

        for line in plane.lines:
            if is_tpu:  # a TPU's "XLA Ops" line is what ran; its async spans, modules... repeat it
                if line.name != "XLA Ops" and line.name in TPU_SKIPPED_LINES:
                    continue
            elif is_device and (line.name in DERIVED_DEVICE_LINES
                                or line.display_name in DERIVED_DEVICE_LINES):
                continue
            for event in line.events:
                meta = plane.event_metadata.get(event.metadata_id) if event.metadata_id in plane.event_metadata \
                    else None
                name = meta.name if meta is not None else ""
                own = stats_of(event.stats)
                merged = {**(meta_stats_of(meta) if meta is not None else {}), **own}
                kind = None
                if is_host:
                    op = split_op_event(meta.name, meta.display_name) if meta is not None else None
                    if op is not None:
                        kind = "op"
                    elif len(event.stats):
                        if "step_num" in own and own.get("_r") == 1 and not isinstance(own.get("_r"), bool):
                            kind = "step"
                        elif own.get("hlo_op"):
                            kind = "xla"
                    if kind is None:
                        continue
                else:
                    kind = "memcpy" if ("Memcpy" in name or "Memset" in name) else "kernel"
                start = line.timestamp_ns * 1000 + event.offset_ps
                if event.duration_ps < 0 or not (-limit - 1 <= start <= limit) \
                        or not (-limit - 1 <= line.timestamp_ns * 1000 <= limit) or start + event.duration_ps > limit:
                    continue
                text = {k: as_text(merged.get(k)) for k in STRING_STATS + LAUNCHER_STATS}
                shape = text["shape"]
                if kind == "op":
                    op_name, op_type = op
                elif kind == "step":
                    op_name, op_type, shape = name, "", None
                elif kind == "xla":
                    op_name, op_type, shape = text["hlo_op"], "", None
                else:
                    launcher = next((text[k] for k in LAUNCHER_STATS if text[k]), None)
                    op_name, op_type, from_annotation = parse_launcher(launcher) if launcher else ("", "", None)
                    shape = shape or from_annotation
                numbers = {k: as_number(merged[k]) if k in merged else math.nan for k in NUMBER_STATS}
                for k in ("correlation_id", "program_id"):  # ids: whole numbers only
                    v = numbers[k]
                    if not (math.isfinite(v) and v == math.floor(v) and abs(v) < 2.0**63):
                        numbers[k] = math.nan
                rows.append((plane.name, line.display_name or line.name, kind, name, op_name, op_type, start,
                             event.duration_ps, shape, *(numbers[k] for k in ("step_num", "correlation_id")),
                             text["kernel_details"], text["memcpy_details"], text["hlo_op"], text["hlo_module"],
                             numbers["program_id"]))
    return rows


def _our_rows(part):
    texts = part.strings
    cols = vars(part.columns)  # column name -> array

    def text(name, i):
        code = int(cols[name][i])
        return None if code < 0 else texts[code]

    kinds = KINDS
    rows = []
    for i in range(len(cols["start_ps"])):
        rows.append((text("plane", i), text("line", i), kinds[cols["kind"][i]], text("name", i), text("op_name", i),
                     text("op_type", i), int(cols["start_ps"][i]), int(cols["duration_ps"][i]), text("shape", i),
                     float(cols["step_num"][i]), float(cols["correlation_id"][i]), text("kernel_details", i),
                     text("memcpy_details", i), text("hlo_op", i), text("hlo_module", i),
                     float(cols["program_id"][i])))
    return rows


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    return a == b


@fuzz(120)
@given(xspaces(valid=True))
def test_events_match_a_plain_reading_of_protobufs_parse(space):
    assume(len(space.planes))
    data = space.SerializeToString()
    part = parse_file("x.xplane.pb", data)
    parsed = xplane_schema.XSpace()
    parsed.ParseFromString(data)
    want = _reference_rows(parsed, "x.xplane.pb")
    got = _our_rows(part)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert all(_same(x, y) for x, y in zip(g, w)), (g, w)



@fuzz(120)
@given(xspaces(), st.data())
def test_a_file_decoded_in_shares_is_the_file_decoded_whole(space, data):
    """Processes that each decode a run of the events (trace/parallel.py) give, merged, the rows and the
    damage lines of one process decoding them all, wherever the runs are cut, damaged events included."""
    assume(len(space.planes))
    blob = space.SerializeToString()
    try:
        whole = parse_file("x.xplane.pb", blob)
    except TraceflopsError as refused:
        with pytest.raises(TraceflopsError) as in_shares:  # the same first step refuses a share alike
            parse_file("x.xplane.pb", blob, share=(1, 2, 2))
        assert str(in_shares.value) == str(refused)
        return
    parts = data.draw(st.integers(2, 7))
    cuts = sorted(data.draw(st.lists(st.integers(0, parts), min_size=1, max_size=2)))
    bounds = [0, *cuts, parts]
    shares = [parse_file("x.xplane.pb", blob, share=(a, b, parts)) for a, b in zip(bounds, bounds[1:])]
    merged = merge_shares(shares)
    merged.columns = merged.columns.build()
    got, want = _our_rows(merged), _our_rows(whole)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert all(_same(x, y) for x, y in zip(g, w)), (g, w)
    assert merged.damage == whole.damage

# ---------------------------------------------------------------- self times against the stack walk

def _stack_self_times(line_keys, starts, durations):
    self_ps = list(durations)
    by_line = {}
    for i, key in enumerate(line_keys):
        by_line.setdefault(key, []).append(i)
    for rows in by_line.values():
        rows.sort(key=lambda i: (starts[i], -(starts[i] + durations[i])))
        stack = []
        for i in rows:
            start, end = starts[i], starts[i] + durations[i]
            while stack and stack[-1][0] <= start:
                stack.pop()
            if stack and end <= stack[-1][0]:
                self_ps[stack[-1][1]] -= end - start
            stack.append((end, i))
    return self_ps


@st.composite
def intervals(draw):
    n = draw(st.integers(2, 60))
    nested = draw(st.booleans())
    starts, durations = [], []
    for _ in range(n):
        if nested and starts and draw(st.booleans()):
            # inside an earlier interval: keeps the line properly nested more often
            j = draw(st.integers(0, len(starts) - 1))
            a = starts[j] + draw(st.integers(0, max(durations[j], 0)))
            d = draw(st.integers(0, max(starts[j] + durations[j] - a, 0)))
        else:
            a, d = draw(st.integers(0, 200)), draw(st.integers(0, 60))
        starts.append(a)
        durations.append(d)
    keys = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    return keys, starts, durations


@fuzz(150)
@given(intervals())
def test_self_times_match_the_stack_walk(case):
    keys, starts, durations = case
    got = nested_self_times(np.array(keys), np.ones(len(keys), dtype=bool), np.array(starts), np.array(durations))
    assert got.tolist() == _stack_self_times(keys, starts, durations)


# ---------------------------------------------------------------- the command line on damaged files

def test_cli_on_mutated_files_exits_cleanly(tmp_path):
    rng = np.random.default_rng(7)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    sources = [REAL_BYTES, SYNTHETIC_BYTES]
    cases = []
    for k in range(6):
        data = bytearray(sources[k % 2])
        if k < 2:
            data = data[: int(rng.integers(1, len(data)))]  # truncated
        else:
            for at in rng.integers(0, len(data), 4):
                data[int(at)] = int(rng.integers(0, 256))
        path = tmp_path / f"case{k}" / "host.xplane.pb"
        path.parent.mkdir()
        path.write_bytes(bytes(data))
        cases.append(path)
    for path in cases:
        proc = subprocess.run([sys.executable, "-m", "traceflops", "analyze", str(path), "--json"],
                              capture_output=True, text=True, env=env, timeout=120)
        assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
        assert proc.returncode in (0, 4), proc.stderr
        if proc.returncode == 4:
            ours = [line for line in proc.stderr.splitlines() if line.startswith("traceflops:")]
            assert len(ours) == 1 and "host.xplane.pb" in ours[0], proc.stderr
