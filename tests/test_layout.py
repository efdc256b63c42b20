"""The import rules of DESIGN.md: pure modules stay pure, the CLI loads no network stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "statesock"
PURE = [
    "machine",
    "core",
    "core_io",
    "sources",
    "events",
    "exceptions",
    "retry",
    "settings",
    "redaction",
]
FORBIDDEN_IN_PURE = {"asyncio", "websockets", "time", "socket", "structlog"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_only_the_standard_library_and_transitions(module: str) -> None:
    path = PACKAGE / f"{module}.py"
    if not path.exists():
        pytest.skip(f"{module}.py does not exist yet")
    assert not _imports(path) & FORBIDDEN_IN_PURE


def test_cli_and_diagram_do_not_load_the_network_stack() -> None:
    code = (
        "import sys, statesock, statesock.cli, statesock.diagram\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('websockets', 'asyncio')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_package_ships_py_typed() -> None:
    assert (PACKAGE / "py.typed").exists()


def _package_imports(path: Path) -> set[str]:
    """The statesock modules ``path`` imports at module level (not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If):  # ``if TYPE_CHECKING:`` imports are not executed
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                names.add(node.module.split(".")[0])
            else:
                names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("statesock."):
            names.add((node.module or "").split(".")[1])
    return names


def test_the_package_has_no_import_cycles() -> None:
    graph = {p.stem: _package_imports(p) for p in PACKAGE.glob("*.py")}
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> None:
        if module in done:
            return
        assert module not in visiting, " -> ".join([*visiting[visiting.index(module) :], module])
        visiting.append(module)
        for imported in sorted(graph.get(module, ())):
            visit(imported)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_client_is_a_thin_shell() -> None:
    # Decisions live in core.py; the shell only carries out effects.
    lines = (PACKAGE / "client.py").read_text(encoding="utf-8").count("\n")
    assert lines <= 650, lines
