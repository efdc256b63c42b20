"""Packaging: the version's single source, the top-level exports, the license, and an sdist
that carries everything its own test suite needs."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
from pathlib import Path
from typing import Any

import pytest

import statesock
from statesock import exceptions

ROOT = Path(__file__).resolve().parent.parent
# What the sdist must carry besides the package: the tests with their conftest, package marker
# and data, and the files the tests compare against.
SHIPPED_DIRS = ("statesock", "tests", "examples", "diagrams")
SKIPPED_PARTS = {"__pycache__", ".hypothesis", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def test_version_is_a_release_number() -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?", statesock.__version__)


def test_installed_metadata_has_the_same_version() -> None:
    try:
        installed = importlib.metadata.version("statesock")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("statesock is not installed in this environment")
    assert installed == statesock.__version__


def test_top_level_exports_the_public_api_and_the_whole_exception_tree() -> None:
    assert set(exceptions.__all__) <= set(statesock.__all__)
    for name in statesock.__all__:
        assert getattr(statesock, name) is not None, name
    for name in (
        "WebSocketClient",
        "ConnectionRecoveryHandler",
        "NetworkMonitor",
        "ManualNetworkMonitor",
        "RouteNetworkMonitor",
    ):
        assert name in statesock.__all__
    assert issubclass(statesock.TLSFailure, statesock.StatesockError)


def test_importing_the_package_loads_no_network_stack_and_no_structlog() -> None:
    code = (
        "import sys, statesock\n"
        "statesock.__version__, statesock.StatesockError, statesock.ConnectionState\n"
        "loaded = [m for m in sys.modules\n"
        "          if m.split('.')[0] in ('websockets', 'asyncio', 'structlog')]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_the_license_is_mit() -> None:
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")


def test_package_modules_cite_no_document_missing_from_the_repository() -> None:
    cited: dict[str, set[str]] = {}
    for path in sorted((ROOT / "statesock").rglob("*.py")):
        for name in re.findall(r"[\w./-]+\.md\b", path.read_text(encoding="utf-8")):
            if not (ROOT / name).exists() and not (ROOT / Path(name).name).exists():
                cited.setdefault(path.relative_to(ROOT).as_posix(), set()).add(name)
    assert not cited, cited


def _setuptools() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        config: dict[str, Any] = tomllib.load(file)
    return config


def test_the_command_is_the_tools_cli_and_every_package_directory_is_listed() -> None:
    config = _setuptools()
    assert config["project"]["scripts"] == {"statesock": "statesock.tools.cli:main"}
    packages = config["tool"]["setuptools"]["packages"]
    on_disk = {
        path.parent.relative_to(ROOT).as_posix().replace("/", ".")
        for path in (ROOT / "statesock").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert sorted(packages) == sorted(on_disk)  # a directory left out would not ship
    result = subprocess.run(
        [sys.executable, "-m", "statesock", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0 and "usage: statesock" in result.stdout, result.stderr


def test_the_report_assets_are_found_from_an_installed_layout(tmp_path: Path) -> None:
    """Copy what pyproject.toml ships (each package's modules and package data, nothing
    else) to a fresh directory and render a report from there: the CSS, JavaScript and HTML
    template are found through importlib.resources, not through the source tree."""
    config = _setuptools()["tool"]["setuptools"]
    data = config["package-data"]
    for package in config["packages"]:
        source = ROOT / package.replace(".", "/")
        target = tmp_path / package.replace(".", "/")
        target.mkdir(parents=True)
        files = {*source.glob("*.py"), *(p for g in data.get(package, []) for p in source.glob(g))}
        for path in files:
            shutil.copy(path, target / path.name)
    assets = sorted(p.name for p in (tmp_path / "statesock/tools/report_assets").iterdir())
    assert assets == ["report.css", "report.html", "report.js"]
    code = (
        "import statesock.tools.report as report\n"
        "print(report.__file__)\n"
        "page = report.build_report([], title='installed').html\n"
        "assert page.startswith('<!DOCTYPE html>') and '<title>installed</title>' in page\n"
        "assert report.asset('report.css') in page and report.asset('report.js') in page\n"
        "assert 'svg.diagram' in page and 'getElementById(\"report-data\")' in page\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()).is_relative_to(tmp_path)


def _source_files() -> set[str]:
    files = {"LICENSE", "README.md", "pyproject.toml"}
    for top in SHIPPED_DIRS:
        for path in (ROOT / top).rglob("*"):
            relative = path.relative_to(ROOT)
            shipped = path.is_file() and path.suffix not in (".pyc", ".pyo")
            if shipped and not SKIPPED_PARTS & set(relative.parts):
                files.add(relative.as_posix())
    return files


def _build_tools_missing() -> str | None:
    """Why this environment cannot build the sdist offline, or None when it can."""
    try:
        importlib.metadata.version("build")
        setuptools = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError as exc:
        return f"needs {exc.name} (the dev extra)"
    if int(setuptools.split(".")[0]) < 77:
        return f"needs setuptools>=77 (the dev extra), not {setuptools}"
    return None


@pytest.mark.skipif(_build_tools_missing() is not None, reason=str(_build_tools_missing()))
def test_the_sdist_carries_its_tests_data_and_license_and_builds_without_warnings(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert not re.search(r"deprecat|warning", output, re.IGNORECASE), output
    [sdist] = tmp_path.glob("*.tar.gz")
    prefix = f"statesock-{statesock.__version__}/"
    assert sdist.name == f"statesock-{statesock.__version__}.tar.gz"
    with tarfile.open(sdist) as archive:
        names = {name.removeprefix(prefix) for name in archive.getnames()}
        member = archive.extractfile(f"{prefix}PKG-INFO")
        assert member is not None
        metadata = member.read().decode()
    for required in (
        "LICENSE",
        "MANIFEST.in",
        "tests/conftest.py",
        "tests/__init__.py",
        "tests/data/localhost.crt",
        "tests/data/localhost.key",
        "tests/test_packaging.py",
    ):
        assert required in names, required
    missing = _source_files() - names
    assert not missing, f"not in the sdist: {sorted(missing)}"
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert "License-Expression: MIT" in metadata
    assert "License-File: LICENSE" in metadata
    assert f"Version: {statesock.__version__}" in metadata
    assert "Classifier: Typing :: Typed" in metadata
