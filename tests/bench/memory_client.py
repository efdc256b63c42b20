"""The client side of the memory figures, run in its own process.

``python -m tests.bench.memory_client KIND URL K [--loop asyncio|uvloop] [--freeze]`` opens K
idle connections of one client kind (``tests.bench.clients``: ``statesock-websockets``,
``statesock-picows``, ``raw-websockets``, ``raw-picows``, ``aiohttp``), each with a keep-alive
every 25 s as an idle app would have (statesock's health check, websockets' keepalive,
picows's auto-ping, aiohttp's heartbeat); statesock clients also carry a recovery handler,
raw websockets and aiohttp connections their reading task. It prints, as JSON: RSS before and
after, the CPU spent opening them, how long a full ``gc.collect()`` then takes, and how many
objects the collector tracks per client.

``--freeze`` calls ``gc.freeze()`` after each batch of opened clients (the advice being
measured: the long-lived objects of open clients leave the collector's generations, so later
full collections do not walk them).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from typing import Any

import structlog

from tests.bench.clients import LOOPS, Keepalive, client, run_on
from tests.bench.common import CLIENTS, raise_fd_limit, rss_bytes

BATCH = 200
IDLE_KEEPALIVE = Keepalive(25.0)


def full_collection_ms(repeats: int = 3) -> float:
    """The shortest of ``repeats`` full collections, in milliseconds."""
    pauses = []
    for _ in range(repeats):
        started = time.perf_counter()
        gc.collect()
        pauses.append(time.perf_counter() - started)
    return min(pauses) * 1000


async def main(kind: str, url: str, count: int, freeze: bool) -> dict[str, Any]:
    raise_fd_limit()
    # Transition logging is the app's choice; measure the connection, not a log sink.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    fleet = client(kind).fleet(url, IDLE_KEEPALIVE, recovery=True)
    await fleet.setup()  # shared by every connection (an aiohttp session), not per client
    gc.collect()
    await asyncio.sleep(0.1)
    before = rss_bytes()
    objects = len(gc.get_objects())
    collections = gc.get_stats()[2]["collections"]
    cpu = time.process_time()
    for start in range(0, count, BATCH):
        await fleet.open(min(BATCH, count - start), batch=BATCH)
        if freeze:
            gc.freeze()
    open_cpu = time.process_time() - cpu
    full_collections = gc.get_stats()[2]["collections"] - collections
    gc.collect()
    await asyncio.sleep(0.5)
    after = rss_bytes()
    return {
        "kind": kind,
        "before": before,
        "after": after,
        "count": count,
        "connected": fleet.connected(),
        "open_cpu": open_cpu,
        "full_collections": full_collections,
        "gc_pause_ms": full_collection_ms(),
        "tracked_objects": len(gc.get_objects()) - objects,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m tests.bench.memory_client")
    parser.add_argument("kind", choices=CLIENTS)
    parser.add_argument("url")
    parser.add_argument("count", type=int)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument("--freeze", action="store_true")
    args = parser.parse_args()
    result = run_on(args.loop, main(args.kind, args.url, args.count, args.freeze))
    result["loop"] = args.loop
    print(json.dumps(result), flush=True)
    # Exit without closing thousands of sockets one by one: the process is done.
    sys.stdout.flush()
    os._exit(0)
