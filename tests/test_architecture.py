"""The shape of the library a reader walks: no import cycles, layers that point one way, short functions.

Every import in growlib is read from the source (those inside functions included) and
resolved to the growlib module it names; a cycle is a module that imports, directly or
through others, a module that imports it back.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "growlib"
LONGEST_FUNCTION = 45  # lines, decorators and docstring included
LONGEST_SESSION = 100  # lines of growlib/harness/session.py's Session class


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _package(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def _imports(name: str, path: Path) -> set[str]:
    """The growlib modules ``name`` imports, wherever in the file the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = _package(name, path).split(".")
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            # `from pkg import mod` names a module when pkg.mod is one
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycle_through(start: str) -> list[str] | None:
    """A path of imports from ``start`` back to itself, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in GRAPH[node]:
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def test_the_import_reader_sees_imports_inside_functions_and_relative_ones():
    assert "growlib.harness.memory.machine" in GRAPH["growlib.harness.memory.plan"]  # from .machine import ...
    assert "growlib.model" in GRAPH["growlib.harness.memory.machine"]  # imported inside runtime_overhead
    assert "growlib.parallel.dcp" in GRAPH["growlib.harness.checkpoints.saver"]  # from ...parallel import dcp


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_imports_one_that_imports_it_back(name):
    cycle = _cycle_through(name)
    assert cycle is None, " -> ".join(cycle)


def test_concepts_import_no_harness():
    # growlib.__main__ is the command's entry point: `python -m growlib` runs growlib.harness.cli
    concepts = [n for n in MODULES if not n.startswith(("growlib.harness", "growlib.parallel", "growlib.__main__"))]
    for name in concepts:
        assert not {m for m in GRAPH[name] if m.startswith("growlib.harness")}, name
    assert not any(m.startswith("growlib.harness") for m in GRAPH["growlib.plots"])


def test_no_function_is_longer_than_the_limit():
    long = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno - first + 1 > LONGEST_FUNCTION:
                    long.append(f"{name}.{node.name}: {node.end_lineno - first + 1} lines")
    assert not long, long


def test_the_session_holds_data_and_state_in_few_lines():
    tree = ast.parse((ROOT / "harness" / "session.py").read_text())
    session = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Session")
    assert session.end_lineno - session.lineno + 1 <= LONGEST_SESSION
