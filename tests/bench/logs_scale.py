"""The log tools at fleet scale: a generated 100 MB transition log through ``statesock logs
--check``, the timeline, ``--json`` and ``statesock report``, each in a fresh process.

``python -m tests.bench.logs_scale [--mb 100] [--clients 1000] [--keep DIR]`` prints wall time,
CPU time (user + system, which the load of a shared machine inflates less) and peak RSS
(ru_maxrss of the child) per command. Targets (issue 12): under 10 s and under
100 MB each for --check and the timeline on 2 cores; the report is measured the same way.
The log is legal (``--check`` passes): 1,000 clients, restarts appended as new runs, mostly
pongs (as a real log is), server closes, no-pong drops and scheduled reconnects.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from tests.bench.common import ROOT

TARGET_SECONDS = 10.0
TARGET_RSS_MB = 100.0
NL = chr(10)

_RUNNER = """
import resource, runpy, sys
sys.argv = ["statesock", *sys.argv[1:]]
try:
    runpy.run_module("statesock", run_name="__main__")
finally:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    sys.stderr.write(f"\\nPEAK_RSS_KB {usage.ru_maxrss} CPU_S {cpu}\\n")
"""


def _line(fields: dict[str, object], wall: float) -> str:
    stamp = datetime.fromtimestamp(wall, UTC).isoformat().replace("+00:00", "Z")
    return json.dumps({**fields, "event": "transition", "level": "info", "timestamp": stamp})


def generate(path: Path, megabytes: float, clients: int, seed: int = 7) -> int:
    """Write a legal log of about ``megabytes`` MB; returns the number of lines."""
    rng = random.Random(seed)
    limit = int(megabytes * 1_000_000)
    written = lines = 0
    start = 1_796_000_000.0
    state = {c: ("initialized", 0, 0.0, 0.0, f"r{c}-0", 0) for c in range(clients)}
    with path.open("w", encoding="utf-8") as out:
        while written < limit:
            chunk = []
            for client in range(clients):
                src, seq, at, entered, run, restarts = state[client]
                name = f"feed-{client:04d}"
                at += rng.uniform(0.5, 30.0)
                base = {"client": name, "run": run, "internal": False, "source": None}
                base.update(code=None, detail="", at=round(at, 6), ts=round(start + at, 6))
                spent = round((at - entered) * 1000, 3)
                roll = rng.random()
                steps: list[tuple[str, str, bool, str | None, int | None, str]]
                if src == "connected" and roll < 0.9:
                    steps = [("connected", "pong", True, None, None, "round trip 3.1 ms")]
                elif src == "connected" and roll < 0.95:
                    steps = [("disconnected", "closed", False, "server", 1011, "overloaded")]
                elif src == "connected":
                    steps = [
                        ("disconnecting", "disconnect", False, "no_pong", None, "no pong"),
                        ("disconnected", "closed", False, "no_pong", None, "no pong"),
                    ]
                elif src == "disconnected" and roll < 0.01:
                    restarts += 1  # the process restarts: a new run appended to the file
                    src, seq, run = "initialized", 0, f"r{client}-{restarts}"
                    base["run"] = run
                    steps = [("connecting", "connect", False, None, None, "user connect")]
                elif src in ("initialized", "disconnected"):
                    detail = "user connect" if src == "initialized" else "reconnect"
                    steps = [("connecting", "connect", False, None, None, detail)]
                else:  # connecting, authenticating
                    nxt = "authenticating" if src == "connecting" else "connected"
                    trigger = "opened" if src == "connecting" else "authenticated"
                    steps = [(nxt, trigger, False, None, None, "")]
                for dst, trigger, internal, source, code, detail in steps:
                    seq += 1
                    fields = dict(base, seq=seq, src=src, dst=dst, trigger=trigger)
                    fields.update(internal=internal, source=source, code=code, detail=detail)
                    fields["in_state_ms"] = spent
                    chunk.append(_line(fields, start + at))
                    if dst == "disconnected":
                        note = {
                            "event": "reconnect_scheduled",
                            "client": name,
                            "retry_in": round(rng.uniform(0.1, 25.0), 6),
                            "attempt": 1,
                            "source": source,
                            "code": code,
                            "level": "info",
                        }
                        chunk.append(json.dumps(note))
                    if not internal:
                        src, entered = dst, at
                    spent = 0.0
                state[client] = (src, seq, at, entered, run, restarts)
            text = "\n".join(chunk) + "\n"
            out.write(text)
            written += len(text)
            lines += len(chunk)
    return lines


def measure(args: list[str]) -> tuple[float, float, float, int, str]:
    """Run ``statesock ARGS`` in a fresh process: wall s, CPU s, peak RSS MB, exit, tail."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        check=False,
    )
    elapsed = time.perf_counter() - started
    peak = cpu = 0.0
    for line in result.stderr.splitlines():
        if line.startswith("PEAK_RSS_KB "):
            _, kb, _, seconds = line.split()
            peak, cpu = int(kb) / 1024, float(seconds)
    tail = NL.join(line for line in result.stderr.splitlines()[-3:] if "PEAK" not in line)
    return elapsed, cpu, peak, result.returncode, tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.logs_scale")
    parser.add_argument("--mb", type=float, default=100.0, help="size of the generated log")
    parser.add_argument("--clients", type=int, default=1000, help="clients in the log")
    parser.add_argument("--keep", help="write the log and the report into DIR and keep them")
    parser.add_argument(
        "--only", help="comma-separated: check, timeline, json, report (default: all)"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        log = folder / "fleet.jsonl"
        started = time.perf_counter()
        lines = generate(log, args.mb, args.clients)
        size = log.stat().st_size / 1e6
        print(
            f"generated {log} ({size:.1f} MB, {lines} lines, {args.clients} clients) "
            f"in {time.perf_counter() - started:.1f} s"
        )
        print(f"load average before: {os.getloadavg()}")
        commands = {
            "logs --check": ["logs", "--check", str(log)],
            "logs (timeline)": ["logs", str(log)],
            "logs --json": ["logs", "--json", str(log)],
            "report": ["report", str(log), "-o", str(folder / "fleet.html")],
        }
        if args.only:
            keys = {"check": "logs --check", "timeline": "logs (timeline)"}
            keys.update(json="logs --json", report="report")
            wanted = {keys[name.strip()] for name in args.only.split(",")}
            commands = {k: v for k, v in commands.items() if k in wanted}
        failed = False
        print(f"{'command':<18} {'wall s':>8} {'CPU s':>8} {'peak RSS MB':>12}  "
              f"met (<{TARGET_SECONDS:.0f} s wall, <{TARGET_RSS_MB:.0f} MB)")  # fmt: skip
        for name, command in commands.items():
            seconds, cpu, peak, code, tail = measure(command)
            met = seconds < TARGET_SECONDS and peak < TARGET_RSS_MB
            print(f"{name:<18} {seconds:>8.2f} {cpu:>8.2f} {peak:>12.1f}  {'yes' if met else 'NO'}")
            if code != 0:
                print(f"  exit {code}: {tail}")
                failed = True
        html = folder / "fleet.html"
        if html.exists():
            print(f"report size: {html.stat().st_size / 1e6:.1f} MB")
        print(f"load average after: {os.getloadavg()}  ({os.cpu_count()} cores)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
