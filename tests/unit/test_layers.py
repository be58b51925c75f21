"""The package's import graph: no cycles, and no lower layer reaching up into a higher one.

Every import counts, at module level or inside a function (a lazy import is still a dependency).
A new cycle or a layer reaching up fails here, naming the modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "gooddata_flight_server"
ROOT = Path(__file__).resolve().parents[2] / "src" / PACKAGE

# Lowest first: a module may import from its own layer and the layers before it, never after it.
# Modules that only re-export for compatibility with the original package's paths are the top.
LAYERS: list[tuple[str, ...]] = [
    ("_version", "_files", "_globals", "exceptions", "errors", "flight_protocol"),
    ("_settings_parse", "settings", "_settings_load", "_sample_config"),
    ("observability.log_limit", "observability.logging", "observability.metrics", "observability.tracing"),
    ("health", "_http", "observability.exposition", "housekeeping", "_derived"),
    ("tasks",),
    ("context", "loader"),
    ("auth",),
    ("rpc.call", "rpc.gate", "rpc._threadstate", "rpc.boundary", "rpc.task_stream", "rpc.task_flow"),
    ("methods", "methods_provider"),
    ("rpc",),
    ("server", "testing", "cli", "__main__", "flightsql", "client"),
    ("__init__", "config", "utils", "server.base", "server.flight_rpc", "server.auth"),
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def _inner(target: str) -> str:
    return target[len(PACKAGE) + 1 :] or "__init__"


def _imports() -> dict[str, set[str]]:
    modules = {_module_name(path): path for path in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".") if package else []
                    anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                    base = ".".join([PACKAGE, *anchor, *([base] if base else [])])
                # ``from pkg import submodule`` depends on the submodule; ``from pkg import name`` on pkg
                targets = [
                    f"{base}.{alias.name}" if _inner(f"{base}.{alias.name}") in modules else base
                    for alias in node.names
                ]
            for target in targets:
                if target == PACKAGE or target.startswith(f"{PACKAGE}."):
                    inner = _inner(target)
                    if inner in modules and inner != name:
                        graph[name].add(inner)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _layer(module: str) -> int:
    best, rank = -1, -1
    for number, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(f"{prefix}.")) and len(prefix) > best:
                best, rank = len(prefix), number
    assert rank >= 0, f"{module} is in no layer: add it to LAYERS"
    return rank


def test_no_import_cycles() -> None:
    assert _cycles(_imports()) == []


def test_no_layer_imports_a_higher_one() -> None:
    graph = _imports()
    upward = sorted(
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, targets in graph.items()
        for target in targets
        if _layer(target) > _layer(module)
    )
    assert upward == []


def test_the_checks_can_fail() -> None:
    """The cycle finder finds a cycle, and the layer check sees a reach upwards."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    assert _layer("settings") < _layer("rpc.edge")
