"""2. Memory per client: K idle connected statesock clients vs K raw websockets connections.

Each side runs in a fresh process (RSS before and after opening K connections); the server
is a third process. Also: bytes of Python objects per ConnectionMachine (tracemalloc).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tracemalloc

from statesock.machine import ConnectionMachine
from tests.bench.common import ROOT, Result, ServerProcess


def _client_process(mode: str, url: str, count: int) -> float:
    output = subprocess.run(
        [sys.executable, "-m", "tests.bench.memory_client", mode, url, str(count)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    ).stdout
    data = json.loads(output.strip().splitlines()[-1])
    if data["connected"] != count:
        raise RuntimeError(f"{mode}: only {data['connected']} of {count} connected")
    return float(data["after"] - data["before"]) / count


def machine_bytes(count: int = 2000) -> float:
    tracemalloc.start()
    start = tracemalloc.take_snapshot()
    machines = [ConnectionMachine(time.monotonic) for _ in range(count)]
    end = tracemalloc.take_snapshot()
    tracemalloc.stop()
    total = sum(stat.size_diff for stat in end.compare_to(start, "filename"))
    del machines
    return total / count


def run(full: bool = False) -> Result:
    count, repeats = (10_000, 3) if full else (1_000, 3)
    server = ServerProcess("raw").start()
    ours: list[float] = []
    raw: list[float] = []
    try:
        for round_ in range(repeats):
            order = ["statesock", "raw"] if round_ % 2 == 0 else ["raw", "statesock"]
            for mode in order:
                per = _client_process(mode, server.url, count)
                (ours if mode == "statesock" else raw).append(per / 1024)
    finally:
        server.kill()
    result = Result(
        f"memory per client (K={count})",
        "KiB",
        ours,
        raw,
        "raw websockets connection",
        target="ratio <= 1.5",
    )
    result.met = (result.ratio or 99) <= 1.5
    result.notes.append(
        f"each client: machine + engine + ping controller + recovery handler; "
        f"ConnectionMachine alone: {machine_bytes() / 1024:.1f} KiB (tracemalloc)"
    )
    return result
