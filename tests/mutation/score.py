"""The mutation score per module, from the results ``mutmut run`` left in ``mutants/``.

Run from the project root after ``mutmut run`` (``make mutate`` does both)::

    python tests/mutation/score.py [--root mutants] [--fail-under 95] [--survivors]

A mutant counts as *killed* only when a test failed on it quickly: one that only hung (mutmut's
own timeout, a per-test timeout that ``hangs.py`` turned into mutmut's timeout code, or a
failing run that took ``--hang-seconds`` or more) is reported as a hang and never counted as a
kill.

Survivors listed in ``equivalent.txt`` beside this file are mutants that cannot change
behaviour; they are shown apart and left out of the score's denominator. An entry reads::

    <mutmut name>  `<the mutated code>`  <why no test can kill it>

mutmut numbers the mutants of a function in order, so a number goes stale whenever the
function changes. The code in backticks is what the mutant's line reads (``del <line>`` when
the mutant deletes it): an entry matches the mutant of the same function whose change reads
the same, whatever its number now (the number only decides between several such mutants).
An entry that matches no mutant, or one that tests now kill, is reported as stale.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

HANG_SECONDS = 10.0
KILLED_CODES = {1, 3}
TIMEOUT_CODES = {36, 24, -24, 152, 255}
_ENTRY = re.compile(r"^(?P<name>\S+)\s+`(?P<code>[^`]*)`\s*(?P<reason>.*)$")


@dataclass(frozen=True)
class Equivalent:
    name: str
    code: str
    reason: str

    @property
    def function(self) -> str:
        return self.name.rpartition("__mutmut_")[0]


def load_equivalents(path: Path) -> list[Equivalent]:
    entries: list[Equivalent] = []
    if not path.exists():
        return entries
    for number, raw in enumerate(path.read_text("utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = _ENTRY.match(line)
        if match is None:
            raise SystemExit(f"{path}:{number}: expected <name> `<mutated code>` <reason>")
        entries.append(Equivalent(match["name"], match["code"].strip(), match["reason"].strip()))
    return entries


def classify(code: int | None, duration: float | None, hang_seconds: float = HANG_SECONDS) -> str:
    if code is None:
        return "not checked"
    if code in KILLED_CODES:
        return "hang" if (duration or 0.0) >= hang_seconds else "killed"
    if code in TIMEOUT_CODES:
        return "hang"
    if code == 0:
        return "survived"
    if code in (5, 33):
        return "no tests"
    return "other"


def changes(mutated_source: Path, module: str) -> dict[str, str]:
    """Each mutant's change, as one line: the mutated code, or ``del <code>`` for a deletion."""
    source = mutated_source.read_text("utf-8")
    lines = source.splitlines()
    bodies: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "__mutmut_" in node.name:
            start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            body = lines[start - 1 : node.end_lineno]
            bodies[node.name] = [line.replace(node.name, "<f>") for line in body]
    found: dict[str, str] = {}
    for name, body in bodies.items():
        function, _, number = name.rpartition("__mutmut_")
        if not number.isdigit() or f"{function}__mutmut_orig" not in bodies:
            continue
        diff = list(difflib.ndiff(bodies[f"{function}__mutmut_orig"], body))
        added = [line[2:].strip() for line in diff if line.startswith("+ ")]
        removed = [line[2:].strip() for line in diff if line.startswith("- ")]
        found[f"{module}.{name}"] = " / ".join(added) if added else "del " + " / ".join(removed)
    return found


def match_equivalents(
    entries: list[Equivalent], changed: dict[str, str]
) -> tuple[dict[str, Equivalent], list[tuple[Equivalent, str]]]:
    """(mutant name -> its entry, [(entry, why it is stale)])."""
    by_function: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, code in changed.items():
        by_function[name.rpartition("__mutmut_")[0]][code].append(name)
    matched: dict[str, Equivalent] = {}
    stale: list[tuple[Equivalent, str]] = []
    for entry in entries:
        candidates = by_function.get(entry.function, {}).get(entry.code, [])
        if entry.name in candidates:
            name = entry.name
        elif len(candidates) == 1:
            name = candidates[0]
        else:
            why = "no such mutant" if not candidates else f"ambiguous: {', '.join(candidates)}"
            stale.append((entry, why))
            continue
        if name in matched:
            stale.append((entry, f"{name} is listed twice"))
            continue
        matched[name] = entry
    return matched, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("mutants"))
    parser.add_argument("--fail-under", type=float, default=0.0)
    parser.add_argument("--survivors", action="store_true", help="list every survivor")
    parser.add_argument(
        "--hang-seconds", type=float, default=HANG_SECONDS,
        help="a failing run at least this long counts as a hang, not a kill",
    )  # fmt: skip
    args = parser.parse_args(argv)
    entries = load_equivalents(Path(__file__).with_name("equivalent.txt"))

    metas = sorted(args.root.glob("statesock/**/*.py.meta"))
    if not metas:
        print(f"no mutmut results under {args.root}/ (run `mutmut run` first)", file=sys.stderr)
        return 2
    results: dict[Path, dict[str, str]] = {}
    changed: dict[str, str] = {}
    for meta in metas:
        data = json.loads(meta.read_text("utf-8"))
        durations = data.get("durations_by_key", {})
        results[meta] = {
            name: classify(code, durations.get(name), args.hang_seconds)
            for name, code in data["exit_code_by_key"].items()
        }
        source = meta.with_name(meta.name.removesuffix(".meta"))
        module = ".".join(source.relative_to(args.root).with_suffix("").parts)
        changed.update(changes(source, module))
    matched, stale = match_equivalents(entries, changed)

    worst = 100.0
    rows = []
    survivors: list[str] = []
    for meta, statuses in results.items():
        counts: Counter[str] = Counter()
        for name, found in statuses.items():
            entry = matched.get(name)
            status = "equivalent" if entry is not None and found == "survived" else found
            if entry is not None and found not in ("survived", "not checked"):
                stale.append((entry, f"{name} is {found} now"))
            counts[status] += 1
            if status in ("survived", "hang", "no tests", "not checked", "other"):
                survivors.append(f"{status:12} {name}  `{changed.get(name, '?')}`")
        total = sum(counts.values()) - counts["equivalent"]
        score = 100.0 * counts["killed"] / total if total else 100.0
        worst = min(worst, score)
        module = str(meta.relative_to(args.root / "statesock")).removesuffix(".meta")
        rows.append((module, counts, total, score))

    print(
        f"{'module':24} {'killed':>7} {'total':>6} {'score':>7}  survived  hang  equivalent  other"
    )
    for module, counts, total, score in rows:
        other = counts["no tests"] + counts["not checked"] + counts["other"]
        print(
            f"{module:24} {counts['killed']:7} {total:6} {score:6.1f}%  {counts['survived']:8}"
            f"  {counts['hang']:4}  {counts['equivalent']:10}  {other:5}"
        )
    if args.survivors and survivors:
        print("\nnot killed:")
        print("\n".join(survivors))
    mutated = {
        ".".join(m.relative_to(args.root).with_suffix("").with_suffix("").parts) for m in metas
    }
    stale = [(e, why) for e, why in stale if e.name.startswith(tuple(f"{m}." for m in mutated))]
    if stale:
        print("\nstale entries in equivalent.txt (fix or remove them):")
        for entry, why in stale:
            print(f"  {entry.name}  `{entry.code}`: {why}")
    if worst < args.fail_under:
        print(f"\nmutation score {worst:.1f}% is under {args.fail_under:g}%", file=sys.stderr)
        return 1
    return 1 if stale and args.fail_under else 0


if __name__ == "__main__":
    sys.exit(main())
