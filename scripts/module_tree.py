"""Print the package's module tree, one line per module: its path and its docstring's first sentence.

    python scripts/module_tree.py            # the table README.md and docs/design.md hold between their markers
    python scripts/module_tree.py --check    # exit 1 when either file's table differs (a test runs this)
    python scripts/module_tree.py --write    # rewrite the table in both files
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOCS = [REPO / "README.md", REPO / "docs" / "design.md"]
BEGIN, END = "<!-- module-tree: begin (scripts/module_tree.py --write) -->", "<!-- module-tree: end -->"
STAGE_ORDER = ["capture", "trace", "graph", "costs", "join", "roofline", "report"]


def _summary(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    return first.split(". ")[0].rstrip(".") if first else ""


def _order(path: Path) -> tuple:
    parts = path.relative_to(REPO / "traceflops").parts
    stage = STAGE_ORDER.index(parts[0]) if parts[0] in STAGE_ORDER else (-1 if len(parts) == 1 else 99)
    return (stage, len(parts) > 1 and parts[-1] != "__init__.py", parts)


def table() -> str:
    modules = sorted((p for p in (REPO / "traceflops").rglob("*.py") if "__pycache__" not in p.parts), key=_order)
    rows = ["| module | lines | what it does |", "| --- | --- | --- |"]
    for path in modules:
        lines = path.read_text().count("\n") + 1
        summary = _summary(path).replace("|", "\\|")
        rows.append(f"| `{path.relative_to(REPO).as_posix()}` | {lines} | {summary} |")
    return "\n".join(rows)


def _current(path: Path) -> str:
    text = path.read_text()
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        # line counts move with every edit; the check is on the modules and what they say they do
        strip = lambda t: [(r.split("|")[1], r.split("|")[3]) for r in t.splitlines()[2:]]  # noqa: E731
        stale = [p.name for p in DOCS if strip(_current(p)) != strip(table())]
        print(f"module tree differs in {', '.join(stale)}" if stale else "module tree up to date")
        return 1 if stale else 0
    if "--write" in args:
        for path in DOCS:
            text = path.read_text()
            start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
            path.write_text(text[:start] + "\n" + table() + "\n" + text[end:])
        return 0
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
