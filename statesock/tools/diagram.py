"""State diagrams rendered from the machine's own rule table.

:func:`render_mermaid` and :func:`render_dot` are pure text renderers over
:data:`statesock.machine.RULES` (no-op rules are left out: they change nothing). Optional
``counts`` annotate each edge with how often it happened in a transition log. :func:`render_svg`
pipes the DOT text through Graphviz ``dot`` when it is installed. No network imports.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping

from ..machine import RULES, ConnectionState, Outcome

__all__ = [
    "DiagramError",
    "EdgeKey",
    "edges",
    "render",
    "render_dot",
    "render_mermaid",
    "render_svg",
]

EdgeKey = tuple[str, str, str]  # (src, dst, trigger)
FORMATS = ("mermaid", "dot", "svg")
TITLE = "statesock connection"


class DiagramError(Exception):
    """A diagram could not be rendered (unknown format, Graphviz missing or failing)."""


def edges() -> list[tuple[EdgeKey, bool]]:
    """Every (src, dst, trigger) the table can produce, in table order; bool: internal."""
    seen: dict[EdgeKey, bool] = {}
    for rule in RULES:
        if rule.outcome is Outcome.NOOP:
            continue
        for src in rule.sources:
            dst = rule.dest if rule.dest is not None else src
            seen.setdefault((src.value, dst.value, rule.trigger.value), rule.dest is None)
    return list(seen.items())


def _grouped(counts: Mapping[EdgeKey, int] | None) -> dict[tuple[str, str], list[str]]:
    labels: dict[tuple[str, str], list[str]] = {}
    for (src, dst, trigger), internal in edges():
        label = f"{trigger} (internal)" if internal else trigger
        if counts is not None:
            label += f" ×{counts.get((src, dst, trigger), 0)}"
        labels.setdefault((src, dst), []).append(label)
    return labels


def render_mermaid(counts: Mapping[EdgeKey, int] | None = None) -> str:
    lines = ["---", f"title: {TITLE}", "---", "stateDiagram-v2"]
    lines.append(f"    [*] --> {ConnectionState.INITIALIZED.value}")
    for (src, dst), labels in _grouped(counts).items():
        lines.append(f"    {src} --> {dst}: {' / '.join(labels)}")
    return "\n".join(lines) + "\n"


def render_dot(counts: Mapping[EdgeKey, int] | None = None) -> str:
    lines = [
        "digraph statesock {",
        f'    label="{TITLE}";',
        "    labelloc=t;",
        "    rankdir=LR;",
        '    node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    start [shape=point, label=""];',
    ]
    for state in ConnectionState:
        lines.append(f'    {state.value} [label="{state.value}"];')
    lines.append(f"    start -> {ConnectionState.INITIALIZED.value};")
    for (src, dst), labels in _grouped(counts).items():
        label = "\\n".join(labels)  # DOT's own line break inside a label
        lines.append(f'    {src} -> {dst} [label="{label}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(counts: Mapping[EdgeKey, int] | None = None) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise DiagramError(
            "SVG needs Graphviz's `dot`, which is not installed. Install it "
            "(Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz), "
            "or use --format mermaid or --format dot, which need nothing."
        )
    result = subprocess.run(
        [dot, "-Tsvg"], input=render_dot(counts), capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise DiagramError(f"dot failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def render(fmt: str, counts: Mapping[EdgeKey, int] | None = None) -> str:
    if fmt == "mermaid":
        return render_mermaid(counts)
    if fmt == "dot":
        return render_dot(counts)
    if fmt == "svg":
        return render_svg(counts)
    raise DiagramError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
