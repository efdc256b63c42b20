"""``make bench`` / ``python -m tests.bench [--quick|--full|--smoke] [--only NAME] [--out FILE]``.

Runs the benchmarks and prints two tables, each figure the median [min-max] of repeated,
interleaved runs: the ``transports`` suite's (one row per figure and event loop: the five
clients, the benchmark server's own CPU, and the three ratios of issue 17's targets, each
marked met or missed) and the other suites' (statesock against one anchor measured in the same
run). A row where the server used more than ``common.SERVER_CPU_LIMIT`` of a core is flagged.
It writes every figure and every run's raw values as JSON (``--out``) and the tables as
Markdown beside it; ``python -m tests.bench.readme_tables`` renders the README's tables from
that JSON.

``--quick`` (the default) takes about 5-10 minutes on 2 cores, ``--full`` runs more rounds and
larger sizes, ``--smoke`` tiny ones that only prove the harness works (the suites that know
it: ``transports``, ``memory``; the others run quick). The app's logging is configured but
filtered above INFO throughout, as in a production app: structlog with a WARNING filtering
logger.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from tests.bench import (
    detection,
    machine_cost,
    memory,
    recovery_latency,
    storm,
    transports,
)
from tests.bench.common import CLIENTS, RATIOS, SERVER_CPU_LIMIT, Comparison, Result, median

Row = Result | Comparison
# Each suite's run(full) (and run(full, smoke=...) where it has a smoke size).
SUITES: dict[str, Callable[..., Row | Sequence[Row]]] = {
    "transports": transports.run,
    "machine": machine_cost.run,
    "memory": memory.run,
    "storm": storm.run,
    "recovery": recovery_latency.run,
    "detection": detection.run,
}
# The log tools at fleet scale (another module's), once it offers run(full) like the rest.
with contextlib.suppress(ModuleNotFoundError, AttributeError):
    SUITES["logs"] = importlib.import_module("tests.bench.logs_scale").run


def _fmt(value: float, unit: str) -> str:
    if unit == "events/s":
        return f"{value / 1000:.1f}k"
    if unit == "share":
        return f"{100 * value:.1f}%"
    if unit in ("s",):
        return f"{value:.3f}"
    if unit == "ms" and value < 0.1:
        return f"{value:.3f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _cell(values: list[float] | None, unit: str) -> str:
    if not values:
        return "-"
    middle = median(values)
    if len(values) == 1:
        return _fmt(middle, unit)
    return f"{_fmt(middle, unit)} [{_fmt(min(values), unit)}–{_fmt(max(values), unit)}]"


def _server(cpu: list[float], flagged: bool) -> str:
    if not cpu:
        return "-"
    text = f"{100 * median(cpu):.0f}% (max {100 * max(cpu):.0f}%)"
    return text + (f" FLAG > {100 * SERVER_CPU_LIMIT:.0f}%" if flagged else "")


def machine_info() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def _markdown(rows: list[list[str]]) -> str:
    """Rows (the first is the header) as a Markdown table, columns padded to line up."""
    header = rows[0]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def table(results: list[Result]) -> str:
    header = ["benchmark", "unit", "statesock", "anchor", "ratio", "target", "met", "server CPU"]
    rows = [header]
    for r in results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        met = "-" if r.met is None else ("yes" if r.met else "NO")
        anchor = f"{_cell(r.anchor, r.unit)} ({r.anchor_name})" if r.anchor else "-"
        server = _server(r.server_cpu, r.server_flagged)
        rows.append(
            [r.name, r.unit, _cell(r.ours, r.unit), anchor, ratio, r.target or "-", met, server]
        )
    return _markdown(rows)


RATIO_NAMES = (
    "websockets transport ÷ raw websockets",
    "picows transport ÷ raw websockets",
    "picows transport ÷ raw picows",
)
assert len(RATIO_NAMES) == len(RATIOS)


def ratio_cell(row: Comparison, index: int) -> str:
    """``0.93 ok (<= 1.05)``, ``1.32 MISS (<= 1.05)``, or the bare ratio without a target."""
    ratio, limit = row.ratio(index), row.limits[index]
    if ratio is None:
        return "-"
    if limit is None:
        return f"{ratio:.2f}"
    return f"{ratio:.2f} {'ok' if row.met(index) else 'MISS'} (<= {limit:g})"


def comparison_table(rows: list[Comparison]) -> str:
    header = ["figure", "loop", "unit", *CLIENTS, "server CPU", *RATIO_NAMES]
    lines = [header]
    for row in rows:
        lines.append(
            [
                row.name,
                row.loop,
                row.unit,
                *(_cell(row.sides.get(kind), row.unit) for kind in CLIENTS),
                _server(row.server_cpu, row.server_flagged),
                *(ratio_cell(row, index) for index in range(len(RATIOS))),
            ]
        )
    return _markdown(lines)


def comparison_notes(rows: list[Comparison]) -> list[str]:
    """Each note once: a figure's note the same on every loop is printed without the loop."""
    lines: list[str] = []
    seen: set[tuple[str, str]] = set()
    for row in rows:
        for note in row.notes:
            if (row.name, note) in seen:
                continue
            seen.add((row.name, note))
            everywhere = all(note in other.notes for other in rows if other.name == row.name)
            lines.append(f"- {row.name}{'' if everywhere else f' ({row.loop})'}: {note}")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="the default sizes (~5-10 min)")
    size.add_argument("--full", action="store_true", help="more rounds, larger sizes (slow)")
    size.add_argument(
        "--smoke", action="store_true", help="tiny sizes: check the harness, not the figures"
    )
    parser.add_argument("--only", action="append", choices=sorted(SUITES), default=[])
    parser.add_argument("--out", default="bench-results.json")
    args = parser.parse_args()
    mode = "full" if args.full else "smoke" if args.smoke else "quick"
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    started = time.monotonic()
    rows: list[Row] = []
    for name in args.only or list(SUITES):
        print(f"running {name}...", file=sys.stderr, flush=True)
        suite = SUITES[name]
        if args.smoke and "smoke" in inspect.signature(suite).parameters:
            outcome = suite(False, smoke=True)
        else:
            outcome = suite(args.full)
        rows.extend([outcome] if isinstance(outcome, Result | Comparison) else outcome)
    elapsed = time.monotonic() - started
    load = os.getloadavg()
    comparisons = [r for r in rows if isinstance(r, Comparison)]
    results = [r for r in rows if isinstance(r, Result)]
    lines = [
        f"statesock benchmarks ({mode}), {machine_info()}, "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end",
        "",
    ]
    if comparisons:
        lines += [comparison_table(comparisons), ""]
        lines += comparison_notes(comparisons)
        lines.append("")
    if results:
        lines += [table(results), ""]
    lines += [f"- {r.name}: {note}" for r in results for note in r.notes]
    flagged = [
        f"{r.name} ({r.loop})" if isinstance(r, Comparison) else r.name
        for r in rows
        if r.server_flagged
    ]
    if flagged:
        lines.append(
            f"- FLAGGED: the server used more than {100 * SERVER_CPU_LIMIT:.0f}% of a core in: "
            + "; ".join(flagged)
            + " (those rows may measure the server)"
        )
    lines.append(f"- total {elapsed:.0f} s")
    text = "\n".join(lines)
    print()
    print(text)
    Path(args.out).with_suffix(".md").write_text(text + "\n", encoding="utf-8")
    Path(args.out).write_text(
        json.dumps(
            {
                "machine": machine_info(),
                "mode": mode,
                "seconds": elapsed,
                "load_average": load,
                "comparisons": [r.as_dict() for r in comparisons],
                "results": [r.as_dict() for r in results],
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    print(f"results written to {args.out} and {Path(args.out).with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
