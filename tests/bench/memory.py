"""Whether ``gc.freeze()`` helps an app with thousands of clients; the memory runs' process.

Every memory figure runs its clients in a fresh process (:func:`client_process`:
``tests.bench.memory_client``, RSS before and after opening K connections); the server is
another. Memory per idle client for the five clients is the ``transports`` suite's
(``tests.bench.transports``); this suite measures ``gc.freeze()``: K statesock clients opened
with and without a ``gc.freeze()`` after each batch, in fresh processes; compared are the
CPU spent opening them (the collector's full passes over the growing heap are part of it)
and the pause of one full ``gc.collect()`` once they are open (what every later automatic
full collection costs the event loop).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.bench.common import ROOT, Result, ServerProcess, median


def client_process(
    kind: str, url: str, count: int, loop: str = "asyncio", *flags: str
) -> dict[str, Any]:
    """``tests.bench.memory_client``'s figures for K idle clients of ``kind`` on ``loop``."""
    command = ["-m", "tests.bench.memory_client", kind, url, str(count), "--loop", loop, *flags]
    done = subprocess.run(
        [sys.executable, *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(
            f"memory_client {kind} on {loop} failed ({done.returncode}): {done.stderr[-2000:]}"
        )
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if data["connected"] != count:
        raise RuntimeError(f"{kind} on {loop}: only {data['connected']} of {count} connected")
    return data


def per_client_kib(data: dict[str, Any]) -> float:
    return float(data["after"] - data["before"]) / float(data["count"]) / 1024


def run(full: bool = False, smoke: bool = False) -> list[Result]:
    freeze_count, freeze_repeats = (10_000, 3) if full else (3_000, 2)
    if smoke:
        freeze_count = 300
    server = ServerProcess().start()
    frozen: list[dict[str, Any]] = []
    thawed: list[dict[str, Any]] = []
    try:
        for round_ in range(freeze_repeats):
            for freeze in (True, False) if round_ % 2 == 0 else (False, True):
                flags = ["--freeze"] if freeze else []
                data = client_process(
                    "statesock-websockets", server.url(), freeze_count, "asyncio", *flags
                )
                (frozen if freeze else thawed).append(data)
    finally:
        server.kill()
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
        f"{median([per_client_kib(d) for d in frozen]):.1f} KiB with freeze, "
        f"{median([per_client_kib(d) for d in thawed]):.1f} KiB without"
    )
    return [pause, opening]
