"""Memory per idle client, and whether ``gc.freeze()`` helps an app with thousands of clients.

Each side runs in a fresh process (``tests.bench.memory_client``: RSS before and after
opening K connections); the server is a third process. statesock clients carry their health
checks and a recovery handler; raw websockets connections their keepalive and a reading task.

``gc.freeze()``: K statesock clients opened with and without a ``gc.freeze()`` after each
batch, in fresh processes; compared are the CPU spent opening them (the collector's full
passes over the growing heap are part of it) and the pause of one full ``gc.collect()``
once they are open (what every later automatic full collection costs the event loop).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.bench.common import ROOT, Result, ServerProcess, median


def _client_process(mode: str, url: str, count: int, *flags: str) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, "-m", "tests.bench.memory_client", mode, url, str(count), *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    data: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    if data["connected"] != count:
        raise RuntimeError(f"{mode}: only {data['connected']} of {count} connected")
    return data


def _per_client_kib(data: dict[str, Any]) -> float:
    return float(data["after"] - data["before"]) / float(data["count"]) / 1024


def run(full: bool = False) -> list[Result]:
    count, repeats = (10_000, 3) if full else (1_000, 3)
    freeze_count, freeze_repeats = (10_000, 3) if full else (3_000, 2)
    server = ServerProcess().start()
    ours: list[float] = []
    raw: list[float] = []
    objects: dict[str, list[float]] = {"statesock": [], "raw": []}
    frozen: list[dict[str, Any]] = []
    thawed: list[dict[str, Any]] = []
    try:
        for round_ in range(repeats):
            order = ["statesock", "raw"] if round_ % 2 == 0 else ["raw", "statesock"]
            for mode in order:
                data = _client_process(mode, server.url(), count)
                (ours if mode == "statesock" else raw).append(_per_client_kib(data))
                objects[mode].append(data["tracked_objects"] / count)
        for round_ in range(freeze_repeats):
            for freeze in (True, False) if round_ % 2 == 0 else (False, True):
                flags = ["--freeze"] if freeze else []
                data = _client_process("statesock", server.url(), freeze_count, *flags)
                (frozen if freeze else thawed).append(data)
    finally:
        server.kill()
    memory = Result(
        f"memory per idle client ({count:,})",
        "KiB",
        ours,
        raw,
        "raw websockets connection",
    )
    memory.check(1.2)
    memory.notes.append(
        "RSS growth / K, each side in a fresh process; objects the collector tracks per "
        f"client: {median(objects['statesock']):.0f} statesock, {median(objects['raw']):.0f} raw "
        "(a full collection walks them all)"
    )
    pause = Result(
        f"full gc.collect() pause, {freeze_count:,} open clients, gc.freeze() vs not",
        "ms",
        [d["gc_pause_ms"] for d in frozen],
        [d["gc_pause_ms"] for d in thawed],
        "no gc.freeze()",
    )
    opening = Result(
        f"CPU to open a client among {freeze_count:,}, gc.freeze() per batch vs not",
        "µs CPU",
        [d["open_cpu"] / freeze_count * 1e6 for d in frozen],
        [d["open_cpu"] / freeze_count * 1e6 for d in thawed],
        "no gc.freeze()",
    )
    opening.notes.append(
        "automatic full collections while opening: "
        f"{median([float(d['full_collections']) for d in frozen]):g} with freeze, "
        f"{median([float(d['full_collections']) for d in thawed]):g} without"
    )
    pause.notes.append(
        "RSS per client: "
        f"{median([_per_client_kib(d) for d in frozen]):.1f} KiB with freeze, "
        f"{median([_per_client_kib(d) for d in thawed]):.1f} KiB without"
    )
    return [memory, pause, opening]
