"""A pytest plugin for mutation runs: a test that failed on its per-test timeout ends the run
with mutmut's timeout code (36), so that the mutant is reported as a hang, never as killed.

Loaded by ``[tool.mutmut] pytest_add_cli_args`` (``-p tests.mutation.hangs``). A run with a
real failure as well keeps pytest's own exit code: the mutant was killed by that failure.
"""

from __future__ import annotations

from typing import Any

MUTMUT_TIMEOUT = 36
_failures: dict[str, bool] = {}  # nodeid -> whether its failure was a timeout


def pytest_sessionstart(session: Any) -> None:
    _failures.clear()


def pytest_runtest_logreport(report: Any) -> None:
    if report.failed:
        text = str(report.longrepr or "")
        _failures[report.nodeid] = "Timeout" in text and "pytest-timeout" in text


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    if _failures and all(_failures.values()):
        session.exitstatus = MUTMUT_TIMEOUT
