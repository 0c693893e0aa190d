"""The package's shape: no import cycle between its modules, and a wheel that carries the
Lua scripts, the migrations and the pages' static files it needs to run."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "seatlock"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> Iterator[str]:
    """The seatlock modules a file imports, at any depth of its code."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name in modules)
        elif isinstance(node, ast.ImportFrom) and node.module in modules:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                yield submodule if submodule in modules else node.module


def _import_graph() -> dict[str, set[str]]:
    files = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: set(_imports(path, set(files))) - {name} for name, path in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for imported in sorted(graph[module]):
            if found := visit(imported, [*path, module]):
                return found
        done.add(module)
        return None

    return next((c for m in sorted(graph) if (c := visit(m, []))), None)


def test_the_import_graph_has_no_cycle() -> None:
    graph = _import_graph()
    assert "seatlock.payments.providers.registry" in graph
    assert _cycle(graph) is None


def test_the_cycle_check_sees_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_the_wheel_carries_every_script_migration_and_static_file(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0 and "No matching distribution found for hatchling" in built.stderr:
        pytest.skip("pip cannot reach a package index to fetch the build backend")
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("seatlock-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    scripts = {
        f"seatlock/lua/{p.relative_to(ROOT / 'lua').as_posix()}"
        for p in (ROOT / "lua").rglob("*.lua")
    }
    migrations = {
        f"seatlock/migrations/{p.relative_to(ROOT / 'migrations').as_posix()}"
        for p in (ROOT / "migrations").rglob("*.py")
    }
    static = {
        f"seatlock/{p.relative_to(PACKAGE).as_posix()}"
        for p in (PACKAGE / "ops" / "static").rglob("*")
        if p.is_file()
    }
    assert scripts
    assert migrations
    assert static
    assert scripts | migrations | static | {"seatlock/migrations/script.py.mako"} <= names
