"""The import graph of dynserver has no cycle, and no cycle is hidden from it.

import-linter (`make lint`, the contracts in pyproject.toml) checks the layers and the
purity of the core; this adds what it does not say: no cycle at all, even between modules
that the layers leave unconstrained, and no ``if TYPE_CHECKING:`` block or import inside
a function that would let a cycle exist at run time while the imports at the top of the
files look acyclic.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dynserver"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    # grimp reads every import statement, also those under TYPE_CHECKING and inside
    # functions: a cycle hidden from the interpreter is not hidden from it.
    return grimp.build_graph("dynserver", cache_dir=None)


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that import each other, round a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            group: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1 or module in graph.find_modules_directly_imported_by(module):
                groups.append(sorted(group))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return groups


def _lines(graph: grimp.ImportGraph, group: list[str]) -> list[str]:
    """Every import inside a group, with its line: where to cut the cycle."""
    members = set(group)
    found = []
    for importer in group:
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                found.append(f"{importer}:{detail['line_number']} {detail['line_contents']}")
    return found


def test_no_import_cycle(graph: grimp.ImportGraph) -> None:
    cycles = {" <-> ".join(group): _lines(graph, group) for group in _strongly_connected(graph)}
    assert cycles == {}


def test_the_cycle_finder_finds_a_cycle() -> None:
    """A positive control: the check above would see a cycle if there were one."""
    graph = grimp.ImportGraph()
    for module in ("pkg", "pkg.a", "pkg.b", "pkg.c"):
        graph.add_module(module)
    graph.add_import(importer="pkg.a", imported="pkg.b")
    graph.add_import(importer="pkg.b", imported="pkg.a")
    graph.add_import(importer="pkg.c", imported="pkg.a")
    assert _strongly_connected(graph) == [["pkg.a", "pkg.b"]]


def _layered() -> set[str]:
    """The modules the layers contract in pyproject.toml names (each with what is below it)."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c["layers"] for c in contracts if c["type"] == "layers")
    return {name.strip().strip("()") for layer in layers for name in layer.replace("|", ":").split(":")}


def test_every_module_has_a_place_in_the_layers(graph: grimp.ImportGraph) -> None:
    """A new module is placed in the layers when it is added, so that the contract keeps
    describing the whole tree. Only the packages that hold modules of several layers
    (whose __init__ is empty) stand outside."""
    layered = _layered()
    outside = {
        module
        for module in graph.modules
        if not any(module == name or module.startswith(name + ".") for name in layered)
    }
    assert outside == {"dynserver", "dynserver.health", "dynserver.locations", "dynserver.update"}


def _modules() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        yield str(path.relative_to(PACKAGE.parent)), ast.parse(path.read_text(), str(path))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _names_dynserver(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == "dynserver"
    return any(alias.name.split(".")[0] == "dynserver" for alias in node.names)


def _deferred_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Imports of dynserver modules inside a function body (at any depth)."""
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.Import | ast.ImportFrom) and _names_dynserver(node):
                    yield node


def _imported_by_another(graph: grimp.ImportGraph, path: str) -> bool:
    module = path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    importers = graph.find_modules_that_directly_import(module) - {"dynserver.__main__"}
    return bool(importers)


def test_no_type_checking_imports() -> None:
    """With ``from __future__ import annotations`` an annotation needs no import at run
    time; a TYPE_CHECKING block exists only to keep an import the interpreter would find
    circular, so none is allowed."""
    found = [
        f"{path}:{node.lineno}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node.test)
    ]
    assert found == []


def test_no_deferred_imports_of_dynserver_modules(graph: grimp.ImportGraph) -> None:
    """An import inside a function can close a cycle that module-level imports would
    refuse. The command line may defer (`dynserver check-config` need not load the
    server): no dynserver module imports it, so nothing it defers can lead back to it."""
    found = [
        f"{path}:{node.lineno} {ast.unparse(node)}"
        for path, tree in _modules()
        if _imported_by_another(graph, path)
        for node in _deferred_imports(tree)
    ]
    assert found == []


def test_the_ast_checks_see_what_they_forbid() -> None:
    """A positive control for the two checks above."""
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from dynserver.app import App\n"
        "def f():\n    from dynserver import config\n    import json\n"
        "async def g():\n    from . import wire\n"
    )
    assert [n.lineno for n in ast.walk(tree) if isinstance(n, ast.If) and _is_type_checking(n.test)] == [2]
    assert [n.lineno for n in _deferred_imports(tree)] == [5, 8]
