"""The Makefile's targets: each says what it does in `make help`, and the README names it;
what the mutation targets plant still fits the code."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TARGET = re.compile(r"^([a-z][a-z-]*):(?!=)", re.MULTILINE)


def targets() -> list[str]:
    return TARGET.findall((ROOT / "Makefile").read_text(encoding="utf-8"))


def test_every_target_has_a_one_line_help() -> None:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    missing = [t for t in targets() if not re.search(rf"^{t}:.*## \S", text, re.MULTILINE)]
    assert missing == []


def test_the_readme_names_every_target() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [t for t in targets() if f"make {t}" not in readme] == []


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_help_lists_every_target_once() -> None:
    out = subprocess.run(
        ["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    listed = [line.split()[1] for line in out.splitlines() if line.strip()]
    assert sorted(listed) == sorted(targets())
    assert all(len(line.split(None, 2)) == 3 for line in out.splitlines() if line.strip())


def test_the_demo_installs_no_dev_tool() -> None:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    [demo] = re.findall(r"^demo: (.*)$", text, re.MULTILINE)
    assert "$(RUNTIME_STAMP)" in demo and "$(STAMP)" not in demo.replace("$(RUNTIME_STAMP)", "")
    [runtime] = re.findall(r"^\$\(RUNTIME_STAMP\):.*\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert "-e ." in runtime and "[dev]" not in runtime


def test_every_planted_bug_still_finds_its_line() -> None:
    """``make mutate``'s planted bugs (``tests/mutation/planted.py``) each replace one exact
    piece of code; when that code moves or changes, a plant is stale, which only a run of it
    would show. Each piece must occur exactly once in the file the plant names."""
    from tests.mutation.planted import PLANTS

    found = {
        plant.name: (ROOT / plant.path).read_text("utf-8").count(plant.old) for plant in PLANTS
    }
    assert {name: count for name, count in found.items() if count != 1} == {}
