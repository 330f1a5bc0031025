"""Render the column tables in README.md and docs/*.md from the one column schema (traceflops/schema.py).

    python scripts/column_tables.py            # print every table
    python scripts/column_tables.py --check    # exit 1 when a file's tables differ (tests/test_schema.py runs it)
    python scripts/column_tables.py --write    # rewrite the tables between their markers
"""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from traceflops.schema import TABLES, markdown_table, render_docs  # noqa: E402

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def stale() -> list:
    """The doc files whose marked column tables differ from the schema."""
    return [path for path in DOCS if render_docs(path.read_text()) != path.read_text()]


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        paths = stale()
        print(f"column tables differ in {', '.join(p.name for p in paths)}" if paths else "column tables up to date")
        return 1 if paths else 0
    if "--write" in args:
        for path in stale():
            path.write_text(render_docs(path.read_text()))
        return 0
    for name in TABLES:
        print(f"{name}\n\n{markdown_table(name)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
