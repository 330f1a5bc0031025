"""The op registry: the one place that knows, per op type, its formula or zero reason and its family.

Every formula module registers its functions here with `register`,
`register_elementwise` or `declare_zero`; `op_cost` looks op types up with
`lookup`, the roofline plot and summaries ask `family_of`, and the docs table
and `supported_ops()` are generated from `entries()`. Adding an op type is one
registration: it then has a cost, a family, a docs row and a `supported_ops` row.

Conventions: one fused multiply-add is 2 FLOPs; `macs` only for contractions;
a formula takes an `OpInfo` and returns `(flops, macs)` (or `(flops, macs,
transcendentals)`), or None when the shapes or attributes it needs are missing.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

from ..graph.shapes import TensorSpec

FORMULA, ZERO, UNKNOWN, SHAPES = "formula", "zero", "unknown", "shapes"

# Families of ops that compute (they have FLOPs and can be points on the roofline plot),
# in legend order; "other" is every op type the registry does not know.
COMPUTE_FAMILIES = ("conv", "matmul/einsum", "elementwise", "normalization", "pooling", "softmax",
                    "reduction", "optimizer", "other")
# Families of declared zero-FLOP ops (never on the roofline plot: no FLOPs).
ZERO_FAMILIES = ("data movement", "control flow", "input pipeline", "random", "call")
FAMILIES = COMPUTE_FAMILIES + ZERO_FAMILIES
CALL, OTHER = "call", "other"
CALL_REASON = ("runs a nested function or loop: its time here excludes the nested ops, "
               "which are reported on their own")
# oneDNN spellings of an op type: Conv2D -> _MklConv2D, _MklNativeConv2D.
MKL_PREFIXES = ("_Mkl", "_MklNative")


@dataclass
class OpInfo:
    op_type: str
    inputs: list  # TensorSpec or None (resource handles, unknown)
    outputs: list
    attrs: dict = field(default_factory=dict)
    attrs_known: bool = True  # False when no executed graph gave the node's attributes
    inferred: list = field(default_factory=list)  # what a formula had to infer, for the note

    def input(self, index: int) -> Optional[TensorSpec]:
        if index < len(self.inputs) and self.inputs[index] is not None and self.inputs[index].known:
            return self.inputs[index]
        return None

    def output(self, index: int = 0) -> Optional[TensorSpec]:
        if index < len(self.outputs) and self.outputs[index] is not None and self.outputs[index].known:
            return self.outputs[index]
        return None


@dataclass
class Cost:
    """One execution's count. `bytes` is None where not computed (HLO instructions: `instruction_bytes`)."""
    flops: Optional[int]
    macs: Optional[int]
    bytes: Optional[int]
    source: str
    dtype: str = ""
    note: str = ""
    transcendentals: int = 0  # also inside flops (exp, log, tanh, erf, rsqrt... count 1 FLOP each)
    # XLA convolutions: the FMAs over valid (non-padding) window positions, XLA HloCostAnalysis's
    # count (what XProf's hlo_stats reports); `macs` holds the textbook count. None elsewhere.
    xla_valid_macs: Optional[int] = None

    @property
    def known(self) -> bool:
        return self.flops is not None


@dataclass(frozen=True)
class Entry:
    """What the registry knows about one op type."""
    op_type: str
    family: str
    kind: str  # FORMULA or ZERO
    formula: Optional[Callable] = None
    reason: str = ""  # zero ops: why they are zero
    variant_of: str = ""  # a generated oneDNN spelling: the op type it was generated from
    flops_per_element: Optional[int] = None  # elementwise registrations

    @property
    def description(self) -> str:
        """The formula's docstring summary (its first paragraph, joined), or the zero reason."""
        if self.kind == ZERO:
            return self.reason
        doc = (self.formula.__doc__ or "").strip()
        return " ".join(doc.split("\n\n")[0].split()) if doc else self.formula.__name__


_ENTRIES: dict = {}


def mkl_variants(op_type: str) -> list:
    """The oneDNN spellings of an op type: `Conv2D` -> `_MklConv2D`, `_MklNativeConv2D`;
    `_FusedConv2D` -> `_MklFusedConv2D`, `_MklNativeFusedConv2D`; `_MklLayerNorm` ->
    `_MklNativeLayerNorm` (a oneDNN-only op has its native spelling only)."""
    if op_type.startswith("_MklNative"):
        return []
    if op_type.startswith("_Mkl"):
        return ["_MklNative" + op_type[len("_Mkl"):]]
    base = op_type.lstrip("_")
    return [prefix + base for prefix in MKL_PREFIXES]


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown op family {family!r}: one of {', '.join(FAMILIES)} "
                         "(traceflops/costs/registry.py defines them)")


def _add(entries: list) -> None:
    """Add entries all or none: a duplicate op type (registered before, or twice here) raises."""
    seen = set()
    for entry in entries:
        if entry.op_type in _ENTRIES or entry.op_type in seen:
            held = _ENTRIES.get(entry.op_type)
            what = f"{held.kind} {held.formula.__name__ if held.formula else held.reason!r}" if held else "this call"
            raise ValueError(f"op type {entry.op_type!r} is already registered ({what}); "
                             "unregister it first to replace it")
        seen.add(entry.op_type)
    for entry in entries:
        _ENTRIES[entry.op_type] = entry


def _expand(op_types: tuple, variants: bool, make: Callable) -> list:
    entries = []
    for op_type in op_types:
        entries.append(make(op_type, ""))
        if variants:
            entries += [make(v, op_type) for v in mkl_variants(op_type)]
    return entries


def register(*op_types: str, family: str, variants: bool = True):
    """Decorator: register a formula for each op type (and, with `variants`, its oneDNN spellings).

    The function takes an `OpInfo` and returns `(flops, macs)` (macs None for
    non-contractions), optionally `(flops, macs, transcendentals)`, or None when
    the shapes or attributes it needs are missing. An op type registered before
    raises ValueError.
    """
    _check_family(family)
    if not op_types:
        raise ValueError("register() needs at least one op type")

    def wrap(fn: Callable) -> Callable:
        _add(_expand(op_types, variants, lambda t, base: Entry(t, family, FORMULA, fn, variant_of=base)))
        return fn
    return wrap


def declare_zero(*op_types: str, reason: str, family: str = "data movement", variants: bool = False) -> None:
    """Declare op types that do no arithmetic on tensor data: 0 FLOPs, bytes still counted, `reason` noted."""
    _check_family(family)
    if not reason:
        raise ValueError("declare_zero() needs a reason")
    _add(_expand(op_types, variants, lambda t, base: Entry(t, family, ZERO, reason=reason, variant_of=base)))


def unregister(*op_types: str, variants: bool = True) -> None:
    """Forget op types (and their generated oneDNN spellings); for tests and user overrides."""
    for op_type in op_types:
        _ENTRIES.pop(op_type, None)
        if variants:
            for variant in mkl_variants(op_type):
                if variant in _ENTRIES and _ENTRIES[variant].variant_of == op_type:
                    del _ENTRIES[variant]


def lookup(op_type: str) -> Optional[Entry]:
    """The registry entry of an op type, or None."""
    return _ENTRIES.get(op_type)


def entries() -> list:
    """Every registered entry, in registration order."""
    return list(_ENTRIES.values())


def is_function_call(op_type: str) -> bool:
    """A call of a traced function runs under the function's own name (`__inference_step_287`)."""
    return str(op_type).startswith(("__inference_", "__forward_", "__backward_"))


def family_of(op_type: str) -> str:
    """The op family of any op type: registered ones from the registry; traced function calls
    `call`; XLA op types (`fusion:kLoop`, `dot`, `custom-call`) from the HLO opcode table;
    anything else `other`."""
    op_type = "" if op_type is None else str(op_type)
    entry = _ENTRIES.get(op_type)
    if entry is not None:
        return entry.family
    if is_function_call(op_type):
        return CALL
    if op_type[:1].islower():
        from .hlo.opcodes import opcode_family
        return opcode_family(op_type)
    return OTHER


class _View(Mapping):
    """A live read-only view of the registry: op type -> formula (FORMULAS) or zero reason (ZERO_OPS)."""

    def __init__(self, kind: str):
        self._kind = kind

    def _value(self, entry: Entry):
        return entry.formula if self._kind == FORMULA else entry.reason

    def __getitem__(self, op_type: str):
        entry = _ENTRIES.get(op_type)
        if entry is None or entry.kind != self._kind:
            raise KeyError(op_type)
        return self._value(entry)

    def __iter__(self) -> Iterator[str]:
        return (t for t, e in list(_ENTRIES.items()) if e.kind == self._kind)

    def __len__(self) -> int:
        return sum(1 for e in _ENTRIES.values() if e.kind == self._kind)


FORMULAS = _View(FORMULA)
ZERO_OPS = _View(ZERO)


# ---------------------------------------------------------------- elementwise

def output_or_broadcast(op: OpInfo) -> Optional[TensorSpec]:
    """The output tensor, or, without it, the broadcast of the inputs' shapes."""
    out = op.output(0)
    if out is not None:
        return out
    tensors = [t for t in op.inputs if t is not None]
    if not tensors or not all(t.known for t in tensors):
        return None
    rank = max(t.rank for t in tensors)
    dims = []
    for axis in range(rank):
        sizes = [t.dims[axis - rank + t.rank] for t in tensors if axis - rank + t.rank >= 0]
        dims.append(max(sizes))
    return TensorSpec(tensors[0].dtype, tuple(dims))


def _elementwise_formula(flops_per_element: int, transcendentals: int, why: str) -> Callable:
    def _elementwise(op: OpInfo):
        out = output_or_broadcast(op)
        if out is None:
            return None
        return flops_per_element * out.num_elements, None, transcendentals * out.num_elements
    plural = "" if flops_per_element == 1 else "s"
    _elementwise.__doc__ = (f"{flops_per_element} FLOP{plural} per output element (inputs broadcast)"
                            + (f": {why}" if why else ""))
    return _elementwise


def register_elementwise(op_type: str, flops_per_element: int, family: str = "elementwise", *,
                         transcendentals: int = 0, why: str = "", variants: bool = True) -> None:
    """One line adds an elementwise op type: `flops_per_element` FLOPs per output element
    (of which `transcendentals` are exp/log/tanh-like); `why` says how the count is made up."""
    _check_family(family)
    fn = _elementwise_formula(flops_per_element, transcendentals, why)
    _add(_expand((op_type,), variants, lambda t, base: Entry(
        t, family, FORMULA, fn, variant_of=base, flops_per_element=flops_per_element)))


def elementwise_flops(op_type: str) -> Optional[int]:
    """FLOPs per element of an op type registered with `register_elementwise`, else None."""
    entry = _ENTRIES.get(op_type)
    return None if entry is None else entry.flops_per_element


class _ElementwiseView(Mapping):
    """op type -> FLOPs per element of every elementwise registration (live, read-only)."""

    def __getitem__(self, op_type: str) -> int:
        value = elementwise_flops(op_type)
        if value is None:
            raise KeyError(op_type)
        return value

    def __iter__(self) -> Iterator[str]:
        return (t for t, e in list(_ENTRIES.items()) if e.flops_per_element is not None)

    def __len__(self) -> int:
        return sum(1 for e in _ENTRIES.values() if e.flops_per_element is not None)


ELEMENTWISE_FLOPS = _ElementwiseView()
