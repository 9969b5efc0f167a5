"""The package's layout rules (docs/architecture in the README): generic modules name no search
space, and the import graph of ``metad2a`` has no cycle, between modules or between layers."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "metad2a"
# api.py is generic too, but its docstrings name the spaces as examples for users (test_api_names_no_space_fact)
GENERIC = ["cli.py", "config.py", "paths.py", "parser.py", "reproduce.py", "search_spaces/reproduction.py",
           "search_cmd.py", "report.py", "deploy.py", "plotting.py",
           *sorted(p.name for p in (PKG / "engine").glob("*.py"))]
SPACE_NAME = re.compile(r"nasbench|nb201|(?<![a-z])ofa(?![a-z])|mbv3|mobilenet|once-for-all", re.I)


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """Module -> the ``metad2a`` modules it imports anywhere in its body (function-level too).
    ``from package import name`` counts as importing ``package.name`` when that is a module."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in mods else node.module
                           for a in node.names]
            graph[mod].update(t for t in targets if t in mods and t != mod)
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def _layer(mod: str) -> str:
    """``metad2a.engine.runner`` -> ``engine``; ``metad2a.cli`` -> ``cli``; ``metad2a`` -> ``metad2a``."""
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


@pytest.mark.parametrize("name", GENERIC)
def test_generic_modules_name_no_search_space(name):
    path = PKG / name if (PKG / name).is_file() else PKG / "engine" / name
    hits = [f"{path.name}:{i}: {ln.strip()}" for i, ln in enumerate(path.read_text().splitlines(), 1)
            if SPACE_NAME.search(ln)]
    assert not hits, "\n".join(hits)


def test_no_import_cycle_between_modules():
    assert _find_cycle(import_graph()) is None


def test_no_import_cycle_between_layers():
    layers: dict[str, set[str]] = {}
    for mod, deps in import_graph().items():
        layers.setdefault(_layer(mod), set()).update(_layer(d) for d in deps if _layer(d) != _layer(mod))
    assert _find_cycle(layers) is None


def test_cycle_finder_finds_a_cycle():
    """The checks above would pass vacuously if the finder never reported anything."""
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    graph = import_graph()
    assert "metad2a.search_spaces.nasbench201.cell" in graph["metad2a.search_spaces.nasbench201.space"]
    assert "metad2a.search_spaces" in graph["metad2a.cli"]  # `from metad2a.search_spaces import ...`


def test_api_names_no_space_fact():
    """``api.py``'s code (docstrings aside) names no space: defaults, aliases and priors are space facts."""
    import ast

    tree = ast.parse((PKG / "api.py").read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    hits = [f"api.py:{n.lineno}: {n.value!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docs
            and SPACE_NAME.search(n.value)]
    import io
    import tokenize

    comments = [f"api.py:{t.start[0]}: {t.string}" for t in
                tokenize.generate_tokens(io.StringIO((PKG / "api.py").read_text()).readline)
                if t.type == tokenize.COMMENT and SPACE_NAME.search(t.string)]
    assert not hits and not comments, hits + comments
