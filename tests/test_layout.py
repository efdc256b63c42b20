"""The layout rules of DESIGN.md: pure modules stay pure, no import cycle, short modules, and
the tools in their own subpackage, loading no network stack.

Imports are read from the source (``ast``), relative ones resolved to the package's modules,
and every import counts: type-only ones (``if TYPE_CHECKING:``) and ones inside functions too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "statesock"
# Decide; import only the standard library, transitions and one another.
PURE = [
    "machine",
    "lean_transitions",
    "core",
    "core_io",
    "sources",
    "events",
    "exceptions",
    "retry",
    "redaction",
    "states",
    "log_schema",
    "option_docs",
]
# Carry out: asyncio, sockets, timers, logging.
SHELL = [
    "client",
    "engine",
    "subscriptions",
    "timers",
    "waiters",
    "settings",
    "recovery",
    "network",
    "testing",
    "transition_log",
    "stats",
    "ping",
    "shell",
    "streams",
    "metrics",
    "picows_engine",
    "websockets_engine",
]
TOOLS = [
    "cli",
    "console",
    "debug_client",
    "demo",
    "log_reader",
    "log_analysis",
    "report",
    "diagram",
]
# The package's entry points and facades: neither layer.
OTHER = ["__init__", "__main__", "sync"]
# Pure modules may import these besides the standard library; nothing else from outside.
PURE_THIRD_PARTY = {"transitions"}
FORBIDDEN_IN_PURE = {"asyncio", "websockets", "time", "socket", "structlog"}
CLIENT_MAX_LINES = 450
MODULE_MAX_LINES = 600
UNLIMITED = {"statesock.core"}


def _name(path: Path) -> str:
    """The dotted module name of a file under the package (``statesock.tools.cli``)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    """Every module of the package, subpackages included, by dotted name."""
    return {_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(source: str, module: str, is_package: bool = False) -> Iterator[str]:
    """Every name ``source`` (the text of ``module``) imports, relative imports resolved to
    absolute ones. Everywhere in the file: type-only and function-level imports count.

    ``from . import x`` yields ``statesock.x``; ``from .engine import X`` yields
    ``statesock.engine`` and ``statesock.engine.X`` (the latter matters when X is a module).
    """
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                kept = len(package) - (node.level - 1)
                assert kept > 0, f"{module}: relative import beyond the top-level package"
                base = ".".join([*package[:kept], *([node.module] if node.module else [])])
            if node.module:
                yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def _package_module(name: str, known: set[str]) -> str | None:
    """The package module ``name`` refers to (its longest known prefix), or None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in known:
            return candidate
    return None


def _impurities(source: str, module: str, known: set[str], pure: set[str]) -> set[str]:
    """What a pure module's ``source`` must not import: a forbidden or third-party package,
    or a package module (of ``known``) that is not in ``pure``."""
    found: set[str] = set()
    for name in _imports(source, module):
        top = name.split(".")[0]
        if top == "statesock":
            target = _package_module(name, known)
            if target is not None and target not in pure:
                found.add(target)
        elif top in FORBIDDEN_IN_PURE or (
            top not in sys.stdlib_module_names and top not in PURE_THIRD_PARTY
        ):
            found.add(top)
    return found


def _package_imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``module`` imports (itself excluded)."""
    source = path.read_text(encoding="utf-8")
    names = _imports(source, module, is_package=path.name == "__init__.py")
    found = {_package_module(name, known) for name in names if name.startswith("statesock")}
    return {name for name in found if name is not None and name != module}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that ends where it starts), or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> list[str] | None:
        if module in done:
            return None
        if module in visiting:
            return [*visiting[visiting.index(module) :], module]
        visiting.append(module)
        for imported in sorted(graph.get(module, ())):
            cycle = visit(imported)
            if cycle is not None:
                return cycle
        visiting.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle is not None:
            return cycle
    return None


# -- the checkers check --------------------------------------------------------------------

KNOWN = {
    "statesock",
    "statesock.core",
    "statesock.engine",
    "statesock.timers",
    "statesock.machine",
    "statesock.tools",
    "statesock.tools.cli",
}


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("from .engine import WebSocketEngine\n", {"statesock.engine"}),
        ("from . import timers\n", {"statesock.timers"}),
        ("from .engine import *\n", {"statesock.engine"}),
        ("import statesock.engine\n", {"statesock.engine"}),
        ("from statesock.engine import SocketHandle\n", {"statesock.engine"}),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .engine import X\n",
            {"statesock.engine"},
        ),
        ("def f():\n    from . import timers\n", {"statesock.timers"}),
        ("from .tools import cli\n", {"statesock.tools", "statesock.tools.cli"}),
        ("from . import machine\nfrom .machine import ConnectionMachine\n", set()),
        ("import asyncio.events\n", {"asyncio"}),
        ("from time import monotonic\n", {"time"}),
        ("import websockets\n", {"websockets"}),
        ("import attrs\n", {"attrs"}),
        ("import enum, threading\nfrom transitions import Machine\n", set()),
    ],
)
def test_the_purity_check_sees_relative_and_type_only_imports(source: str, found: set[str]) -> None:
    pure = {"statesock.core", "statesock.machine"}
    assert _impurities(source, "statesock.core", KNOWN, pure) == found


def test_relative_imports_resolve_from_a_subpackage() -> None:
    source = "from .. import engine\nfrom ..machine import X\nfrom . import console\n"
    names = set(_imports(source, "statesock.tools.cli"))
    assert {"statesock.engine", "statesock.machine", "statesock.tools.console"} <= names
    init = set(_imports("from . import cli\n", "statesock.tools", is_package=True))
    assert init == {"statesock.tools.cli"}


def test_the_cycle_check_finds_a_type_only_cycle() -> None:
    sources = {
        "statesock.a": "from .b import B\n",
        "statesock.b": "import typing\nif typing.TYPE_CHECKING:\n    from .a import A\n",
        "statesock.c": "from .a import A\n",
    }
    known = set(sources)
    graph = {
        module: {
            target
            for name in _imports(text, module)
            if (target := _package_module(name, known)) not in (None, module)
        }
        for module, text in sources.items()
    }
    assert _cycle(graph) == ["statesock.a", "statesock.b", "statesock.a"]
    del graph["statesock.b"]
    assert _cycle(graph) is None


# -- the package obeys ---------------------------------------------------------------------


@pytest.mark.parametrize("module", PURE)
def test_pure_modules_import_only_the_standard_library_transitions_and_pure_modules(
    module: str,
) -> None:
    modules = _modules()
    path = modules.get(f"statesock.{module}")
    assert path is not None, f"{module}.py is missing"
    source = path.read_text(encoding="utf-8")
    pure = {f"statesock.{name}" for name in PURE}
    assert not _impurities(source, f"statesock.{module}", set(modules), pure)


def test_every_module_has_a_place_in_the_layout() -> None:
    placed = {f"statesock.{name}" for name in [*PURE, *SHELL, *OTHER]}
    placed |= {"statesock", "statesock.tools"} | {f"statesock.tools.{name}" for name in TOOLS}
    unplaced = {
        name
        for name in _modules()
        if name not in placed and not name.startswith("statesock.tools.")
    }
    assert not unplaced, f"say whether these are pure or shell modules: {sorted(unplaced)}"


def test_the_package_has_no_import_cycle_type_only_imports_and_subpackages_included() -> None:
    modules = _modules()
    known = set(modules)
    graph = {name: _package_imports(name, path, known) for name, path in modules.items()}
    assert any(name.startswith("statesock.tools.") for name in graph), "the tools are missing"
    cycle = _cycle(graph)
    assert cycle is None, " -> ".join(cycle)


def test_the_tools_live_in_their_subpackage() -> None:
    misplaced = [name for name in TOOLS if (PACKAGE / f"{name}.py").exists()]
    missing = [name for name in TOOLS if not (PACKAGE / "tools" / f"{name}.py").exists()]
    assert not misplaced, f"still at the top level: {misplaced}"
    assert not missing, f"not in statesock/tools/: {missing}"


def test_the_library_never_imports_the_tools() -> None:
    # ``python -m statesock`` (statesock/__main__.py) runs the command: it alone may.
    modules = _modules()
    known = set(modules)
    offenders = {
        name: tools
        for name, path in modules.items()
        if not name.startswith(("statesock.tools", "statesock.__main__"))
        and (tools := {i for i in _package_imports(name, path, known) if ".tools" in i})
    }
    assert not offenders


def test_the_command_line_tools_do_not_load_the_network_stack() -> None:
    code = (
        "import sys, statesock, statesock.tools.cli, statesock.tools.diagram\n"
        "import statesock.tools.log_reader, statesock.tools.report\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('websockets', 'asyncio')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr


def test_package_ships_py_typed() -> None:
    assert (PACKAGE / "py.typed").exists()


def test_client_is_a_thin_shell() -> None:
    # Decisions live in core.py; the shell only carries out effects.
    lines = (PACKAGE / "client.py").read_text(encoding="utf-8").count("\n")
    assert lines <= CLIENT_MAX_LINES, lines


def test_no_module_but_the_core_is_long() -> None:
    long = {
        name: lines
        for name, path in _modules().items()
        if name not in UNLIMITED
        and (lines := path.read_text(encoding="utf-8").count("\n")) > MODULE_MAX_LINES
    }
    assert not long, long
