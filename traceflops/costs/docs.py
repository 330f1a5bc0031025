"""The formulas tables of docs/formulas.md (TF op types, HLO opcodes, custom-call targets), generated from the registry.

    python -m traceflops.costs.docs            # print the table
    python -m traceflops.costs.docs --write    # rewrite it in docs/formulas.md, between the markers
    python -m traceflops.costs.docs --check    # exit 1 when docs/formulas.md differs

One table per registry namespace (TF op types, HLO opcodes, custom-call
targets); one row per formula (elementwise: per FLOPs-per-element count and
reason; zero: per reason), in family order; keys are listed under their names
within the namespace, a row's oneDNN spellings (`_MklX`, `_MklNativeX`) noted,
and a custom-call pattern beside its target.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import CUSTOM_CALL, FAMILIES, FORMULA, HLO, TF, entries

BEGIN = "<!-- formulas table: generated from the registry by `python -m traceflops.costs.docs --write`; do not edit -->"
END = "<!-- end of the generated formulas table -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "formulas.md"
# namespace -> (heading, what its keys are called); the TF table comes first, without a heading.
SECTIONS = {TF: ("", "op types"), HLO: ("HLO opcodes (registry keys `hlo:<opcode>`; `fusion:kLoop` is a fusion kind)",
                                       "opcodes"),
            CUSTOM_CALL: ("Custom-call targets (registry keys `custom_call:<target>`; an `hlo:custom-call` "
                          "instruction is priced by its target's entry, else by the first pattern it matches)",
                          "targets")}


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _label(entry) -> str:
    """A key's name in its table: custom-call targets as code (their `__` would read as bold), with their pattern."""
    if entry.namespace != CUSTOM_CALL:
        return entry.name
    return f"`{entry.name}` (pattern `{entry.pattern}`)" if entry.pattern else f"`{entry.name}`"


def _rows(namespace: str) -> list:
    """[((family, kind, formula name, description), [names], {names with oneDNN spellings})]."""
    groups, with_variants = {}, set()
    for entry in entries(namespace):
        if entry.variant_of:
            with_variants.add(entry.variant_of)
            continue
        name = entry.formula.__name__ if entry.kind == FORMULA and entry.flops_per_element is None else ""
        groups.setdefault((entry.family, entry.kind, name, entry.description), []).append(_label(entry))
    order = {family: i for i, family in enumerate(FAMILIES)}
    keys = sorted(groups, key=lambda k: order.get(k[0], len(order)))  # stable: registration order within
    return [(k, groups[k], with_variants & set(groups[k])) for k in keys]


def _names(op_types: list, with_variants: set) -> str:
    """The row's op types; `(+ oneDNN spellings)` when all have them, else a † on those that do."""
    if with_variants and len(with_variants) == len(op_types):
        return ", ".join(op_types) + " (+ oneDNN spellings)"
    marked = [t + ("†" if t in with_variants else "") for t in op_types]
    return ", ".join(marked) + (" (†: + oneDNN spellings)" if with_variants else "")


def namespace_table(namespace: str) -> list:
    """The lines of one namespace's table."""
    _, keys_are = SECTIONS[namespace]
    lines = [f"| family | {keys_are} | kind | FLOPs (MACs for contractions) |", "| --- | --- | --- | --- |"]
    for (family, kind, _name, description), names, with_variants in _rows(namespace):
        what = description if kind == FORMULA else f"0: {description}"
        lines.append(f"| {family} | {_cell(_names(names, with_variants))} | {kind} | {_cell(what)} |")
    return lines


def formulas_table() -> str:
    """The markdown tables of every registered key, one per namespace (without the markers)."""
    lines = []
    for namespace, (heading, _) in SECTIONS.items():
        if heading:
            lines += ["", heading + ":", ""]
        lines += namespace_table(namespace)
    return "\n".join(lines) + "\n"


def documented_table(path: Path = DOC) -> str:
    """The table as docs/formulas.md holds it now, between the markers."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{path} has no generated-table markers")
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write(path: Path = DOC) -> bool:
    """Rewrite the table between the markers; True when the file changed."""
    text = path.read_text()
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    new = f"{before}{BEGIN}\n{formulas_table()}{END}{after}"
    if new == text:
        return False
    path.write_text(new)
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m traceflops.costs.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the table in docs/formulas.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/formulas.md's table differs")
    parser.add_argument("--path", type=Path, default=DOC)
    args = parser.parse_args(argv)
    if args.write:
        print(f"{args.path}: {'updated' if write(args.path) else 'already up to date'}")
        return 0
    if args.check:
        same = documented_table(args.path) == formulas_table()
        print(f"{args.path}: {'up to date' if same else 'differs: run python -m traceflops.costs.docs --write'}")
        return 0 if same else 1
    sys.stdout.write(formulas_table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
