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

The planes, lines and metadata are built with `traceflops.xplane_schema`; the
millions of events are encoded straight to protobuf wire format with numpy
(the same bytes protobuf would write: the tests check this), since building
them one message at a time takes minutes.

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
from typing import Optional, Sequence

import numpy as np

from . import xplane_schema

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
_NOISE_NAMES = ["ExecutorState::Process", "ExecutorState::Process Scheduled", "ThreadpoolListener::StartRegion"]


# ---------------------------------------------------------------- wire format

def varint_lengths(values: np.ndarray) -> np.ndarray:
    """Bytes each value takes as a protobuf varint (negative int64: 10)."""
    v = np.asarray(values).astype(np.uint64, copy=False)
    n = np.ones(len(v), dtype=np.int64)
    for k in range(1, 10):
        n += v >= np.uint64(1 << (7 * k))
    return n


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


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


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


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

class _Interner:
    """Stat metadata: names of stats and interned string values share one id space."""

    def __init__(self, plane):
        self.plane = plane
        self.ids = {}

    def __call__(self, name: str) -> int:
        if name not in self.ids:
            key = len(self.ids) + 1
            self.ids[name] = key
            self.plane.stat_metadata[key].id = key
            self.plane.stat_metadata[key].name = name
        return self.ids[name]


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
    steps = -(-num_ops // ops_per_step)
    threads = max(1, int(threads))

    plane = xplane_schema.XPlane(id=0, name="/host:CPU")
    intern = _Interner(plane)
    shape_stat = intern("shape")
    step_num_stat = intern("step_num")
    root_stat = intern("_r")
    id_stat = intern("id")
    iter_stat = intern("iter_num")

    nodes = _node_names(max(1, int(num_names)), rng)
    if nested:
        nodes.append(("model/" + _CALL_OP[0], *_CALL_OP))
    for index, (node, op_type, shape) in enumerate(nodes):
        meta = plane.event_metadata[index + 1]
        meta.id = index + 1
        meta.name = f"{node}:{op_type}"
        meta.display_name = op_type
        intern(shape)
    node_meta = np.arange(1, len(nodes) + 1, dtype=np.int64)
    node_shape = np.array([intern(shape) for _, _, shape in nodes], dtype=np.int64)
    regular = len(nodes) - (1 if nested else 0)
    base_meta = len(nodes) + 1
    names = ["traceflops_step", "step", "TFE_Py_ExecuteCancelable"] + _NOISE_NAMES
    meta_of = {}
    for k, name in enumerate(names):
        meta = plane.event_metadata[base_meta + k]
        meta.id = base_meta + k
        meta.name = name
        meta_of[name] = base_meta + k

    # Ops: every step runs ops_per_step ops (the last step the remainder) spread over the
    # compute threads; on each thread ops follow one another with small gaps.
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

    profile_start_ns = 1_795_589_134_396_116_159
    # Times are relative to the profile's start, as TensorFlow writes them (or, with
    # absolute_times, lines carry nanoseconds since the epoch; offsets stay the same).
    line_ts_ns = 7389 + (profile_start_ns if absolute_times else 0)
    base_ps = 7389 * 1000
    capture_end = int(step_start[-1] + step_len[-1] + 1_000_000_000)
    step_end = step_start + step_len
    if cut_last_step:
        # The capture stops inside the last step: its marker is cut at the stop time,
        # which falls before its last ops end.
        last_ops = np.flatnonzero(step_of_op == steps - 1)
        ends = start[last_ops] + duration[last_ops]
        capture_end = int(np.median(ends))
        step_end[-1] = capture_end

    lines = []
    tids = [4824369108187599348 + 7919 * t for t in range(threads)]
    for t, tid in enumerate(tids):
        mine = np.flatnonzero(thread_of_op == t)
        mine = mine[np.argsort(start[mine], kind="stable")]
        meta_ids = node_meta[which[mine]]
        shapes = node_shape[which[mine]]
        offsets = start[mine] - base_ps
        durations = duration[mine]
        blocks = []  # events sorted by start within the line, as TensorFlow writes them
        if nested and len(mine):
            # One call op per step and thread, enclosing that thread's ops of the step.
            s = step_of_op[mine]
            first = np.r_[True, s[1:] != s[:-1]]
            last = np.r_[s[1:] != s[:-1], True]
            call_start = offsets[first] - 500_000
            call_end = (offsets + durations)[last] + 500_000
            call_meta = np.full(first.sum(), len(nodes), dtype=np.int64)
            call_shape = np.full(first.sum(), node_shape[-1], dtype=np.int64)
            blocks.append((encode_events(call_meta, call_start, call_end - call_start,
                                         [(shape_stat, "ref", call_shape)], with_sizes=True), call_start))
        noisy = int(len(mine) * noise)
        if noisy:
            pick = np.sort(rng.choice(len(mine), noisy, replace=False))
            noise_meta = np.full(noisy, meta_of["ExecutorState::Process"], dtype=np.int64)
            noise_start = offsets[pick] - 80_000
            blocks.append((encode_events(noise_meta, noise_start, np.full(noisy, 60_000),
                                         [(id_stat, "int64", rng.integers(-(2**62), 2**62, noisy)),
                                          (iter_stat, "int64", 0)], with_sizes=True), noise_start))
        blocks.append((encode_events(meta_ids, offsets, durations, [(shape_stat, "ref", shapes)], with_sizes=True),
                       offsets))
        header = xplane_schema.XLine(id=tid, name=f"tf_Compute/{tid}", timestamp_ns=line_ts_ns)
        lines.append(header.SerializeToString() + merge_by_start(blocks))

    # The python thread: step markers and the wrappers inside them.
    step_ids = np.arange(steps, dtype=np.int64)
    marked = steps - 1 if lose_last_marker else steps  # a TraceMe still open at the stop is not recorded
    marker_meta = np.full(marked, meta_of["traceflops_step"], dtype=np.int64)
    python = [(encode_events(marker_meta, step_start[:marked] - base_ps, (step_end - step_start)[:marked],
                             [(step_num_stat, "int64", step_ids[:marked]), (root_stat, "int64", 1)],
                             with_sizes=True), step_start[:marked])]
    for k, name in enumerate(("step", "TFE_Py_ExecuteCancelable")):
        inner = 1_000_000 * (k + 1)
        python.append((encode_events(np.full(steps, meta_of[name], dtype=np.int64), step_start + inner - base_ps,
                                     np.maximum(step_end - step_start - 2 * inner, 1), with_sizes=True),
                       step_start + inner))
    header = xplane_schema.XLine(id=6113359834869190121, name="traceflops", timestamp_ns=line_ts_ns)
    lines.append(header.SerializeToString() + merge_by_start(python))

    planes = [_plane_bytes(plane, lines)]

    if device_plane:
        planes.append(_device_plane(device_plane, nodes, which, start, duration, rng, line_ts_ns))

    env = xplane_schema.XPlane(id=1, name="Task Environment")
    for key, name in enumerate(("profile_start_time", "profile_stop_time", "profile_options"), start=1):
        env.stat_metadata[key].id = key
        env.stat_metadata[key].name = name
    env.stats.add(metadata_id=1, uint64_value=profile_start_ns)
    env.stats.add(metadata_id=2, uint64_value=profile_start_ns + capture_end // 1000)
    env.stats.add(metadata_id=3, bytes_value=b"\x08\x01\x10\x03")
    if dropped_traces is not None:
        env.stat_metadata[4].id = 4
        env.stat_metadata[4].name = "dropped_traces"
        env.stats.add(metadata_id=4, uint64_value=int(dropped_traces))
    planes.append(env.SerializeToString())

    head = xplane_schema.XSpace(errors=list(errors), warnings=list(warnings), hostnames=[hostname])
    return b"".join(_field_bytes(1, p) for p in planes) + head.SerializeToString()


def _device_plane(name, nodes, which, start, duration, rng, line_ts_ns, max_kernels: int = 50_000) -> bytes:
    """A device plane with one kernel per op (at most `max_kernels`), launched after its op."""
    plane = xplane_schema.XPlane(id=2, name=name)
    intern = _Interner(plane)
    tf_op = intern("tf_op")
    corr = intern("correlation_id")
    count = min(len(which), max_kernels)
    picked = np.sort(rng.choice(len(which), count, replace=False)) if count < len(which) else np.arange(count)
    kinds = sorted(set(int(w) for w in which[picked]))
    meta_of_node = {}
    op_ref = {}
    for k, w in enumerate(kinds, start=1):
        node, op_type, _ = nodes[w]
        meta = plane.event_metadata[k]
        meta.id = k
        meta.name = f"kernel_{op_type.strip('_').lower()}_{w}"
        meta_of_node[w] = k
        op_ref[w] = intern(f"{node}:{op_type}")
    meta_ids = np.array([meta_of_node[int(w)] for w in which[picked]], dtype=np.int64)
    refs = np.array([op_ref[int(w)] for w in which[picked]], dtype=np.int64)
    begin = start[picked] + 2_000_000
    order = np.argsort(begin, kind="stable")
    events = encode_events(meta_ids[order], begin[order] - 7_389_000, (duration[picked] // 2)[order],
                           [(tf_op, "ref", refs[order]), (corr, "int64", np.arange(count) + 1)])
    header = xplane_schema.XLine(id=1, name="stream 7", timestamp_ns=line_ts_ns)
    return _plane_bytes(plane, [header.SerializeToString() + events])


def _plane_bytes(plane, lines) -> bytes:
    """The plane with its serialized lines, fields in protobuf's order (id, name, lines, metadata, stats)."""
    head = xplane_schema.XPlane(id=plane.id, name=plane.name).SerializeToString()
    rest = xplane_schema.XPlane()
    rest.CopyFrom(plane)
    rest.ClearField("id")
    rest.ClearField("name")
    return head + b"".join(_field_bytes(3, line) for line in lines) + rest.SerializeToString()


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
