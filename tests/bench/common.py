"""Shared pieces of the benchmarks: results, statistics, a server in another process.

Two kinds of table row: :class:`Result` (statesock against one anchor) and
:class:`Comparison` (one figure on one event loop for the five clients of
``tests.bench.clients``, with the three ratios of issue 17's targets).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from statesock import WebSocketClient

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


# Above this share of one core the server may be what a run measured: the row is flagged.
SERVER_CPU_LIMIT = 0.7
# A URL's ?query, or a keep-alive long enough never to fire inside a throughput run.
QUIET_PING = 3600.0


def make_client(
    url: str, decoder: Callable[[str | bytes], Any] = json.loads, **options: Any
) -> WebSocketClient:
    """A statesock client through the public constructor, configured like the raw anchor.

    JSON decoding, no ack step, no compression and no proxy look-up (the raw websockets
    anchor gets ``compression=None, proxy=None``); protocol Ping frames for health checks.
    """
    settings: dict[str, Any] = {
        "ack_required": False,
        "ping_request_builder": None,
        "ping_interval": QUIET_PING,
        "compression": False,
        "proxy": False,
    }
    settings.update(options)
    return WebSocketClient(url, decoder, **settings)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(values: list[float] | None) -> dict[str, float] | None:
    """Median, min, max and number of runs, as the JSON results hold every figure."""
    if not values:
        return None
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }


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
    # The server's CPU share of one core during each run (both sides); > 50 % is flagged.
    server_cpu: list[float] = field(default_factory=list)
    # Structured figures beyond one number per run (the storm's percentiles, say).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def server_flagged(self) -> bool:
        return bool(self.server_cpu) and max(self.server_cpu) > SERVER_CPU_LIMIT

    def check(self, limit: float) -> None:
        """Set ``met`` from the ratio and a target ``ratio <= limit``."""
        self.target = f"<= {limit:g}"
        ratio = self.ratio
        self.met = ratio is not None and ratio <= limit

    @property
    def ratio(self) -> float | None:
        if not self.anchor:
            return None
        anchor = statistics.median(self.anchor)
        return statistics.median(self.ours) / anchor if anchor else None

    def as_dict(self) -> dict[str, Any]:
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
            "server_cpu": summary(self.server_cpu),
            "server_flagged": self.server_flagged,
            "extra": self.extra,
            "raw": {"statesock": self.ours, "anchor": self.anchor},
        }


# The five clients of a Comparison, in column order (tests.bench.clients makes them).
CLIENTS = ("statesock-websockets", "statesock-picows", "raw-websockets", "raw-picows", "aiohttp")
# The ratios issue 17's targets are written in, in column order: (numerator, denominator).
RATIOS = (
    ("statesock-websockets", "raw-websockets"),
    ("statesock-picows", "raw-websockets"),
    ("statesock-picows", "raw-picows"),
)


@dataclass
class Comparison:
    """One figure on one event loop: each client's runs, the server's CPU, three ratios.

    ``sides`` maps each of :data:`CLIENTS` to its per-round figures (lower is better);
    ``limits`` holds the target of each of :data:`RATIOS` (None: no target, the ratio is
    shown for information). A ratio is a median over a median, both from the same run.
    """

    name: str
    loop: str
    unit: str
    sides: dict[str, list[float]]
    limits: tuple[float | None, float | None, float | None] = (None, None, None)
    server_cpu: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    figure: str = ""  # a short key for the figure, the same on every loop

    @property
    def server_flagged(self) -> bool:
        return bool(self.server_cpu) and max(self.server_cpu) > SERVER_CPU_LIMIT

    def ratio(self, index: int) -> float | None:
        top, bottom = RATIOS[index]
        ours, anchor = self.sides.get(top), self.sides.get(bottom)
        if not ours or not anchor:
            return None
        denominator = statistics.median(anchor)
        return statistics.median(ours) / denominator if denominator else None

    def met(self, index: int) -> bool | None:
        limit, ratio = self.limits[index], self.ratio(index)
        if limit is None:
            return None
        return ratio is not None and ratio <= limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "figure": self.figure,
            "name": self.name,
            "loop": self.loop,
            "unit": self.unit,
            "clients": {name: summary(self.sides.get(name)) for name in CLIENTS},
            "ratios": [
                {
                    "of": top,
                    "to": bottom,
                    "ratio": self.ratio(index),
                    "target": self.limits[index],
                    "met": self.met(index),
                }
                for index, (top, bottom) in enumerate(RATIOS)
            ],
            "server_cpu": summary(self.server_cpu),
            "server_flagged": self.server_flagged,
            "notes": self.notes,
            "raw": {name: self.sides.get(name) for name in CLIENTS},
        }


class ServerProcess:
    """``python -m tests.bench.server`` in a child process, driven over its stdin/stdout.

    ``start()`` returns once it listens (``port``, ``ready_at``: its monotonic time then);
    with ``defer=True`` it is started but binds only on ``listen()``, so a replacement can be
    ready before the old server is killed and an outage lasts exactly as long as asked.
    """

    def __init__(self, port: int = 0) -> None:
        self.requested_port = port
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.ready_at = 0.0

    def start(self, defer: bool = False) -> ServerProcess:
        arguments = [str(self.requested_port)] + (["--defer"] if defer else [])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.bench.server", *arguments],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        first = self._line()
        if first != "deferred":
            self._listening(first)
        return self

    def listen(self) -> None:
        """Bind now (a server started with ``defer=True``)."""
        self._send("listen")
        self._listening(self._line())

    def _listening(self, line: str) -> None:
        data = json.loads(line)
        self.port = self.requested_port = int(data["port"])
        self.ready_at = float(data["at"])

    def _send(self, command: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def _line(self) -> str:
        assert self.process is not None and self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the benchmark server exited")
        return line.strip()

    def command(self, command: str) -> Any:
        """One stdin command (``cpu``, ``arrivals``, ``pings``) and its JSON answer."""
        self._send(command)
        return json.loads(self._line())

    def cpu(self) -> tuple[float, float]:
        """(process CPU seconds, monotonic seconds) as the server measures them."""
        answer = self.command("cpu")
        return float(answer["cpu"]), float(answer["at"])

    def crash(self) -> None:
        """SIGKILL without waiting for the exit (``kill()`` later reaps it)."""
        if self.process is not None:
            self.process.kill()

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            for pipe in (self.process.stdin, self.process.stdout):
                if pipe is not None:
                    pipe.close()
            self.process = None

    def url(self, path: str = "hold") -> str:
        return f"ws://127.0.0.1:{self.port}/{path}"


def cpu_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """The server's CPU over a span, as a share of one core's wall time."""
    wall = after[1] - before[1]
    return (after[0] - before[0]) / wall if wall > 0 else 0.0
