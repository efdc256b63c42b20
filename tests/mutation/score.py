"""The mutation score per module, from the results ``mutmut run`` left in ``mutants/``.

Run from the project root after ``mutmut run`` (``make mutate`` does both)::

    python tests/mutation/score.py [--fail-under 95] [--survivors]

A mutant counts as *killed* only when a test failed on it quickly: one that only hung (mutmut's
own timeout, or a test failing after ``HANG_SECONDS``, the per-test timeout's territory) is
reported as a hang and never counted as a kill. Survivors listed in ``equivalent.txt`` beside
this file (``mutant-name  reason``) are mutants that cannot change behaviour; they are shown
with their reason and left out of the score's denominator.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

HANG_SECONDS = 10.0
KILLED_CODES = {1, 3}
TIMEOUT_CODES = {36, 24, -24, 152, 255}


def load_equivalents(path: Path) -> dict[str, str]:
    equivalents: dict[str, str] = {}
    if not path.exists():
        return equivalents
    for raw in path.read_text("utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        equivalents[name] = reason.strip()
    return equivalents


def classify(code: int | None, duration: float | None) -> str:
    if code is None:
        return "not checked"
    if code in KILLED_CODES:
        return "hang" if (duration or 0.0) >= HANG_SECONDS else "killed"
    if code in TIMEOUT_CODES:
        return "hang"
    if code == 0:
        return "survived"
    if code in (5, 33):
        return "no tests"
    return "other"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("mutants"))
    parser.add_argument("--fail-under", type=float, default=0.0)
    parser.add_argument("--survivors", action="store_true", help="list every survivor")
    args = parser.parse_args(argv)
    equivalents = load_equivalents(Path(__file__).with_name("equivalent.txt"))

    metas = sorted(args.root.glob("statesock/*.py.meta"))
    if not metas:
        print(f"no mutmut results under {args.root}/ (run `mutmut run` first)", file=sys.stderr)
        return 2
    worst = 100.0
    rows = []
    survivors: list[str] = []
    for meta in metas:
        data = json.loads(meta.read_text("utf-8"))
        durations = data.get("durations_by_key", {})
        counts: Counter[str] = Counter()
        for name, code in data["exit_code_by_key"].items():
            status = classify(code, durations.get(name))
            if status == "survived" and name in equivalents:
                status = "equivalent"
            counts[status] += 1
            if status in ("survived", "hang", "no tests", "not checked", "other"):
                survivors.append(f"{status:12} {name}")
        total = sum(counts.values()) - counts["equivalent"]
        score = 100.0 * counts["killed"] / total if total else 100.0
        worst = min(worst, score)
        module = meta.name.removesuffix(".meta")
        rows.append((module, counts, total, score))

    print(
        f"{'module':14} {'killed':>7} {'total':>6} {'score':>7}  survived  hang  equivalent  other"
    )
    for module, counts, total, score in rows:
        other = counts["no tests"] + counts["not checked"] + counts["other"]
        print(
            f"{module:14} {counts['killed']:7} {total:6} {score:6.1f}%  {counts['survived']:8}"
            f"  {counts['hang']:4}  {counts['equivalent']:10}  {other:5}"
        )
    if args.survivors and survivors:
        print("\nnot killed:")
        print("\n".join(survivors))
    if worst < args.fail_under:
        print(f"\nmutation score {worst:.1f}% is under {args.fail_under:g}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
