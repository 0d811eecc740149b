"""The code's shape, measured: no function over 60 lines, no import cycle among the pipeline's modules."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LONGEST_FUNCTION = 60
CODE = ("flows", "twin", "deployments", "bench", "scripts", "docs/hooks")


def python_files(*folders: str) -> Iterator[Path]:
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if not {"vendor", "out", "node_modules"} & set(path.relative_to(ROOT).parts):
                yield path


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def long_functions(path: Path, longest: int = LONGEST_FUNCTION) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        f"{shown(path)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > longest
    ]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project's modules a module imports, wherever the import is (at load, in a function, for types)."""
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    [*package.split(".")[: len(package.split(".")) - node.level + 1], base]
                ).strip(".")
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name in modules} - {module_name(path)}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def import_graph(*folders: str) -> dict[str, set[str]]:
    files = list(python_files(*folders))
    modules = {module_name(path) for path in files}
    return {module_name(path): imports_of(path, modules) for path in files}


@pytest.mark.parametrize("folder", CODE)
def test_no_function_is_longer_than_60_lines(folder: str) -> None:
    found = [line for path in python_files(folder) for line in long_functions(path)]
    assert not found, f"split these: {found}"


def test_the_pipelines_modules_import_each_other_without_a_cycle() -> None:
    graph = import_graph("flows")
    assert len(graph) > 60
    assert cycles(graph) == []


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The module graph folded to the pipeline's packages (flows.run, flows.warehouse, ...)."""

    def package(module: str) -> str:
        return ".".join(module.split(".")[:2])

    folded: dict[str, set[str]] = {}
    for module, imported in graph.items():
        folded.setdefault(package(module), set()).update(package(name) for name in imported)
    return {name: targets - {name} for name, targets in folded.items()}


def test_the_pipelines_packages_import_each_other_without_a_cycle() -> None:
    assert cycles(package_graph(import_graph("flows"))) == []


def test_the_checks_see_a_long_function_and_a_cycle(tmp_path: Path) -> None:
    long = tmp_path / "long.py"
    long.write_text("def short():\n    return 1\n\n\ndef f():\n" + "    x = 1\n" * 60)
    assert long_functions(long, longest=60) == [f"{long}:5 f (61 lines)"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    modules = {
        "flows.x.one": {"flows.y.two"},
        "flows.y.two": {"flows.y.three"},
        "flows.y.three": {"flows.x.four"},
    }
    assert cycles(package_graph(modules)) == [["flows.x", "flows.y"]]
