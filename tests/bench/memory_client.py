"""The client side of the memory benchmark, run in its own process.

``python -m tests.bench.memory_client MODE URL K [--freeze]`` opens K idle connections (MODE
``statesock``: WebSocketClient with its health checks and a recovery handler; ``raw``:
websockets connections each with a reading task) and prints, as JSON: RSS before and after,
the CPU spent opening them, and how long a full ``gc.collect()`` then takes. ``--freeze``
calls ``gc.freeze()`` after each batch of opened clients (the advice being measured: the
long-lived objects of open clients leave the collector's generations, so later full
collections do not walk them).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
import time
from typing import Any

import structlog
from websockets.asyncio.client import ClientConnection, connect

from statesock.recovery import ConnectionRecoveryHandler
from tests.bench.common import make_client, raise_fd_limit, rss_bytes

BATCH = 200


async def _read(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


def full_collection_ms(repeats: int = 3) -> float:
    """The shortest of ``repeats`` full collections, in milliseconds."""
    pauses = []
    for _ in range(repeats):
        started = time.perf_counter()
        gc.collect()
        pauses.append(time.perf_counter() - started)
    return min(pauses) * 1000


async def main(mode: str, url: str, count: int, freeze: bool) -> dict[str, Any]:
    raise_fd_limit()
    # Transition logging is the app's choice; measure the connection, not a log sink.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    keep: list[Any] = []
    gc.collect()
    await asyncio.sleep(0.1)
    before = rss_bytes()
    objects = len(gc.get_objects())
    collections = gc.get_stats()[2]["collections"]
    cpu = time.process_time()
    for start in range(0, count, BATCH):
        size = min(BATCH, count - start)
        if mode == "statesock":
            clients = [make_client(url, ping_interval=25.0) for _ in range(size)]
            handlers = [ConnectionRecoveryHandler(c) for c in clients]
            await asyncio.gather(*(c.connect() for c in clients))
            keep.extend(zip(clients, handlers, strict=True))
        else:
            sockets = await asyncio.gather(
                *(connect(url, compression=None, proxy=None) for _ in range(size))
            )
            tasks = [asyncio.ensure_future(_read(ws)) for ws in sockets]
            keep.extend(zip(sockets, tasks, strict=True))
        if freeze:
            gc.freeze()
    open_cpu = time.process_time() - cpu
    full_collections = gc.get_stats()[2]["collections"] - collections
    gc.collect()
    await asyncio.sleep(0.5)
    after = rss_bytes()
    connected = len(keep)
    if mode == "statesock":
        connected = sum(1 for c, _ in keep if c.state.state.value == "connected")
    return {
        "before": before,
        "after": after,
        "count": count,
        "connected": connected,
        "open_cpu": open_cpu,
        "full_collections": full_collections,
        "gc_pause_ms": full_collection_ms(),
        "tracked_objects": len(gc.get_objects()) - objects,
    }


if __name__ == "__main__":
    mode, url, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    print(json.dumps(asyncio.run(main(mode, url, count, "--freeze" in sys.argv))), flush=True)
    # Exit without closing thousands of sockets one by one: the process is done.
    sys.stdout.flush()
    import os

    os._exit(0)
