"""``make soak``: millions of seeded random inputs through the connection core.

Runs tests/core_world.py's random walks (every invariant checked after every input) until
``--steps`` inputs have been fed, and prints how many walks, inputs and simulated hours that
was. A failure prints the seed, which ``random_walk(seed, steps)`` replays exactly.
"""

from __future__ import annotations

import argparse
import time

from tests.core_world import random_walk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=2_000_000, help="inputs to feed in all")
    parser.add_argument("--walk", type=int, default=5_000, help="inputs per walk")
    parser.add_argument("--seed", type=int, default=1_000, help="first seed")
    args = parser.parse_args()
    started = time.perf_counter()
    total = walks = 0
    simulated = 0.0
    seed = args.seed
    while total < args.steps:
        try:
            world = random_walk(seed, args.walk)
        except AssertionError:
            print(
                f"invariant broken in the walk with seed {seed}: random_walk({seed}, {args.walk})"
            )
            raise
        total += world.steps
        simulated += world.now
        walks += 1
        seed += 1
    elapsed = time.perf_counter() - started
    print(
        f"{walks} walks, {total:,} core inputs, {simulated / 3600:,.0f} simulated hours, "
        f"{elapsed:.1f} s ({total / elapsed:,.0f} inputs/s): every invariant held"
    )


if __name__ == "__main__":
    main()
