"""Plant each of issue 9's named bugs in a scratch copy and check that a test kills it.

Usage (from the project root)::

    python tests/mutation/planted.py [NAME ...]

For every planted bug the package, the tests and pyproject.toml are copied to a temporary
directory, one exact text replacement is applied there (never to the working tree), and
the named test files run against the copy. A bug is *killed* when at least one test fails
quickly; the failing tests are printed. The script exits 1 if any bug survives (or if a
replacement no longer matches the source, so the plant list cannot rot silently).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[2]
# Per-test timeout: a planted bug that only makes a test hang does not count as killed.
HANG_SECONDS = int(os.environ.get("PLANT_TIMEOUT", "30"))


@dataclass(frozen=True)
class Plant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]


CORE_TESTS = ("tests/test_core.py",)
PLANTS = [
    Plant(
        "flapping guard ignored",
        "statesock/core.py",
        "if connected_at is not None and record.at - connected_at >= recovery.config.stable_after:",
        "if connected_at is not None:",
        CORE_TESTS,
    ),
    Plant(
        "backoff timer not cancelled on user disconnect",
        "statesock/core.py",
        """            self._recovery.retry_in = None
        self._cancel_timer(TimerKind.RECONNECT)
        self._fail_connect_waiters(source, keep_if_retrying=False)""",
        """            self._recovery.retry_in = None
        self._fail_connect_waiters(source, keep_if_retrying=False)""",
        CORE_TESTS,
    ),
    Plant(
        "reconnect scheduled while offline",
        "statesock/core.py",
        "        if not self._system_cause_gone():\n            self._log(",
        "        if False:\n            self._log(",
        CORE_TESTS,
    ),
    Plant(
        "user connect does not reset the attempt count",
        "statesock/core.py",
        "recovery.attempt = 0\n                    recovery.token_retry_used = False",
        "recovery.token_retry_used = False",
        CORE_TESTS,
    ),
    Plant(
        "pong from an older socket accepted",
        "statesock/core.py",
        'if self._stale("health answer", event.socket):',
        "if False:",
        CORE_TESTS,
    ),
    Plant(
        "ping cadence drifts with the timer's lateness",
        "statesock/core.py",
        "self._next_check_at = due",
        "self._next_check_at = self._now + interval",
        CORE_TESTS,
    ),
    Plant(
        "ping cadence restarts from each pong (drifts with the round trip)",
        "statesock/core.py",
        "self._arm_health_check()  # for the next check",
        "self._next_check_at = self._now + (self.config.ping_interval or 0.0)\n"
        "            self._arm_health_check()  # for the next check",
        CORE_TESTS,
    ),
    Plant(
        "close reason not truncated in the CloseSocket effect",
        "statesock/core.py",
        "reason = truncate_close_reason(record.source.close_reason)",
        "reason = record.source.close_reason",
        CORE_TESTS,
    ),
    Plant(
        "close reason cut at 125 bytes, mid-character",
        "statesock/core_io.py",
        '.decode("utf-8", "ignore")',
        '[:125].decode("utf-8", "replace")',
        CORE_TESTS,
    ),
    Plant(
        "listeners called out of registration order",
        "statesock/shell.py",
        "for listener in self._listeners:",
        "for listener in reversed(self._listeners):",
        ("tests/test_client.py",),
    ),
    Plant(
        "jitter removed from the paced phase of the default strategy",
        "statesock/retry.py",
        "            return self.rng.uniform(self.low, self.high)",
        "            return (self.low + self.high) / 2",
        ("tests/test_retry.py", "tests/test_retry_kills.py"),
    ),
    Plant(
        "jitter removed from the default strategy's first retry",
        "statesock/retry.py",
        "        if self.rng.random() * mean < low:",
        "        return low\n        if self.rng.random() * mean < low:",
        ("tests/test_retry.py", "tests/test_retry_kills.py"),
    ),
    Plant(
        "jitter removed from the default strategy's backoff phase",
        "statesock/retry.py",
        "        return self.rng.uniform(ceiling / 2, ceiling)",
        "        return ceiling * 0.75",
        ("tests/test_retry.py", "tests/test_retry_kills.py"),
    ),
    Plant(
        "jitter removed from ExponentialBackoff",
        "statesock/retry.py",
        "delay = delay / 2 + self.rng.uniform(0, delay / 2)",
        "delay = delay * 0.75",
        ("tests/test_retry.py", "tests/test_retry_kills.py"),
    ),
    Plant(
        "logs --check accepts a self-loop (internal records skip the edge check)",
        "statesock/tools/log_analysis.py",
        "if record.edge not in self.legal:",
        "if record.edge not in self.legal and not record.internal:",
        ("tests/test_log_reader.py", "tests/test_cli.py"),
    ),
    Plant(
        "logs --check accepts a self-loop (no-op rules counted as edges)",
        "statesock/tools/diagram.py",
        "        if rule.outcome is Outcome.NOOP:\n            continue\n",
        "",
        ("tests/test_log_reader.py", "tests/test_cli.py", "tests/test_diagram.py"),
    ),
    # -- the asyncio shell (issue 18, item 9) --
    Plant(
        "wait_done() resolves between recovery attempts",
        "statesock/client.py",
        "        if self._core.done:\n            return self._core.final_source\n        waiter",
        "        if self._core.done or self._core.state.value == 'disconnected':\n"
        "            return self._core.final_source\n        waiter",
        ("tests/test_lifecycle.py",),
    ),
    Plant(
        "a failed connect resolves the done-waiters",
        "statesock/shell.py",
        "            self._waiters.settle(waiter, snapshot, error)\n",
        "            self._waiters.settle(waiter, snapshot, error)\n"
        "        for done in self._done_waiters:\n"
        "            if error is not None and not done.done():\n"
        "                done.set_result(effect.source)\n",
        ("tests/test_lifecycle.py",),
    ),
    Plant(
        "a socket cancelled before its first step never reports its close",
        "statesock/websockets_engine.py",
        "        if not self._reported:\n            error = None if self._asked",
        "        if False:\n            error = None if self._asked",
        ("tests/test_engine.py",),
    ),
    Plant(
        "a close reported twice",
        "statesock/websockets_engine.py",
        "            self._reported = True\n            self._listener.socket_closed(",
        "            self._listener.socket_closed(",
        ("tests/test_engine.py",),
    ),
    Plant(
        "picows: a socket cancelled before its first step never reports its close",
        "statesock/picows_engine.py",
        "        if not self._reported:\n            error = None if self._asked",
        "        if False:\n            error = None if self._asked",
        ("tests/test_engine.py",),
    ),
    Plant(
        "picows: a close reported twice",
        "statesock/picows_engine.py",
        "            self._reported = True\n            self._listener.socket_closed(",
        "            self._listener.socket_closed(",
        ("tests/test_engine.py",),
    ),
    Plant(
        "a timer kind started again leaves the old handle live",
        "statesock/timers.py",
        "        self.cancel(kind)\n        # Each entry knows its schedule",
        "        # Each entry knows its schedule",
        ("tests/test_timers.py",),
    ),
    Plant(
        "a timer kind started again forgets the old handle without cancelling it",
        "statesock/timers.py",
        "        self.cancel(kind)\n        # Each entry knows its schedule",
        "        self._entries.pop(kind, None)\n        # Each entry knows its schedule",
        ("tests/test_timers.py",),
    ),
    Plant(
        "Waiters never removes finished futures",
        "statesock/waiters.py",
        "            futures.pop(number, None)\n",
        "            pass\n",
        ("tests/test_waiters.py",),
    ),
    Plant(
        "recovery ignores the network monitor's status at attach",
        "statesock/recovery.py",
        "network_available=bool(available)",
        "network_available=True",
        ("tests/test_recovery.py",),
    ),
]


def run(plant: Plant, scratch: Path) -> tuple[str, list[str], float]:
    copy = scratch / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir()
    for item in ("statesock", "tests", "pyproject.toml"):
        source = ROOT / item
        if source.is_dir():
            shutil.copytree(source, copy / item, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, copy / item)
    target = copy / plant.path
    text = target.read_text("utf-8")
    if text.count(plant.old) != 1:
        return "stale", [f"the text to replace occurs {text.count(plant.old)} times"], 0.0
    target.write_text(text.replace(plant.old, plant.new), "utf-8")
    tests = [t for t in plant.tests if (copy / t).exists()]
    report = scratch / "report.xml"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "--timeout",
         str(HANG_SECONDS), f"--junitxml={report}", *tests],
        cwd=copy, capture_output=True, text=True, check=False,
    )  # fmt: skip
    spent = time.monotonic() - started
    if result.returncode == 0:
        return "SURVIVED", [], spent
    failed: list[str] = []
    hung: list[str] = []
    for case in ElementTree.parse(report).iter("testcase"):
        for problem in [*case.iter("failure"), *case.iter("error")]:
            name = f"{case.get('classname')}::{case.get('name')}"
            message = problem.get("message") or ""
            (hung if "Timeout" in message else failed).append(name)
    if failed:
        return "killed", failed, spent
    return "hang", hung, spent


def main(argv: list[str]) -> int:
    chosen = [p for p in PLANTS if not argv or any(a in p.name for a in argv)]
    bad = 0
    with tempfile.TemporaryDirectory(prefix="statesock-plant-") as scratch:
        for plant in chosen:
            status, failed, spent = run(plant, Path(scratch))
            bad += status != "killed"
            print(f"{status:8} {spent:5.1f}s  {plant.name}")
            for test in failed[:4]:
                print(f"             {test[:150]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
