"""The layout holds: imports point down (no cycle, nothing imports the app's
assembly), and SQL lives only in the module that owns its table, never in routes or jobs."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|ALTER|DROP|PRAGMA)\b", re.I)


def _modules() -> dict[str, Path]:
    found = {}
    for top in ("app", "jobs"):
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Project modules this one imports, anywhere in it (a late import is still an import)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out |= {t for t in targets if t in MODULES and t != name}
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _parents(name: str) -> set[str]:
    """Importing a.b.c first imports a and a.b: a package's own __init__ is no cycle with its children."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def test_no_import_cycle():
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        for nxt in GRAPH[node]:
            if nxt in _parents(node) or node in _parents(nxt):
                continue
            if nxt in stack:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif len(stack) < 12:
                visit(nxt, stack + [nxt])

    for start in GRAPH:
        visit(start, [start])
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles[:5])


def test_only_the_assembly_imports_routes():
    """Route modules import app.http, never app.web; domain code and jobs import no route module."""
    for name, imported in GRAPH.items():
        assert "app.web" not in imported, f"{name} imports app.web"
        if not name.endswith(".pages") and name != "app.web":
            assert not [m for m in imported if m.endswith(".pages")], f"{name} imports a route module"


def test_no_sql_in_routes_or_jobs():
    for name, path in MODULES.items():
        if not (name.endswith(".pages") or name.split(".")[0] == "jobs" or name in ("app.http", "app.web")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not SQL.match(node.value), f"SQL in {path.relative_to(ROOT)}: {node.value[:60]!r}"


def test_the_businesses_table_is_queried_by_its_owner_only():
    for name, path in MODULES.items():
        if name.startswith("app.businesses") or name == "app.migrations":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not re.search(r"\b(FROM|UPDATE|INTO|JOIN)\s+businesses\b", node.value, re.I), \
                    f"{path.relative_to(ROOT)} queries businesses"
