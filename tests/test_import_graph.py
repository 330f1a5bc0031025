"""The package's import graph: no cycle between modules or between stages, and no module reaching for
another module's underscore names (function-level imports included)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "traceflops"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict:
    """Module name -> path, for every module of the package."""
    return {module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def _resolve(current: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, modules: dict) -> list:
    """(imported module, the names taken from it, line) for every import in the module, at any depth."""
    found = []
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, (), node.lineno) for alias in node.names if alias.name in modules]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(name, is_package, node)
            if target not in modules:
                continue
            plain = []
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:  # `from . import module`: an import of that module
                    found.append((sub, (), node.lineno))
                else:
                    plain.append(alias.name)
            if plain:
                found.append((target, tuple(plain), node.lineno))
    return found


def import_graph() -> dict:
    modules = package_modules()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(edges: dict) -> list:
    """The strongly connected components with more than one node (Tarjan), as sorted lists."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def stage_of(module: str) -> str:
    """`traceflops.costs.hlo.module` -> `costs`; a top-level module is a stage of its own."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_import_cycle_between_modules():
    graph = import_graph()
    edges = {name: {target for target, _, _ in found if target != name} for name, found in graph.items()}
    assert cycles(edges) == []


def test_no_import_cycle_between_stages():
    graph = import_graph()
    edges: dict = {}
    for name, found in graph.items():
        for target, _, _ in found:
            if stage_of(target) != stage_of(name):
                edges.setdefault(stage_of(name), set()).add(stage_of(target))
    assert cycles(edges) == []


def test_no_module_imports_another_modules_underscore_names():
    reached = []
    for name, found in import_graph().items():
        for target, names, line in found:
            if target == name:
                continue
            reached += [f"{name}:{line} takes {target}.{n}" for n in names
                        if n.startswith("_") and not n.startswith("__")]
    assert reached == []


def test_no_module_reads_an_underscore_attribute_of_another_module():
    """`from . import peaks` then `peaks._measure(...)` is the same reach as importing `_measure`."""
    modules = package_modules()
    reached = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        bound = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                target = _resolve(name, path.name == "__init__.py", node)
                for alias in node.names:
                    if f"{target}.{alias.name}" in modules:
                        bound[alias.asname or alias.name] = f"{target}.{alias.name}"
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.asname:
                        bound[alias.asname] = alias.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in bound and bound[node.value.id] != name
                    and node.attr.startswith("_") and not node.attr.startswith("__")):
                reached.append(f"{name}:{node.lineno} reads {bound[node.value.id]}.{node.attr}")
    assert reached == []


def test_the_checker_finds_a_cycle_and_resolves_relative_imports():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    node = ast.parse("from ..graph import shapes").body[0]
    assert _resolve("traceflops.costs.registry", False, node) == "traceflops.graph"
    node = ast.parse("from . import x").body[0]
    assert _resolve("traceflops.costs", True, node) == "traceflops.costs"
