"""Synthetic XSpace traces in TensorFlow's host layout, for benchmarks and tests.

`synthetic_trace(num_ops)` returns the bytes of an `.xplane.pb` that looks like
what TensorFlow's profiler writes for a Keras model run under traceflops:

- a `/host:CPU` plane whose `traceflops` line holds one `traceflops_step`
  marker per step (stats `step_num` and `_r`=1) and a couple of wrapper
  events per step (`step`, `TFE_Py_ExecuteCancelable`);
- several `tf_Compute/<tid>` lines with the op events, named `<node>:<Type>`
  with the type as the event metadata's display name, each carrying a
  `shape` stat whose value is interned (a `ref_value` naming a stat metadata
  entry, as real traces do), plus executor bookkeeping events the parser
  must skip (`ExecutorState::Process` with integer stats);
- optionally a call op per step enclosing the step's ops on its thread, so
  that self times must subtract nested ops;
- a `Task Environment` plane with `profile_start_time`, `profile_stop_time`
  and `profile_options`.

The planes, lines and metadata are built with `traceflops.testing.builder` (its
metadata interning gives the ids); the millions of events are encoded straight
to protobuf wire format with numpy (the same bytes protobuf would write: the
tests check this), since building them one message at a time takes minutes.

Options for damaged or unusual traces (used by the tests): `errors`,
`warnings` (XSpace lists), `dropped_traces` (a plane stat counting events the
profiler lost), `cut_last_step` (the capture stops inside the last step: its
marker is cut at the capture end and its last ops run past it),
`lose_last_marker` (the capture stopped before the last step's marker ended,
so it was not recorded, while its ops were), `absolute_times` (line
timestamps in nanoseconds since the epoch), `device_plane` (add a device
plane, e.g. `/device:TPU:0`, with kernels launched by the ops).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import numpy as np

from ..trace import xplane_schema
from .builder import PlaneBuilder, Uint64, field_bytes

# A realistic mix: (op type, input shapes) families, several nodes per family.
_OP_FAMILIES = [
    ("_MklNativeFusedConv2D", "(float[8,32,32,64];float[3,3,64,64];float[64])"),
    ("_MklNativeFusedConv2D", "(float[8,16,16,128];float[3,3,128,128];float[128])"),
    ("_MklNativeFusedDepthwiseConv2dNative", "(float[8,32,32,64];float[3,3,64,1];float[64])"),
    ("_MklNativeFusedMatMul", "(float[8,512];float[512,256];float[256])"),
    ("MatMul", "(float[8,256];float[256,10])"),
    ("BatchMatMulV2", "(float[8,4,64,32];float[8,4,32,64])"),
    ("BiasAdd", "(float[8,10];float[10])"),
    ("Relu", "(float[8,32,32,64])"),
    ("AddV2", "(float[8,32,32,64];float[8,32,32,64])"),
    ("Mul", "(float[8,16,16,128];float[128])"),
    ("Softmax", "(float[8,10])"),
    ("MaxPool", "(float[8,32,32,64])"),
    ("Mean", "(float[8,16,16,128];int32[2])"),
    ("Reshape", "(float[8,4,4,128];int32[2])"),
    ("Transpose", "(float[8,64,4,32];int32[4])"),
    ("Cast", "(int32[8,128])"),
    ("ReadVariableOp", "(resource)"),
    ("Identity", "(float[8,10])"),
    ("_Arg", "()"),
    ("_Retval", "(float[8,10])"),
]
_CALL_OP = ("StatefulPartitionedCall", "(float[8,64,64,3])")
_PROFILE_START_NS = 1_795_589_134_396_116_159
_BASE_PS = 7389 * 1000  # line timestamps: 7389 ns after the profile start
_NOISE_NAMES = ["ExecutorState::Process", "ExecutorState::Process Scheduled", "ThreadpoolListener::StartRegion"]


# ---------------------------------------------------------------- wire format

def varint_lengths(values: np.ndarray) -> np.ndarray:
    """Bytes each value takes as a protobuf varint (negative int64: 10)."""
    v = np.asarray(values).astype(np.uint64, copy=False)
    n = np.ones(len(v), dtype=np.int64)
    for k in range(1, 10):
        n += v >= np.uint64(1 << (7 * k))
    return n


def encode_rows(parts: Sequence, with_sizes: bool = False):
    """Concatenate, row by row, parts that are constant bytes or varint columns.

    `parts` is a list of `bytes` (written in every row) or integer arrays (one
    varint per row); every array has the same length, the number of rows.
    With `with_sizes`, returns (bytes, size of each row).
    """
    rows = next(len(p) for p in parts if not isinstance(p, (bytes, bytearray)))
    sizes = []
    encoded = []
    for part in parts:
        if isinstance(part, (bytes, bytearray)):
            sizes.append(np.full(rows, len(part), dtype=np.int64))
            encoded.append(part)
        else:
            values = np.asarray(part).astype(np.uint64, copy=False)
            sizes.append(varint_lengths(values))
            encoded.append(values)
    row_len = np.sum(sizes, axis=0)
    row_start = np.zeros(rows, dtype=np.int64)
    np.cumsum(row_len[:-1], out=row_start[1:])
    out = np.zeros(int(row_len.sum()), dtype=np.uint8)
    cursor = row_start.copy()
    for size, part in zip(sizes, encoded):
        if isinstance(part, (bytes, bytearray)):
            for j, byte in enumerate(part):
                out[cursor + j] = byte
        else:
            for k in range(int(size.max(initial=1))):
                has = size > k
                chunk = ((part[has] >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
                chunk |= np.where(size[has] > k + 1, 0x80, 0).astype(np.uint8)
                out[cursor[has] + k] = chunk
        cursor += size
    return (out.tobytes(), row_len) if with_sizes else out.tobytes()


def encode_events(metadata_id, offset_ps, duration_ps, stats=(), with_sizes: bool = False):
    """XLine field 4 (events) for every row: `stats` is a list of (stat metadata id, kind, values).

    kind is "int64" or "ref" (the value a stat metadata id); ids are scalars or arrays.
    """
    n = len(metadata_id)
    body = [b"\x08", metadata_id, b"\x10", offset_ps, b"\x18", duration_ps]
    body_len = 3 + varint_lengths(metadata_id) + varint_lengths(offset_ps) + varint_lengths(duration_ps)
    for stat_id, kind, values in stats:
        ids = np.broadcast_to(np.asarray(stat_id, dtype=np.int64), (n,))
        values = np.broadcast_to(np.asarray(values, dtype=np.int64), (n,))
        tag = b"\x20" if kind == "int64" else b"\x38"
        stat_len = 2 + varint_lengths(ids) + varint_lengths(values)
        body += [b"\x22", stat_len, b"\x08", ids, tag, values]
        body_len = body_len + 1 + varint_lengths(stat_len) + stat_len
    return encode_rows([b"\x22", body_len] + body, with_sizes=with_sizes)


def merge_by_start(blocks) -> bytes:
    """Events of several `encode_events(..., with_sizes=True)` blocks, interleaved by start time.

    `blocks` is a list of ((bytes, sizes), starts); ties keep the blocks' order.
    """
    blocks = [(data, sizes, np.asarray(starts)) for (data, sizes), starts in blocks if len(sizes)]
    if not blocks:
        return b""
    data = np.frombuffer(b"".join(b[0] for b in blocks), dtype=np.uint8)
    sizes = np.concatenate([b[1] for b in blocks])
    starts = np.concatenate([b[2] for b in blocks])
    begin = np.cumsum(sizes) - sizes
    order = np.argsort(starts, kind="stable")
    sizes, begin = sizes[order], begin[order]
    out_begin = np.cumsum(sizes) - sizes
    index = np.repeat(begin - out_begin, sizes) + np.arange(int(sizes.sum()))
    return data[index].tobytes()


# ---------------------------------------------------------------- the trace

class _Schedule(NamedTuple):
    """When every op runs: per op its step, thread, node (index into the nodes) and times in ps."""
    step_of_op: np.ndarray
    thread_of_op: np.ndarray
    which: np.ndarray
    start: np.ndarray
    duration: np.ndarray
    step_start: np.ndarray
    step_end: np.ndarray
    capture_end: int


def _node_names(num_names: int, rng) -> list:
    nodes = []
    layer = 0
    while len(nodes) < num_names:
        for family, (op_type, shape) in enumerate(_OP_FAMILIES):
            if len(nodes) >= num_names:
                break
            nodes.append((f"model/layer_{layer}/{op_type.strip('_').lower()}_{family}", op_type, shape))
        layer += 1
    order = rng.permutation(len(nodes))
    return [nodes[i] for i in order]


def _host_metadata(host: PlaneBuilder, nodes) -> dict:
    """Intern the host plane's stats and events; ids of the stats, of each node and of the other events."""
    ids = {name: host.stat_metadata(name) for name in ("shape", "step_num", "_r", "id", "iter_num")}
    for node, op_type, shape in nodes:
        host.event_metadata(f"{node}:{op_type}", display_name=op_type)
        host.stat_metadata(shape)
    ids["node_meta"] = np.arange(1, len(nodes) + 1, dtype=np.int64)
    ids["node_shape"] = np.array([host.stat_metadata(shape) for _, _, shape in nodes], dtype=np.int64)
    for name in ["traceflops_step", "step", "TFE_Py_ExecuteCancelable"] + _NOISE_NAMES:
        ids[name] = host.event_metadata(name)
    return ids


def _schedule(num_ops: int, ops_per_step: int, threads: int, regular: int, rng, cut_last_step: bool) -> _Schedule:
    """Every step runs ops_per_step ops (the last step the remainder) spread over the compute
    threads; on each thread ops follow one another with small gaps."""
    steps = -(-num_ops // ops_per_step)
    step_of_op = np.repeat(np.arange(steps), ops_per_step)[:num_ops]
    thread_of_op = rng.integers(0, threads, num_ops)
    which = rng.integers(0, regular, num_ops)
    duration = rng.integers(1_000_000, 60_000_000, num_ops).astype(np.int64)  # 1-60 us in ps
    gap = rng.integers(100_000, 2_000_000, num_ops).astype(np.int64)
    # Lay steps out one after another; within a step each thread's ops are sequential.
    order = np.lexsort((np.arange(num_ops), thread_of_op, step_of_op))
    busy = duration[order] + gap[order]
    key = step_of_op[order] * threads + thread_of_op[order]
    run_start = np.r_[True, key[1:] != key[:-1]]
    csum = np.cumsum(busy)
    seg_base = np.maximum.accumulate(np.where(run_start, csum - busy, 0))
    local_start = csum - busy - seg_base  # start within its (step, thread) run
    run_len = np.zeros(steps * threads, dtype=np.int64)
    np.maximum.at(run_len, key, local_start + busy)
    step_len = run_len.reshape(steps, threads).max(axis=1) + 20_000_000  # + 20 us of step overhead
    step_start = np.zeros(steps, dtype=np.int64)
    np.cumsum(step_len[:-1] + 5_000_000, out=step_start[1:])
    step_start += 1_000_000_000  # the first step starts 1 ms into the capture
    start = np.empty(num_ops, dtype=np.int64)
    start[order] = step_start[step_of_op[order]] + 10_000_000 + local_start
    capture_end = int(step_start[-1] + step_len[-1] + 1_000_000_000)
    step_end = step_start + step_len
    if cut_last_step:
        # The capture stops inside the last step: its marker is cut at the stop time,
        # which falls before its last ops end.
        last_ops = np.flatnonzero(step_of_op == steps - 1)
        capture_end = int(np.median(start[last_ops] + duration[last_ops]))
        step_end[-1] = capture_end
    return _Schedule(step_of_op, thread_of_op, which, start, duration, step_start, step_end, capture_end)


def _compute_line(tid: int, mine: np.ndarray, plan: _Schedule, ids: dict, nested: bool, noise: float, rng,
                  line_ts_ns: int) -> bytes:
    """One `tf_Compute/<tid>` line with the ops `mine` (indices), events sorted by start as TensorFlow writes them."""
    meta_ids = ids["node_meta"][plan.which[mine]]
    shapes = ids["node_shape"][plan.which[mine]]
    offsets = plan.start[mine] - _BASE_PS
    durations = plan.duration[mine]
    blocks = []
    if nested and len(mine):
        # One call op per step and thread, enclosing that thread's ops of the step.
        s = plan.step_of_op[mine]
        first = np.r_[True, s[1:] != s[:-1]]
        last = np.r_[s[1:] != s[:-1], True]
        call_start = offsets[first] - 500_000
        call_end = (offsets + durations)[last] + 500_000
        call_meta = np.full(first.sum(), ids["node_meta"][-1], dtype=np.int64)
        call_shape = np.full(first.sum(), ids["node_shape"][-1], dtype=np.int64)
        blocks.append((encode_events(call_meta, call_start, call_end - call_start,
                                     [(ids["shape"], "ref", call_shape)], with_sizes=True), call_start))
    noisy = int(len(mine) * noise)
    if noisy:
        pick = np.sort(rng.choice(len(mine), noisy, replace=False))
        noise_meta = np.full(noisy, ids["ExecutorState::Process"], dtype=np.int64)
        noise_start = offsets[pick] - 80_000
        blocks.append((encode_events(noise_meta, noise_start, np.full(noisy, 60_000),
                                     [(ids["id"], "int64", rng.integers(-(2**62), 2**62, noisy)),
                                      (ids["iter_num"], "int64", 0)], with_sizes=True), noise_start))
    blocks.append((encode_events(meta_ids, offsets, durations, [(ids["shape"], "ref", shapes)], with_sizes=True),
                   offsets))
    header = xplane_schema.XLine(id=tid, name=f"tf_Compute/{tid}", timestamp_ns=line_ts_ns)
    return header.SerializeToString() + merge_by_start(blocks)


def _python_line(plan: _Schedule, ids: dict, lose_last_marker: bool, line_ts_ns: int) -> bytes:
    """The python thread: step markers and the wrappers inside them."""
    steps = len(plan.step_start)
    step_start, step_end = plan.step_start, plan.step_end
    marked = steps - 1 if lose_last_marker else steps  # a TraceMe still open at the stop is not recorded
    marker_meta = np.full(marked, ids["traceflops_step"], dtype=np.int64)
    python = [(encode_events(marker_meta, step_start[:marked] - _BASE_PS, (step_end - step_start)[:marked],
                             [(ids["step_num"], "int64", np.arange(marked, dtype=np.int64)),
                              (ids["_r"], "int64", 1)], with_sizes=True), step_start[:marked])]
    for k, name in enumerate(("step", "TFE_Py_ExecuteCancelable")):
        inner = 1_000_000 * (k + 1)
        python.append((encode_events(np.full(steps, ids[name], dtype=np.int64), step_start + inner - _BASE_PS,
                                     np.maximum(step_end - step_start - 2 * inner, 1), with_sizes=True),
                       step_start + inner))
    header = xplane_schema.XLine(id=6113359834869190121, name="traceflops", timestamp_ns=line_ts_ns)
    return header.SerializeToString() + merge_by_start(python)


def _environment_plane(capture_end: int, dropped_traces: Optional[int]) -> bytes:
    env = PlaneBuilder.standalone("Task Environment", id=1)
    env.stats({"profile_start_time": Uint64(_PROFILE_START_NS),
               "profile_stop_time": Uint64(_PROFILE_START_NS + capture_end // 1000),
               "profile_options": b"\x08\x01\x10\x03"})
    if dropped_traces is not None:
        env.stats({"dropped_traces": Uint64(int(dropped_traces))})
    return env.plane.SerializeToString()


def synthetic_trace(num_ops: int = 2_000_000, *, num_names: int = 150, ops_per_step: int = 500,
                    threads: int = 4, nested: bool = True, noise: float = 0.1, seed: int = 0,
                    hostname: str = "synthetic-host", errors: Sequence[str] = (), warnings: Sequence[str] = (),
                    dropped_traces: Optional[int] = None, cut_last_step: bool = False,
                    lose_last_marker: bool = False, absolute_times: bool = False,
                    device_plane: Optional[str] = None) -> bytes:
    """The bytes of a synthetic XSpace with `num_ops` op events (see the module doc)."""
    rng = np.random.default_rng(seed)
    num_ops = max(int(num_ops), 1)
    ops_per_step = max(1, min(int(ops_per_step), num_ops))
    threads = max(1, int(threads))

    host = PlaneBuilder.standalone("/host:CPU", id=0)
    nodes = _node_names(max(1, int(num_names)), rng)
    regular = len(nodes)
    if nested:
        nodes.append(("model/" + _CALL_OP[0], *_CALL_OP))
    ids = _host_metadata(host, nodes)
    plan = _schedule(num_ops, ops_per_step, threads, regular, rng, cut_last_step)

    # Times are relative to the profile's start, as TensorFlow writes them (or, with
    # absolute_times, lines carry nanoseconds since the epoch; offsets stay the same).
    line_ts_ns = _BASE_PS // 1000 + (_PROFILE_START_NS if absolute_times else 0)
    lines = []
    for t in range(threads):
        mine = np.flatnonzero(plan.thread_of_op == t)
        mine = mine[np.argsort(plan.start[mine], kind="stable")]
        lines.append(_compute_line(4824369108187599348 + 7919 * t, mine, plan, ids, nested, noise, rng, line_ts_ns))
    lines.append(_python_line(plan, ids, lose_last_marker, line_ts_ns))

    planes = [_plane_bytes(host.plane, lines)]
    if device_plane:
        planes.append(_device_plane(device_plane, nodes, plan.which, plan.start, plan.duration, rng, line_ts_ns))
    planes.append(_environment_plane(plan.capture_end, dropped_traces))
    head = xplane_schema.XSpace(errors=list(errors), warnings=list(warnings), hostnames=[hostname])
    return b"".join(field_bytes(1, p) for p in planes) + head.SerializeToString()


def _device_plane(name, nodes, which, start, duration, rng, line_ts_ns, max_kernels: int = 50_000) -> bytes:
    """A device plane with one kernel per op (at most `max_kernels`), launched after its op."""
    device = PlaneBuilder.standalone(name, id=2)
    tf_op = device.stat_metadata("tf_op")
    corr = device.stat_metadata("correlation_id")
    count = min(len(which), max_kernels)
    picked = np.sort(rng.choice(len(which), count, replace=False)) if count < len(which) else np.arange(count)
    meta_of_node = {}
    op_ref = {}
    for w in sorted(set(int(w) for w in which[picked])):
        node, op_type, _ = nodes[w]
        meta_of_node[w] = device.event_metadata(f"kernel_{op_type.strip('_').lower()}_{w}")
        op_ref[w] = device.stat_metadata(f"{node}:{op_type}")
    meta_ids = np.array([meta_of_node[int(w)] for w in which[picked]], dtype=np.int64)
    refs = np.array([op_ref[int(w)] for w in which[picked]], dtype=np.int64)
    begin = start[picked] + 2_000_000
    order = np.argsort(begin, kind="stable")
    events = encode_events(meta_ids[order], begin[order] - _BASE_PS, (duration[picked] // 2)[order],
                           [(tf_op, "ref", refs[order]), (corr, "int64", np.arange(count) + 1)])
    header = xplane_schema.XLine(id=1, name="stream 7", timestamp_ns=line_ts_ns)
    return _plane_bytes(device.plane, [header.SerializeToString() + events])


def _plane_bytes(plane, lines) -> bytes:
    """The plane with its serialized lines, fields in protobuf's order (id, name, lines, metadata, stats)."""
    head = xplane_schema.XPlane(id=plane.id, name=plane.name).SerializeToString()
    rest = xplane_schema.XPlane()
    rest.CopyFrom(plane)
    rest.ClearField("id")
    rest.ClearField("name")
    return head + b"".join(field_bytes(3, line) for line in lines) + rest.SerializeToString()


def write_synthetic_trace(path, num_ops: int = 2_000_000, **options) -> Path:
    """Write `synthetic_trace(num_ops, **options)` to `path` (a `.xplane.pb` file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(synthetic_trace(num_ops, **options))
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="write a synthetic TensorFlow host trace")
    parser.add_argument("path")
    parser.add_argument("--events", type=int, default=2_000_000, help="op events (default 2,000,000)")
    parser.add_argument("--names", type=int, default=150, help="distinct op nodes (default 150)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = write_synthetic_trace(args.path, args.events, num_names=args.names, seed=args.seed)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
