"""The op registry: the one place that knows, per op type, HLO opcode or custom-call target, its formula or zero reason and its family.

Keys are namespaced: a TensorFlow op type (`Conv2D`, also spelled `tf:Conv2D`;
the default namespace is written bare), an HLO opcode (`hlo:dot`, a fusion kind
`hlo:fusion:kLoop`) or a custom-call target (`custom_call:__cublas$gemm`, with a
regular expression `pattern` where targets vary). Every formula module registers
here with `register`, `register_elementwise` or `declare_zero`; `op_cost` and the
HLO pricing (`costs/hlo/describe.py`) look keys up with `lookup` / `find`, the
roofline plot and summaries ask `family_of`, and the docs table and
`supported_ops()` are generated from `entries()`. Adding an op type or an opcode
is one registration: it then has a cost, a family, a docs row and a
`supported_ops` row.

Conventions: one fused multiply-add is 2 FLOPs; `macs` only for contractions.
Formulas have one of two signatures (`Entry.signature`):
* `OP`, the source-neutral one, of every TF formula and every user formula:
  `formula(OpInfo) -> (flops, macs)` (or `(flops, macs, transcendentals)`), or
  None when the shapes or attributes it needs are missing; HLO instructions are
  described as `OpInfo`s for it by `costs/hlo/describe.py`;
* `INSTRUCTION`, of the built-in HLO formulas, which need the module around the
  instruction (fused and reducer computations, operand instructions):
  `formula(module_costs, instr) -> Cost`.
"""
from __future__ import annotations

from collections.abc import Mapping
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

from ..ops import OpInfo, TensorSpec

FORMULA, ZERO, UNKNOWN, SHAPES = "formula", "zero", "unknown", "shapes"
TF, HLO, CUSTOM_CALL = "tf", "hlo", "custom_call"
NAMESPACES = (TF, HLO, CUSTOM_CALL)
OP, INSTRUCTION = "op", "instruction"  # the formula signatures (module doc)

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
    """What the registry knows about one key: a TF op type, an HLO opcode or a custom-call target.

    `op_type` is the key as the registry holds it: bare for TF op types (`Conv2D`),
    namespaced otherwise (`hlo:dot`, `custom_call:__cublas$gemm`)."""
    op_type: str
    family: str
    kind: str  # FORMULA or ZERO
    formula: Optional[Callable] = None
    reason: str = ""  # zero ops: why they are zero
    variant_of: str = ""  # a generated oneDNN spelling: the op type it was generated from
    flops_per_element: Optional[int] = None  # elementwise registrations
    signature: str = OP  # how `formula` is called (module doc)
    pattern: str = ""  # custom-call targets: a regular expression the targets it prices match

    @property
    def namespace(self) -> str:
        return split_key(self.op_type)[0]

    @property
    def name(self) -> str:
        """The key within its namespace: `dot` for `hlo:dot`."""
        return split_key(self.op_type)[1]

    @property
    def description(self) -> str:
        """The formula's docstring summary (its first paragraph, joined), or the zero reason."""
        if self.kind == ZERO:
            return self.reason
        doc = (self.formula.__doc__ or "").strip()
        return " ".join(doc.split("\n\n")[0].split()) if doc else self.formula.__name__


_ENTRIES: dict = {}


def split_key(key: str) -> tuple:
    """(namespace, name): `hlo:fusion:kLoop` -> ("hlo", "fusion:kLoop"); `Conv2D`, `tf:Conv2D` -> ("tf", "Conv2D")."""
    namespace, colon, name = str(key).partition(":")
    if colon and namespace in NAMESPACES:
        return namespace, name
    return TF, str(key)


def canonical_key(key: str) -> str:
    """The key as the registry holds it: TF op types bare, other namespaces prefixed."""
    namespace, name = split_key(key)
    return name if namespace == TF else f"{namespace}:{name}"


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
    """Add entries all or none: a duplicate key (registered before, or twice here) raises."""
    seen = set()
    for entry in entries:
        if entry.op_type in _ENTRIES or entry.op_type in seen:
            held = _ENTRIES.get(entry.op_type)
            what = f"{held.kind} {held.formula.__name__ if held.formula else held.reason!r}" if held else "this call"
            raise ValueError(f"op type {entry.op_type!r} is already registered ({what}); "
                             "unregister it first to replace it")
        if entry.pattern:
            re.compile(entry.pattern)  # a bad pattern fails at registration, not when pricing
        seen.add(entry.op_type)
    for entry in entries:
        _ENTRIES[entry.op_type] = entry


def _expand(op_types: tuple, variants: bool, make: Callable) -> list:
    """One entry per key, and with `variants` (TF op types only) one per oneDNN spelling."""
    entries = []
    for op_type in op_types:
        key = canonical_key(op_type)
        entries.append(make(key, ""))
        if variants and split_key(key)[0] == TF:
            entries += [make(v, key) for v in mkl_variants(key)]
    return entries


def _check_pattern(op_types: tuple, pattern: str) -> None:
    if pattern and (len(op_types) != 1 or split_key(op_types[0])[0] != CUSTOM_CALL):
        raise ValueError("a pattern names the custom-call targets of one `custom_call:` key")


def register(*op_types: str, family: str, variants: bool = True, signature: str = OP, pattern: str = ""):
    """Decorator: register a formula for each key (and, with `variants`, a TF op type's oneDNN spellings).

    With the `OP` signature the function takes an `OpInfo` and returns
    `(flops, macs)` (macs None for non-contractions), optionally `(flops, macs,
    transcendentals)`, or None when the shapes or attributes it needs are
    missing; `INSTRUCTION` formulas (built-in HLO ones) see the module (module
    doc). `pattern`: a `custom_call:` key's regular expression for the targets
    it prices. A key registered before raises ValueError.
    """
    _check_family(family)
    if not op_types:
        raise ValueError("register() needs at least one op type")
    if signature not in (OP, INSTRUCTION):
        raise ValueError(f"unknown formula signature {signature!r}: {OP!r} or {INSTRUCTION!r}")
    _check_pattern(op_types, pattern)

    def wrap(fn: Callable) -> Callable:
        _add(_expand(op_types, variants, lambda t, base: Entry(
            t, family, FORMULA, fn, variant_of=base, signature=signature, pattern=pattern)))
        return fn
    return wrap


def declare_zero(*op_types: str, reason: str, family: str = "data movement", variants: bool = False,
                 pattern: str = "") -> None:
    """Declare keys that do no arithmetic on tensor data: 0 FLOPs, bytes still counted, `reason` noted."""
    _check_family(family)
    if not reason:
        raise ValueError("declare_zero() needs a reason")
    _check_pattern(op_types, pattern)
    _add(_expand(op_types, variants, lambda t, base: Entry(t, family, ZERO, reason=reason, variant_of=base,
                                                           pattern=pattern)))


def unregister(*op_types: str, variants: bool = True) -> None:
    """Forget keys (and a TF op type's generated oneDNN spellings); for tests and user overrides."""
    for op_type in op_types:
        key = canonical_key(op_type)
        _ENTRIES.pop(key, None)
        if variants and split_key(key)[0] == TF:
            for variant in mkl_variants(key):
                if variant in _ENTRIES and _ENTRIES[variant].variant_of == key:
                    del _ENTRIES[variant]


def lookup(op_type: str) -> Optional[Entry]:
    """The registry entry of a key (`Conv2D`, `tf:Conv2D`, `hlo:dot`, `custom_call:__cublas$gemm`), or None."""
    return _ENTRIES.get(canonical_key(op_type))


def find(namespace: str, name: str) -> Optional[Entry]:
    """The entry that prices `name` in `namespace`: its own key first, else the first registered
    pattern it matches (custom-call targets), else None."""
    entry = lookup(f"{namespace}:{name}")
    if entry is not None:
        return entry
    return next((e for e in list(_ENTRIES.values())
                 if e.pattern and e.namespace == namespace and re.match(e.pattern, name)), None)


def entries(namespace: Optional[str] = None) -> list:
    """Every registered entry (of one namespace, if given), in registration order."""
    return [e for e in list(_ENTRIES.values()) if namespace is None or e.namespace == namespace]


def is_function_call(op_type: str) -> bool:
    """A call of a traced function runs under the function's own name (`__inference_step_287`)."""
    return str(op_type).startswith(("__inference_", "__forward_", "__backward_"))


def hlo_entry(opcode: str, fusion_kind: str = "") -> Optional[Entry]:
    """The entry of an HLO instruction: its fusion kind's (`hlo:fusion:kLoop`) first, else its opcode's."""
    if fusion_kind:
        entry = lookup(f"{HLO}:{opcode}:{fusion_kind}")
        if entry is not None:
            return entry
    return lookup(f"{HLO}:{opcode}")


def family_of(op_type: str) -> str:
    """The op family of any op type: registered keys from the registry; traced function calls
    `call`; XLA op types (`fusion:kLoop`, `dot`, `custom-call`) from their `hlo:` entries;
    anything else `other`."""
    op_type = "" if op_type is None else str(op_type)
    entry = lookup(op_type)
    if entry is not None:
        return entry.family
    if is_function_call(op_type):
        return CALL
    if op_type[:1].islower():
        opcode, _, kind = op_type.partition(":")
        entry = hlo_entry(opcode, kind)
        return entry.family if entry is not None else OTHER
    return OTHER


def formula_counts(entry: Entry, op: OpInfo) -> Optional[tuple]:
    """(flops, macs, transcendentals) of an `OP` formula on `op`, ints (macs None when it gives none),
    or None when the formula cannot count."""
    result = entry.formula(op)
    if result is None:
        return None
    transcendentals = int(result[2]) if len(result) > 2 and result[2] is not None else 0
    return int(result[0]), None if result[1] is None else int(result[1]), transcendentals


class _View(Mapping):
    """A live read-only view of the TF op types: op type -> formula (FORMULAS) or zero reason (ZERO_OPS)."""

    def __init__(self, kind: str):
        self._kind = kind

    def _value(self, entry: Entry):
        return entry.formula if self._kind == FORMULA else entry.reason

    def _holds(self, key: str, entry: Entry) -> bool:
        return entry.kind == self._kind and split_key(key)[0] == TF

    def __getitem__(self, op_type: str):
        entry = _ENTRIES.get(op_type)
        if entry is None or not self._holds(op_type, entry):
            raise KeyError(op_type)
        return self._value(entry)

    def __iter__(self) -> Iterator[str]:
        return (t for t, e in list(_ENTRIES.items()) if self._holds(t, e))

    def __len__(self) -> int:
        return sum(1 for t, e in list(_ENTRIES.items()) if self._holds(t, e))


class NamespaceView(Mapping):
    """A live read-only view of one namespace: name -> Entry (`OPCODES`: opcode -> its `hlo:` entry)."""

    def __init__(self, namespace: str):
        self.namespace = namespace

    def __getitem__(self, name: str) -> Entry:
        entry = lookup(f"{self.namespace}:{name}")
        if entry is None:
            raise KeyError(name)
        return entry

    def __iter__(self) -> Iterator[str]:
        return (e.name for e in entries(self.namespace))

    def __len__(self) -> int:
        return len(entries(self.namespace))


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
