"""Diagrams are rendered from the machine's table and the committed copies are in sync."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from statesock.machine import RULES, ConnectionState, Outcome
from statesock.tools import diagram
from statesock.tools.cli import main

DIAGRAMS = Path(__file__).resolve().parent.parent / "diagrams"


@pytest.mark.parametrize(
    ("fmt", "name"), [("mermaid", "connection.mmd"), ("dot", "connection.dot")]
)
def test_committed_diagram_matches_a_fresh_render(fmt: str, name: str) -> None:
    committed = (DIAGRAMS / name).read_text(encoding="utf-8")
    assert committed == diagram.render(fmt), f"diagrams/{name} is stale: run `make diagrams`"


def test_committed_svg_exists_and_names_every_state() -> None:
    svg = (DIAGRAMS / "connection.svg").read_text(encoding="utf-8")
    assert svg.lstrip().startswith("<?xml") or "<svg" in svg
    for state in ConnectionState:
        assert state.value in svg


def test_every_changing_rule_appears_as_an_edge() -> None:
    mermaid = diagram.render_mermaid()
    for rule in RULES:
        if rule.outcome is Outcome.NOOP:
            continue
        for src in rule.sources:
            dst = rule.dest or src
            line = next(
                x for x in mermaid.splitlines() if x.strip().startswith(f"{src} --> {dst}:")
            )
            assert rule.trigger.value in line


def test_counts_annotate_edges() -> None:
    text = diagram.render_mermaid({("connected", "disconnecting", "disconnect"): 7})
    assert "connected --> disconnecting: disconnect ×7" in text
    assert "initialized --> connecting: connect ×0" in text


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(diagram.DiagramError, match="unknown format"):
        diagram.render("png")


def test_svg_without_graphviz_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(diagram.DiagramError, match="apt-get install graphviz"):
        diagram.render_svg()


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_svg_renders_with_graphviz() -> None:
    assert "<svg" in diagram.render_svg()


def test_cli_writes_the_diagram(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.mmd"
    assert main(["diagram", "--format", "mermaid", "-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == diagram.render_mermaid()
    assert main(["diagram", "--format", "dot"]) == 0
    assert capsys.readouterr().out == diagram.render_dot()


def test_readme_embeds_the_current_mermaid_diagram() -> None:
    readme = (DIAGRAMS.parent / "README.md").read_text(encoding="utf-8")
    assert f"```mermaid\n{diagram.render_mermaid()}```" in readme


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")
def test_svg_with_log_counts() -> None:
    svg = diagram.render_svg({("connected", "disconnecting", "disconnect"): 3})
    assert "disconnect ×3" in svg
