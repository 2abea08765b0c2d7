"""The core's modules import each other without a cycle, counting imports inside functions.

A lazy import inside a function hides a cycle from Python but not from a reader: the modules
still depend on each other. The package's ``__init__`` (the public facade, which re-exports
names lazily) is left out: edges to and from it say nothing about the layering.
"""

from __future__ import annotations

import ast
from pathlib import Path

import plugformer

ROOT = Path(plugformer.__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = ["plugformer", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the core modules it imports (anywhere in its body), the facade left out."""
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        if name == "plugformer":
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*up, base] if base else up)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                # the longest core module the import names (a module, or a name in one)
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t not in ("plugformer", name):
                    edges.add(t)
        graph[name] = edges
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


SUBPACKAGES = (
    "blocks",
    "cli",
    "data",
    "default_plugins",
    "hf",
    "inference",
    "models",
    "suites",
    "training",
)


def test_the_graph_walks_every_subpackage() -> None:
    graph = import_graph()
    for sub in SUBPACKAGES:
        modules = [m for m in graph if m.startswith(f"plugformer.{sub}.")]
        assert modules, f"no module of plugformer.{sub} in the graph"
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert on_disk == set(SUBPACKAGES), "a subpackage the test does not know of: add it"
    assert "plugformer.training.finetune" in graph["plugformer.cli.run"]  # an import in a function


def test_the_graph_sees_function_level_imports() -> None:
    graph = import_graph()
    assert graph.get("plugformer.training.finetune")
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_in_the_core() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
