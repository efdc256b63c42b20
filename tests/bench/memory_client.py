"""The client side of the memory benchmark, run in its own process.

``python -m tests.bench.memory_client MODE URL K`` opens K idle connections (MODE
``statesock``: WebSocketClient with ping controller and recovery handler; ``raw``: websockets
connections each with a reading task) and prints RSS before and after as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
from typing import Any

import structlog
from websockets.asyncio.client import ClientConnection, connect

from statesock.client import WebSocketClient
from statesock.recovery import ConnectionRecoveryHandler
from tests.bench.common import raise_fd_limit, rss_bytes

BATCH = 200


async def _read(ws: ClientConnection) -> None:
    with contextlib.suppress(Exception):
        async for _ in ws:
            pass


async def main(mode: str, url: str, count: int) -> dict[str, Any]:
    raise_fd_limit()
    # Transition logging is the app's choice; measure the connection, not a log sink.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    keep: list[Any] = []
    gc.collect()
    await asyncio.sleep(0.1)
    before = rss_bytes()
    for start in range(0, count, BATCH):
        size = min(BATCH, count - start)
        if mode == "statesock":
            clients = [WebSocketClient(url, json.loads, ack_required=False) for _ in range(size)]
            handlers = [ConnectionRecoveryHandler(c) for c in clients]
            await asyncio.gather(*(c.connect() for c in clients))
            keep.extend(zip(clients, handlers, strict=True))
        else:
            sockets = await asyncio.gather(*(connect(url, proxy=None) for _ in range(size)))
            tasks = [asyncio.ensure_future(_read(ws)) for ws in sockets]
            keep.extend(zip(sockets, tasks, strict=True))
    gc.collect()
    await asyncio.sleep(0.5)
    after = rss_bytes()
    connected = len(keep)
    if mode == "statesock":
        connected = sum(1 for c, _ in keep if c.state.state.value == "connected")
    return {"before": before, "after": after, "count": count, "connected": connected}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))), flush=True)
    # Exit without closing thousands of sockets one by one: the process is done.
    sys.stdout.flush()
    import os

    os._exit(0)
