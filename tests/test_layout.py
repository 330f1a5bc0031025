"""The package's shape: small modules and functions, and the module tables in README.md and
docs/design.md current."""
import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 600, 80


def _modules():
    return [p for p in (REPO / "traceflops").rglob("*.py") if "__pycache__" not in p.parts]


def test_no_module_over_600_lines_and_no_function_over_80():
    too_long = []
    for path in _modules():
        source = path.read_text()
        if source.count("\n") + 1 > MAX_MODULE_LINES:
            too_long.append(f"{path.name}: {source.count(chr(10)) + 1} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.name}:{node.name}: {length} lines")
    assert too_long == []


def test_design_doc_lists_every_module_with_what_it_does():
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "module_tree.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for doc in ("README.md", "docs/design.md"):
        table = (REPO / doc).read_text()
        for path in _modules():
            assert f"`{path.relative_to(REPO).as_posix()}`" in table, (doc, path)
