"""The import rules of DESIGN.md: pure modules stay pure, the CLI loads no network stack."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "statesock"
PURE = ["machine", "sources", "events", "exceptions", "retry"]
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
