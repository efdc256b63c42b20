"""Shared pieces of the benchmarks: results, statistics, a server in another process."""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@dataclass
class Result:
    """One row of the table: a median over repeated runs, with min and max."""

    name: str
    unit: str
    ours: list[float]
    anchor: list[float] | None = None
    anchor_name: str = ""
    target: str = ""
    met: bool | None = None
    higher_is_better: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if not self.anchor:
            return None
        anchor = statistics.median(self.anchor)
        return statistics.median(self.ours) / anchor if anchor else None

    def as_dict(self) -> dict[str, Any]:
        def summary(values: list[float] | None) -> dict[str, float] | None:
            if not values:
                return None
            return {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "runs": len(values),
            }

        return {
            "name": self.name,
            "unit": self.unit,
            "statesock": summary(self.ours),
            "anchor": summary(self.anchor),
            "anchor_name": self.anchor_name,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "notes": self.notes,
            "raw": {"statesock": self.ours, "anchor": self.anchor},
        }


class ServerProcess:
    """``python -m tests.bench.server`` in a child process; ``port`` once it listens."""

    def __init__(self, mode: str = "raw", port: int = 0, count: int = 0) -> None:
        self.mode = mode
        self.requested_port = port
        self.count = count
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.ready_at = 0.0

    def start(self) -> ServerProcess:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.bench.server",
                self.mode,
                str(self.requested_port),
                str(self.count),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark server did not start")
        self.port = int(line)
        self.requested_port = self.port
        self.ready_at = time.monotonic()
        return self

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"
