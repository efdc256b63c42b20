"""``make bench`` / ``python -m tests.bench [--full] [--only NAME] [--out FILE]``.

Runs the benchmarks, prints one table (median [min-max] of repeated, interleaved runs, the
ratio to each anchor measured in the same run, and the benchmark server's own CPU, flagged
when above 50 % of a core) and writes the results as JSON (``--out``) and the table as
Markdown beside it. The app's logging is configured but filtered above INFO throughout, as
in a production app: structlog with a WARNING filtering logger.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import structlog

from tests.bench import (
    detection,
    healthcheck,
    machine_cost,
    memory,
    recovery_latency,
    storm,
    throughput,
)
from tests.bench.common import SERVER_CPU_LIMIT, Result, median

SUITES: dict[str, Callable[[bool], Result | list[Result]]] = {
    "throughput": throughput.run,
    "healthcheck": healthcheck.run,
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
    return f"{value:.2f}"


def _cell(values: list[float] | None, unit: str) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    median = (
        ordered[len(ordered) // 2]
        if len(ordered) % 2
        else sum(ordered[len(ordered) // 2 - 1 : len(ordered) // 2 + 1]) / 2
    )
    if len(values) == 1:
        return _fmt(median, unit)
    return f"{_fmt(median, unit)} [{_fmt(ordered[0], unit)}–{_fmt(ordered[-1], unit)}]"


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


def table(results: list[Result]) -> str:
    header = ["benchmark", "unit", "statesock", "anchor", "ratio", "target", "met", "server CPU"]
    rows = [header]
    for r in results:
        ratio = f"{r.ratio:.2f}" if r.ratio is not None else "-"
        met = "-" if r.met is None else ("yes" if r.met else "NO")
        anchor = f"{_cell(r.anchor, r.unit)} ({r.anchor_name})" if r.anchor else "-"
        server = "-"
        if r.server_cpu:
            server = f"{100 * median(r.server_cpu):.0f}% (max {100 * max(r.server_cpu):.0f}%)"
            if r.server_flagged:
                server += f" FLAG > {100 * SERVER_CPU_LIMIT:.0f}%"
        rows.append(
            [r.name, r.unit, _cell(r.ours, r.unit), anchor, ratio, r.target or "-", met, server]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench")
    parser.add_argument("--full", action="store_true", help="the large sizes (slow)")
    parser.add_argument("--only", action="append", choices=sorted(SUITES), default=[])
    parser.add_argument("--out", default="bench-results.json")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    started = time.monotonic()
    results: list[Result] = []
    for name in args.only or list(SUITES):
        print(f"running {name}...", file=sys.stderr, flush=True)
        outcome = SUITES[name](args.full)
        results.extend(outcome if isinstance(outcome, list) else [outcome])
    elapsed = time.monotonic() - started
    load = os.getloadavg()
    lines = [
        f"statesock benchmarks ({'full' if args.full else 'quick'}), {machine_info()}, "
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end",
        "",
        table(results),
        "",
    ]
    lines += [f"- {r.name}: {note}" for r in results for note in r.notes]
    flagged = [r.name for r in results if r.server_flagged]
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
                "mode": "full" if args.full else "quick",
                "seconds": elapsed,
                "load_average": load,
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
