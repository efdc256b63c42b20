"""``python -m tests.bench.readme_tables [bench-results.json ...]``: the README's tables.

Prints, from one or more results files (so that the README shows exactly what a run wrote):

* the Performance table: the ``transports`` suite's rows (one per figure and event loop: the
  five clients' median [min-max], the server's CPU, and the three ratios of issue 17's
  targets with whether each was met);
* the other figures (statesock against one anchor: median [min-max], anchor, ratio, target,
  server CPU);
* the reconnect-storm table (real runs and the 100,000-client model).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _number(value: float, unit: str) -> str:
    if unit == "share":
        return f"{100 * value:.1f} %"
    if unit == "s":
        return f"{value:.3f}"
    if unit == "ms" and value < 0.1:
        return f"{value:.3f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


def _cell(summary: dict[str, Any] | None, unit: str) -> str:
    if not summary:
        return ""
    if summary["runs"] == 1:
        return _number(summary["median"], unit)
    return (
        f"{_number(summary['median'], unit)} "
        f"[{_number(summary['min'], unit)}–{_number(summary['max'], unit)}]"
    )


# Column captions of the transports table, in the order of common.CLIENTS and common.RATIOS.
CLIENT_NAMES = {
    "statesock-websockets": "statesock, websockets transport",
    "statesock-picows": "statesock, picows transport",
    "raw-websockets": "raw websockets",
    "raw-picows": "raw picows",
    "aiohttp": "aiohttp",
}
RATIO_NAMES = (
    "websockets transport ÷ raw websockets",
    "picows transport ÷ raw websockets",
    "picows transport ÷ raw picows",
)


def _ratio(entry: dict[str, Any]) -> str:
    if entry["ratio"] is None:
        return ""
    text = f"{entry['ratio']:.2f}"
    if entry["target"] is None:
        return text
    return f"{text} (≤ {entry['target']:g}) " + ("yes" if entry["met"] else "**no**")


def transports_table(comparisons: list[dict[str, Any]]) -> str:
    """The Performance table: one row per figure and loop, five clients, three ratios."""
    lines = [
        "| work | loop | unit | "
        + " | ".join(CLIENT_NAMES.values())
        + " | server CPU | "
        + " | ".join(RATIO_NAMES)
        + " |",
        "|" + "---|" * (4 + len(CLIENT_NAMES) + len(RATIO_NAMES)),
    ]
    for row in comparisons:
        unit = row["unit"]
        clients = [_cell(row["clients"].get(kind), unit) for kind in CLIENT_NAMES]
        cpu = row.get("server_cpu")
        server = f"{100 * cpu['median']:.0f} % (max {100 * cpu['max']:.0f} %)" if cpu else ""
        if row.get("server_flagged"):
            server += " **flagged**"
        ratios = [_ratio(entry) for entry in row["ratios"]]
        lines.append(
            f"| {row['name']} | {row['loop']} | {unit} | "
            + " | ".join(clients)
            + f" | {server} | "
            + " | ".join(ratios)
            + " |"
        )
    return "\n".join(lines)


def performance_table(results: list[dict[str, Any]]) -> str:
    """The other figures: statesock against one anchor each."""
    lines = [
        "| work | unit | statesock | anchor | ratio | target | met | server CPU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r["name"].startswith("storm"):
            continue
        anchor = _cell(r["anchor"], r["unit"])
        if anchor:
            anchor += f" {r['anchor_name']}"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else ""
        met = "" if r["met"] is None else ("yes" if r["met"] else "**no**")
        server = ""
        cpu = r.get("server_cpu")
        if cpu:
            server = f"{100 * cpu['median']:.0f} % (max {100 * cpu['max']:.0f} %)"
        target = r["target"].replace("<=", "≤").replace(">=", "≥")
        lines.append(
            f"| {r['name']} | {r['unit']} | {_cell(r['statesock'], r['unit'])} | {anchor} "
            f"| {ratio} | {target} | {met} | {server} |"
        )
    return "\n".join(lines)


def storm_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| strategy, outage | measured | peak share in 100 ms | back p50 | p99 | last "
        "| clients' longest loop stall |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        extra = r.get("extra") or {}
        if not r["name"].startswith("storm") or "real" not in extra:
            continue
        label = r["name"].split(":")[0].removeprefix("storm, ")
        rows = [
            (f"{run['clients']:,} real clients, outage {run['outage']:.2f} s", run)
            for run in extra["real"]
        ]
        rows.append(("model, 100,000 clients", extra["simulated_100k"]))
        for name, run in rows:
            lines.append(
                f"| {label} | {name} | {100 * run['peak_share']:.1f} % | {run['p50']:.2f} s "
                f"| {run['p99']:.2f} s | {run['last']:.2f} s "
                + (f"| {1000 * run['stall']:.0f} ms |" if "stall" in run else "| (model) |")
            )
    return "\n".join(lines)


def main(paths: list[str]) -> int:
    comparisons: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for path in paths or ["bench-results.json"]:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        comparisons.extend(data.get("comparisons", []))
        results.extend(data["results"])
    if comparisons:
        print(transports_table(comparisons))
        print()
    print(performance_table(results))
    print()
    print(storm_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
