"""Formulas of HLO instructions other than custom calls: `formula(mc, instr) -> Cost` (the registry's
`INSTRUCTION` signature), `mc` the `ModuleCosts` of the instruction's module (operand shapes, called
computations' costs); `opcodes.py` registers them.

Conventions: one FMA = 2 FLOPs; dot = 2 x batch x M x N x K; convolution = 2 x
textbook MACs (output elements x kernel taps x input features per group, padding
taps included), with XLA HloCostAnalysis's valid-window count beside it in
`xla_valid_macs`; elementwise ops and transcendentals = 1 per output element;
reduce = (input elements - output elements) x the reducer's FLOPs.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from .common import dot_counts, dtype_of, elements, first_array, unknown, xla_cost


def elementwise(transcendental: bool) -> Callable:
    """The formula of an elementwise opcode: 1 FLOP per output element (a transcendental too)."""
    def formula(mc, instr):
        out = first_array(instr.shape)
        n = elements(out) if out is not None else 0
        trans = n if transcendental else 0
        return xla_cost(n, None, trans, mc.input_dtype(instr),
                        "transcendental: 1 per element" if trans else "elementwise: 1 per element")
    formula.__name__ = "transcendental" if transcendental else "elementwise"
    formula.__doc__ = "1 FLOP per output element" + (" (also 1 transcendental)" if transcendental else "")
    return formula


def fusion(mc, instr):
    """The sum of the fused computation's instructions (nested fusions included)."""
    if not instr.called_computation_ids:
        return unknown("fusion without a fused computation")
    inner = mc.computation_cost(instr.called_computation_ids[0])
    note = f"sum of fused computation ({instr.fusion_kind or 'fusion'})"
    if inner.note:
        note += f"; largest: {inner.note}"
    if not inner.known:
        return xla_cost(None, None, inner.transcendentals, inner.dtype or dtype_of(instr.shape), inner.note)
    return xla_cost(inner.flops, inner.macs, inner.transcendentals, inner.dtype or dtype_of(instr.shape), note,
                    inner.xla_valid_macs)


def dot(mc, instr):
    """2 x batch x M x N x K FLOPs, batch x M x N x K MACs, from the dot dimension numbers."""
    lhs, rhs = mc.operand_shape(instr, 0), mc.operand_shape(instr, 1)
    if lhs is None or rhs is None:
        return unknown("dot operands missing")
    dn = instr.dot_dimension_numbers
    counts = dot_counts(lhs, rhs, list(dn.lhs_contracting_dimensions), list(dn.rhs_contracting_dimensions),
                        list(dn.lhs_batch_dimensions), list(dn.rhs_batch_dimensions))
    if counts is None:
        return unknown("dot dimension numbers do not match the operand shapes", dtype_of(lhs))
    batch, m, n, k = counts
    macs = batch * m * n * k
    return xla_cost(2 * macs, macs, 0, dtype_of(lhs), f"dot: 2 x batch {batch} x M {m} x N {n} x K {k}")


def convolution_fmas(input_dims, kernel_dims, output_dims, window, dnums,
                     feature_group_count: int = 1, batch_group_count: int = 1) -> int:
    """Multiply-adds of a convolution, counting only window positions that land on real
    (not padding, not base-dilation hole) input elements: the count XLA's HloCostAnalysis uses
    (and XProf's hlo_stats reports). traceflops reports it as `xla_valid_macs`; `macs` is
    `convolution_macs`, the textbook count.

    FMAs = input features / feature groups x output features x batch / batch groups
           x product over spatial dims of the valid (output index, kernel index) pairs.
    """
    input_feature = input_dims[dnums.input_feature_dimension]
    output_feature = output_dims[dnums.output_feature_dimension]
    batch = input_dims[dnums.input_batch_dimension]
    valid_product = 1
    for i, wdim in enumerate(window.dimensions):
        in_size = input_dims[dnums.input_spatial_dimensions[i]]
        k_size = kernel_dims[dnums.kernel_spatial_dimensions[i]]
        out_size = output_dims[dnums.output_spatial_dimensions[i]]
        stride = wdim.stride or 1
        wdil = wdim.window_dilation or 1
        bdil = wdim.base_dilation or 1
        out_idx = np.arange(out_size, dtype=np.int64)[:, None]
        k_idx = np.arange(k_size, dtype=np.int64)[None, :]
        pos = out_idx * stride - wdim.padding_low + k_idx * wdil  # in the base-dilated input
        valid = (pos >= 0) & (pos % bdil == 0) & (pos // bdil < in_size)
        valid_product *= int(valid.sum())
    groups = max(feature_group_count or 1, 1)
    batch_groups = max(batch_group_count or 1, 1)
    return (input_feature // groups) * output_feature * (batch // batch_groups) * valid_product


def runs_transposed(wdim, in_size: int, k_size: int) -> bool:
    """Whether a convolution runs transposed along a spatial dimension: its input is base-dilated
    (a strided convolution's input gradient, a transposed convolution), or at stride 1 it is padded
    by the whole dilated window minus one on both sides (a VALID convolution's input gradient)."""
    if (wdim.base_dilation or 1) > 1:
        return True
    reach = ((k_size - 1) * (wdim.window_dilation or 1))
    return (wdim.stride or 1) == 1 and reach > 0 and wdim.padding_low >= reach and wdim.padding_high >= reach


def convolution_macs(input_dims, kernel_dims, output_dims, window, dnums, feature_group_count: int = 1) -> int:
    """Textbook multiply-adds: every kernel tap of every output element, padding taps included, as
    published figures and TensorFlow's Conv2D formula count them.

    MACs = output elements x kernel spatial volume x input features per feature group (batch groups
    are already in the output's shape). Along a dimension the convolution runs transposed
    (`runs_transposed`), every real input element meets every tap instead (input size x taps, not
    output size x taps): the count of the forward convolution whose gradient it is, as TensorFlow's
    Conv2DBackpropInput formula counts it.
    """
    input_feature = input_dims[dnums.input_feature_dimension]
    groups = max(feature_group_count or 1, 1)
    spatial = set(dnums.output_spatial_dimensions)
    non_spatial = math.prod(d for i, d in enumerate(output_dims) if i not in spatial)
    taps = 1
    for i, wdim in enumerate(window.dimensions):
        in_size = input_dims[dnums.input_spatial_dimensions[i]]
        k_size = kernel_dims[dnums.kernel_spatial_dimensions[i]]
        out_size = output_dims[dnums.output_spatial_dimensions[i]]
        if (wdim.base_dilation or 1) > 1 and not wdim.padding_low and not wdim.padding_high:
            # An unpadded base-dilated dimension is no transposed convolution but XLA's way of keeping
            # groups apart (a grouped convolution's weight gradient): only the real elements count.
            taps *= _valid_pairs(wdim, in_size, k_size, out_size)
        else:
            taps *= (in_size if runs_transposed(wdim, in_size, k_size) else out_size) * k_size
    return non_spatial * (input_feature // groups) * taps


def _valid_pairs(wdim, in_size: int, k_size: int, out_size: int) -> int:
    """(output position, tap) pairs of one spatial dimension that land on a real input element."""
    out_idx = np.arange(out_size, dtype=np.int64)[:, None]
    k_idx = np.arange(k_size, dtype=np.int64)[None, :]
    base = wdim.base_dilation or 1
    position = out_idx * (wdim.stride or 1) - wdim.padding_low + k_idx * (wdim.window_dilation or 1)
    return int(((position >= 0) & (position % base == 0) & (position // base < in_size)).sum())


def diagonal_mask_fraction(mc, instr):
    """(kept, total) when every user of `instr` is a fusion that keeps only a diagonal of it:
    `select(compare(iota, iota, EQ), x, broadcast(constant))`. XLA's CPU compiler writes a
    batch-grouped convolution (a depthwise convolution's weight gradient) as a dense one whose
    off-diagonal channel pairs it then discards this way; None otherwise."""
    users = mc.users(instr)
    if not users:
        return None
    fractions = set()
    for user in users:
        if user.opcode != "fusion" or not user.called_computation_ids:
            return None
        found = mc.diagonal_select(user.called_computation_ids[0])
        if found is None:
            return None
        fractions.add(found)
    return fractions.pop() if len(fractions) == 1 else None


def conv_cost(instr, input_shape, kernel_shape, output_shape, label, extra_per_output=0, extra_note="",
              kept=None):
    """2 x textbook MACs + `extra_per_output` FLOPs per output element; `xla_valid_macs` beside.
    `kept` = (kept, total): only that share of the output is used (a diagonal mask, see above)."""
    try:
        args = (list(input_shape.dimensions), list(kernel_shape.dimensions), list(output_shape.dimensions),
                instr.window, instr.convolution_dimension_numbers)
        valid = convolution_fmas(*args, instr.feature_group_count, instr.batch_group_count)
        macs = convolution_macs(*args, instr.feature_group_count)
    except IndexError:
        return unknown(f"{label}: dimension numbers do not match the shapes", dtype_of(input_shape))
    note = f"{label}: 2 x {macs} MACs (output x kernel taps x input features per group; {valid} over " \
           "valid window positions)"
    if kept is not None and (macs * kept[0]) % kept[1] == 0:
        macs = macs * kept[0] // kept[1]
        note += (f"; a batch-grouped convolution XLA ran dense and masked to its diagonal: {kept[0]} of "
                 f"{kept[1]} outputs kept, counted")
    flops = 2 * macs + extra_per_output * elements(output_shape)
    return xla_cost(flops, macs, 0, dtype_of(input_shape), note + extra_note, valid)


def convolution(mc, instr):
    """2 x textbook MACs (every kernel tap); XLA's valid-window count in `xla_valid_macs`."""
    lhs, rhs = mc.operand_shape(instr, 0), mc.operand_shape(instr, 1)
    if lhs is None or rhs is None:
        return unknown("convolution operands missing")
    kept = None
    if (instr.feature_group_count or 1) == 1 and (instr.batch_group_count or 1) == 1:
        kept = diagonal_mask_fraction(mc, instr)
    return conv_cost(instr, lhs, rhs, instr.shape, "convolution", kept=kept)


def reduce(mc, instr):
    """(input elements - output elements) x the reducer's FLOPs."""
    arg = mc.operand_shape(instr, 0)
    out = first_array(instr.shape)
    if arg is None or out is None or not instr.called_computation_ids:
        return unknown("reduce operands or reducer missing")
    reducer = mc.applied_flops(instr.called_computation_ids[0])
    if not reducer.known:
        return unknown("reducer: " + reducer.note, dtype_of(arg))
    count = elements(arg) - elements(out)
    return xla_cost(count * reducer.flops, None, count * reducer.transcendentals, dtype_of(arg),
                    f"reduce: (input - output elements) x {reducer.flops} FLOPs per reducer call")


def reduce_window(mc, instr):
    """(window - 1) x output elements x the reducer's FLOPs."""
    out = first_array(instr.shape)
    arg = mc.operand_shape(instr, 0)
    if out is None or arg is None or not instr.called_computation_ids:
        return unknown("reduce-window operands or reducer missing")
    reducer = mc.applied_flops(instr.called_computation_ids[0])
    if not reducer.known:
        return unknown("reducer: " + reducer.note, dtype_of(arg))
    window = math.prod(d.size for d in instr.window.dimensions)
    count = (window - 1) * elements(out)
    return xla_cost(count * reducer.flops, None, count * reducer.transcendentals, dtype_of(arg),
                    "reduce-window: (window - 1) x output elements x reducer FLOPs")


def select_and_scatter(mc, instr):
    """source elements x ((window - 1) x select FLOPs + scatter FLOPs)."""
    source = mc.operand_shape(instr, 1)
    if source is None or len(instr.called_computation_ids) < 2:
        return unknown("select-and-scatter operands or computations missing")
    select = mc.applied_flops(instr.called_computation_ids[0])
    scatter_fn = mc.applied_flops(instr.called_computation_ids[1])
    if not (select.known and scatter_fn.known):
        return unknown("select or scatter computation unknown", dtype_of(source))
    window = math.prod(d.size for d in instr.window.dimensions)
    n = elements(source)
    return xla_cost(n * ((window - 1) * select.flops + scatter_fn.flops), None, 0, dtype_of(source),
                    "select-and-scatter: source elements x ((window - 1) x select + scatter)")


def map_(mc, instr):
    """output elements x the mapped computation's FLOPs."""
    out = first_array(instr.shape)
    if out is None or not instr.called_computation_ids:
        return unknown("map computation missing")
    fn = mc.applied_flops(instr.called_computation_ids[0])
    if not fn.known:
        return unknown("mapped computation: " + fn.note)
    n = elements(out)
    return xla_cost(n * fn.flops, None, n * fn.transcendentals, mc.input_dtype(instr),
                    "map: output elements x computation FLOPs")


def scatter(mc, instr):
    """update elements x the update computation's FLOPs."""
    count = len(instr.operand_ids)
    operands = (count - 1) // 2
    updates = mc.operand_shape(instr, operands + 1)
    if updates is None or not instr.called_computation_ids:
        return unknown("scatter updates or computation missing")
    fn = mc.applied_flops(instr.called_computation_ids[0])
    if not fn.known:
        return unknown("scatter computation: " + fn.note)
    n = elements(updates)
    return xla_cost(n * fn.flops, None, n * fn.transcendentals, dtype_of(updates),
                    "scatter: update elements x update-computation FLOPs")


def sort(mc, instr):
    """Estimate: elements x ceil(log2 n) comparisons x the comparator's FLOPs (at least 1)."""
    keys = mc.operand_shape(instr, 0)
    if keys is None or not instr.dimensions or not instr.called_computation_ids:
        return unknown("sort operands, dimension or comparator missing")
    comparator = mc.applied_flops(instr.called_computation_ids[0])
    if not comparator.known:
        return unknown("comparator: " + comparator.note)
    n = keys.dimensions[instr.dimensions[0]]
    log_n = math.ceil(math.log2(n)) if n > 1 else 0
    return xla_cost(elements(keys) * log_n * max(comparator.flops, 1), None, 0, dtype_of(keys),
                    "sort (estimate): elements x ceil(log2 n) comparisons")


def fft(mc, instr):
    """Estimate: 5 N log2 N per transform of length N."""
    length = math.prod(instr.fft_length) if instr.fft_length else 0
    operand = mc.operand_shape(instr, 0)
    if length <= 1 or operand is None:
        return unknown("fft length or operand missing")
    # The real side (RFFT input, IRFFT output) holds N values per transform; for a
    # complex-to-complex FFT both sides do.
    real = [s for s in (operand, instr.shape) if dtype_of(s) in ("float32", "float64")]
    basis = real[0] if real else operand
    transforms = elements(basis) // length
    return xla_cost(int(5 * length * math.log2(length)) * transforms, None, 0, dtype_of(operand),
                    "fft (estimate): 5 N log2 N per transform")


def triangular_solve(mc, instr):
    """m^2 n per system: m x elements of b."""
    a, b = mc.operand_shape(instr, 0), mc.operand_shape(instr, 1)
    if a is None or b is None:
        return unknown("triangular-solve operands missing")
    m = a.dimensions[-1]
    return xla_cost(m * elements(b), None, 0, dtype_of(a), "triangular-solve: m^2 n per system")


def cholesky(mc, instr):
    """n^3 / 3 per matrix."""
    a = mc.operand_shape(instr, 0)
    if a is None:
        return unknown("cholesky operand missing")
    n = a.dimensions[-1]
    return xla_cost(elements(a) * n // 3, None, 0, dtype_of(a), "cholesky: n^3 / 3 per matrix")


def all_reduce(mc, instr):
    """output elements x the reducer's FLOPs: one reduction per element on each device, as XLA's cost
    analysis (and XProf's hlo_stats) count it, whatever the number of participating devices."""
    out = first_array(instr.shape)
    if out is None or not instr.called_computation_ids:
        return unknown("all-reduce result or reducer missing", dtype_of(instr.shape))
    reducer = mc.applied_flops(instr.called_computation_ids[0])
    if not reducer.known:
        return unknown("reducer: " + reducer.note, dtype_of(out))
    n = elements(out)
    return xla_cost(n * reducer.flops, None, n * reducer.transcendentals, dtype_of(out),
                    f"all-reduce: output elements x {reducer.flops} FLOPs per reducer call (per device)")


def reduce_scatter(mc, instr):
    """Unknown: the reduction's FLOPs depend on the number of participating devices."""
    return unknown("reduction FLOPs depend on the number of participating devices", dtype_of(instr.shape))


def rng(mc, instr):
    """Unknown: sampling a random distribution has no agreed FLOP count."""
    return unknown("random-distribution sampling has no agreed FLOP count", dtype_of(instr.shape))


def ragged_dot(mc, instr):
    """2 x MACs; each output element a dot over the contracting size K (ragged in the contracting
    dimension: each group contracts only its own slice, so lhs x rhs elements / (batch x K) MACs)."""
    lhs, rhs, out = mc.operand_shape(instr, 0), mc.operand_shape(instr, 1), first_array(instr.shape)
    rdn = instr.ragged_dot_dimension_numbers
    dn = rdn.dot_dimension_numbers
    if lhs is None or rhs is None or out is None or not dn.lhs_contracting_dimensions:
        return unknown("ragged-dot operands or dimension numbers missing")
    try:
        k = math.prod(lhs.dimensions[d] for d in dn.lhs_contracting_dimensions)
        batch = math.prod(lhs.dimensions[d] for d in dn.lhs_batch_dimensions)
    except IndexError:
        return unknown("ragged-dot dimension numbers do not match the operand shapes", dtype_of(lhs))
    ragged_contracting = any(d in dn.lhs_contracting_dimensions for d in rdn.lhs_ragged_dimensions)
    if ragged_contracting and batch * k:
        macs = elements(lhs) * elements(rhs) // (batch * k)
    else:
        macs = elements(out) * k
    return xla_cost(2 * macs, macs, 0, dtype_of(lhs), f"ragged-dot: 2 x {macs} MACs (contracting size {k})")


def top_k(mc, instr):
    """Compares: n - 1 per row for k = 1, else n x ceil(log2 k) per row (heap selection), as TopKV2."""
    x, values = mc.operand_shape(instr, 0), first_array(instr.shape)
    if x is None or values is None or not x.dimensions or not values.dimensions:
        return unknown("top-k operand or result missing")
    n, k = x.dimensions[-1], values.dimensions[-1]
    rows = elements(x) // n if n else 0
    count = rows * max(n - 1, 0) if k <= 1 else rows * n * math.ceil(math.log2(k))
    return xla_cost(count, None, 0, dtype_of(x), "top-k: n x ceil(log2 k) compares per row")


def batch_norm(per_element: int, label: str) -> Callable:
    """The formula of a batch-norm opcode: `per_element` FLOPs per element of its operand (as the TF
    FusedBatchNorm formulas count: normalising 2, statistics +3, the gradient 9) + 5 per feature
    (scale x rsqrt(variance + epsilon) and its offset)."""
    def formula(mc, instr):
        x = mc.operand_shape(instr, 0)
        scale = mc.operand_shape(instr, 1)
        if x is None or scale is None:
            return unknown(f"{label} operands missing")
        flops = per_element * elements(x) + 5 * elements(scale)
        return xla_cost(flops, None, elements(scale), dtype_of(x),
                        f"{label}: {per_element} per element + 5 per feature")
    formula.__name__ = label.replace("-", "_")
    formula.__doc__ = f"{per_element} FLOPs per element + 5 per feature"
    return formula
