"""Mutation testing of the asyncio shell and the tools (``make mutate-shell``).

mutmut reads its configuration from ``[tool.mutmut]`` of the ``pyproject.toml`` in the
directory it runs in, and that section configures the pure layer (``make mutate``). This runs
mutmut in a directory of its own, ``build/mutate-shell/``: a copy of ``statesock/`` and
``tests/`` (a snapshot: editing the tree meanwhile changes nothing) and of ``pyproject.toml``
whose ``[tool.mutmut]`` is the project's with ``[tool.mutmut.shell]``'s keys put over it. Then
it prints the score per module (``score.py``; survivors with ``mutmut show`` from that
directory)::

    python tests/mutation/mutate_shell.py [--modules timers,waiters,tools/log_reader]
                                          [--max-children 2] [score.py options]

``--modules`` mutates only those modules (names as in ``only_mutate``, without ``statesock/``
and ``.py``), to try a change quickly; ``--skip-tests test_x,test_y`` leaves test files out.

``--incremental`` keeps the last run's verdicts where they still hold: it copies the tree over
the last snapshot instead of starting afresh, and mutmut (3.8+) then re-tests every mutant of a
function whose code changed; which tests reach which function is traced again; and every
survivor and every hang is tried again, since a new test may kill it, and so is every kill that
took as long as a hang. A quick kill stands (tests are only ever added to kill mutants). A full
run takes hours on 2 cores, mostly in survivors, which run every test that covers their
function; ``make mutate-shell`` is the full run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "build" / "mutate-shell"
LOG = ROOT / "build" / "mutate-shell.log"


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[\n" + "".join(f"    {toml_value(item)},\n" for item in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def shell_config(
    pyproject: str, modules: list[str] | None, skip_tests: list[str] | None = None
) -> dict[str, Any]:
    section = tomllib.loads(pyproject)["tool"]["mutmut"]
    config = {key: value for key, value in section.items() if key != "shell"}
    config.update(section["shell"])
    if skip_tests:
        skipped = {f"tests/{name.removesuffix('.py')}.py" for name in skip_tests}
        selection = config["pytest_add_cli_args_test_selection"]
        config["pytest_add_cli_args_test_selection"] = [t for t in selection if t not in skipped]
    if modules:
        wanted = {f"statesock/{module.removesuffix('.py')}.py" for module in modules}
        unknown = wanted - set(config["only_mutate"])
        if unknown:
            raise SystemExit(f"not in [tool.mutmut.shell] only_mutate: {sorted(unknown)}")
        config["only_mutate"] = [path for path in config["only_mutate"] if path in wanted]
    return config


def rewrite(pyproject: str, config: dict[str, Any]) -> str:
    """``pyproject`` with its ``[tool.mutmut]`` and ``[tool.mutmut.*]`` tables replaced."""
    body = "".join(f"{key} = {toml_value(value)}\n" for key, value in config.items())
    kept: list[str] = []
    skipping = False
    for line in pyproject.splitlines(keepends=True):
        header = re.match(r"^\[+([^\]]+)\]+\s*$", line)
        if header:
            skipping = header[1].strip() == "tool.mutmut" or header[1].startswith("tool.mutmut.")
        if not skipping:
            kept.append(line)
    return "".join(kept).rstrip("\n") + "\n\n[tool.mutmut]\n" + body


def _sync(source: Path, target: Path) -> None:
    """Make ``target`` a copy of ``source``, touching only the files that differ (mutmut
    regenerates the mutants of a source file whose copy is newer than them)."""
    wanted = {
        path.relative_to(source)
        for path in source.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    for relative in sorted(wanted):
        src, dst = source / relative, target / relative
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)  # a new mtime: mutmut sees the change
    for path in sorted(target.rglob("*"), reverse=True):
        stale = path.is_file() and "__pycache__" not in path.parts
        if stale and path.relative_to(target) not in wanted:
            path.unlink()


def _retry_undecided(mutants: Path, modules: list[str]) -> int:
    """Forget the verdict of every survivor, hang and untested mutant, and of every kill
    that took HANG_SECONDS or more (a test that failed under load, not because of the
    mutant, or a hang a test swallowed), so that mutmut tries them again with the tests as
    they are now."""
    retried = 0
    for module in modules:  # only what this run mutates: the others keep their verdicts
        meta = mutants / f"{module}.meta"
        if not meta.exists():
            continue
        data = json.loads(meta.read_text("utf-8"))
        codes, durations = data["exit_code_by_key"], data.get("durations_by_key", {})
        for name, code in codes.items():
            slow = (durations.get(name) or 0.0) >= HANG_SECONDS
            if code == 0 or code in _HUNG or code in _UNTESTED or (code is not None and slow):
                codes[name] = None
                retried += 1
        meta.write_text(json.dumps(data, indent=4), "utf-8")
    return retried


_HUNG = {36, 24, -24, 152, 255}  # score.py's TIMEOUT_CODES
# A run that failed only after this long is a hang, not a kill: the per-test timeout
# (pytest_add_cli_args' --timeout) is as long, and a real kill fails at its first failing test,
# the fastest tests first (the slowest of this tree's kills took 12 s).
HANG_SECONDS = 20
_UNTESTED = {5, 33}  # no test reached the function: the new trace may find some


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=lambda text: text.split(","), default=None)
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--incremental", action="store_true", help="keep what still holds")
    parser.add_argument(
        "--skip-tests", type=lambda text: text.split(","), default=None,
        help="leave these test files (test_x,test_y) out of the selection",
    )  # fmt: skip
    args, score_args = parser.parse_known_args(argv)
    if args.incremental and args.modules:
        # mutmut rewrites the copies of the modules it does not mutate without their mutants,
        # so the next run would find no test for them: a limited run starts afresh.
        parser.error("--incremental and --modules do not go together: pick one")

    pyproject = (ROOT / "pyproject.toml").read_text("utf-8")
    config = shell_config(pyproject, args.modules, args.skip_tests)
    incremental = args.incremental and (WORK / "mutants").is_dir()
    if not incremental:
        shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for tree in ("statesock", "tests"):
        if incremental:
            _sync(ROOT / tree, WORK / tree)
        else:
            shutil.copytree(ROOT / tree, WORK / tree, ignore=ignore)
    for extra in config.get("also_copy", []):  # what the tests read beside the package
        source = ROOT / extra
        if source.is_dir():
            shutil.copytree(source, WORK / extra, ignore=ignore, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy2(source, WORK / extra)
    configured = rewrite(pyproject, config)
    target = WORK / "pyproject.toml"
    if not target.exists() or target.read_text("utf-8") != configured:
        target.write_text(configured, "utf-8")
    if incremental:
        retried = _retry_undecided(WORK / "mutants", config["only_mutate"])
        print(f"incremental: {retried} survivors and hangs to try again")
        # Which tests reach which function is traced again, for every test: mutmut traces
        # only new tests otherwise, so a moved or changed function would keep old callers.
        (WORK / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)

    mutmut = Path(sys.executable).with_name("mutmut")
    started = time.monotonic()
    with LOG.open("w", encoding="utf-8") as log:
        run = subprocess.run(
            [str(mutmut), "run", "--max-children", str(args.max_children)],
            cwd=WORK, stdout=log, stderr=subprocess.STDOUT, check=False,
        )  # fmt: skip
    spent = time.monotonic() - started
    if run.returncode != 0:
        print(LOG.read_text("utf-8", errors="replace")[-2000:], file=sys.stderr)
        print(f"mutmut failed (exit {run.returncode}); the log is {LOG}", file=sys.stderr)
        return 1
    show = os.path.relpath(mutmut, WORK)
    print(
        f"mutmut: {spent / 60:.1f} min; a survivor: "
        f"(cd {WORK.relative_to(ROOT)} && {show} show NAME)"
    )
    score = Path(__file__).with_name("score.py")
    # A kill must come from a failing test, not from the whole run dragging on: a run that
    # failed only after this long counts as a hang (a test's own timeout is one already).
    hang = [] if "--hang-seconds" in score_args else ["--hang-seconds", str(HANG_SECONDS)]
    return subprocess.run(
        [sys.executable, str(score), "--root", str(WORK / "mutants"), *hang, *score_args],
        cwd=ROOT, check=False,
    ).returncode  # fmt: skip


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
