"""The package layout holds: imports point down (top → front ends → capabilities → shared
ground), the remediation core never speaks Slack, and no module imports itself in a loop.

Read from the source with an AST walk, so a new module is checked the day it lands.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

BOT = Path(__file__).resolve().parents[1] / "bot"

# Most specific prefix wins. Higher layers may import lower ones, never the reverse.
LAYERS: dict[str, int] = {
    "bot.cli": 4,
    "bot.__main__": 4,
    "bot.commands": 4,
    "bot.app": 4,
    "bot.demo": 4,  # wiring like app.py: the whole product on one machine
    "bot.bench": 4,  # starts the product's processes and measures them
    "bot.slack": 3,
    "bot.console": 3,
    "bot.diagnosis": 2,
    "bot.remediation": 2,
    "bot.readiness": 2,
    "bot.canary": 2,
    "bot.models": 1,
    "bot.config": 1,
    "bot.access": 1,
    "bot.store": 1,
    "bot.incidents": 1,
    "bot.ledger": 1,
    "bot.logs": 1,
    "bot.migrations": 1,
    "bot.sources": 1,
    "bot.simulator": 1,
}
# Pairs in the same layer that must not meet (importer prefix, imported prefix).
FORBIDDEN = [
    ("bot.diagnosis", "bot.remediation"),  # remediation verifies with diagnosis, not back
    ("bot.slack", "bot.console"),
    ("bot.console", "bot.slack"),
]
# Known upward arrows, each with its reason. Keep this list short.
ALLOWED = {
    # settings reject unknown check ids and parameters at load time, naming the known ones;
    # the check library is imported lazily, only when thresholds are configured
    ("bot.config", "bot.diagnosis.checks"),
}


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    runtime: bool  # imported when the module loads (not under TYPE_CHECKING, not in a function)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> Iterator[tuple[str, bool]]:
    def walk(node: ast.AST, runtime: bool) -> Iterator[tuple[str, bool]]:
        for child in ast.iter_child_nodes(node):
            deferred = isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) or (
                isinstance(child, ast.If) and _is_type_checking(child)
            )
            child_runtime = runtime and not deferred
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, runtime
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                yield child.module, runtime
                for alias in child.names:  # `from bot.slack import intake` names a module
                    yield f"{child.module}.{alias.name}", runtime
            yield from walk(child, child_runtime)

    yield from walk(tree, True)


def import_graph(root: Path = BOT) -> list[Edge]:
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    edges: list[Edge] = []
    for name, path in sorted(modules.items()):
        for imported, runtime in _imports(ast.parse(path.read_text(), str(path))):
            if imported in modules and imported != name:
                edges.append(Edge(name, imported, runtime))
    return edges


def layer_of(module: str) -> int:
    matches = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")
    return LAYERS[max(matches, key=len)]


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(edges: list[Edge]) -> list[str]:
    found = []
    for e in edges:
        if (e.importer, e.imported) in ALLOWED:
            continue
        if layer_of(e.imported) > layer_of(e.importer):
            found.append(f"{e.importer} imports {e.imported}, a layer above it")
        for importer, imported in FORBIDDEN:
            if _under(e.importer, importer) and _under(e.imported, imported):
                found.append(f"{e.importer} imports {e.imported} ({importer} ↛ {imported})")
    return found


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components (more than one module) of the load-time graph."""
    graph: dict[str, list[str]] = {}
    for e in edges:
        if e.runtime:
            graph.setdefault(e.importer, []).append(e.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, []):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _package_imports(edges: list[Edge]) -> Mapping[str, set[str]]:
    out: dict[str, set[str]] = {}
    for e in edges:
        out.setdefault(e.importer, set()).add(e.imported)
    return out


def test_imports_point_down() -> None:
    edges = import_graph()
    assert len(edges) > 100  # the walk really read the package
    assert violations(edges) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_capabilities_never_import_slack() -> None:
    for importer, imported in _package_imports(import_graph()).items():
        if _under(importer, "bot.diagnosis") or _under(importer, "bot.remediation"):
            slack = sorted(m for m in imported if _under(m, "bot.slack"))
            assert slack == [], f"{importer} imports {slack}"


def test_the_checker_catches_what_it_forbids(tmp_path: Path) -> None:
    root = tmp_path / "bot"
    for package in ("", "slack", "remediation", "diagnosis"):
        (root / package).mkdir(parents=True, exist_ok=True)
        (root / package / "__init__.py").write_text("")
    (root / "models.py").write_text("from bot.slack import render\n")
    (root / "slack" / "render.py").write_text("import bot.models\n")
    (root / "remediation" / "flow.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bot.slack import render\n"
    )
    (root / "diagnosis" / "engine.py").write_text("from bot.remediation import flow\n")
    edges = import_graph(root)
    found = violations(edges)
    assert "bot.models imports bot.slack.render, a layer above it" in found
    assert any("bot.remediation.flow imports bot.slack.render" in v for v in found)
    assert any("bot.diagnosis.engine imports bot.remediation.flow (" in v for v in found)
    assert cycles(edges) == [["bot.models", "bot.slack.render"]]
