"""A benchmark server process: ``python -m tests.bench.server MODE PORT COUNT``.

MODE ``raw``: accept and hold connections (answers Ping frames, as websockets does).
MODE ``stream``: wait for one message, send COUNT small JSON events, close.
Prints the port once listening.
"""

from __future__ import annotations

import asyncio
import json
import sys

from websockets.asyncio.server import ServerConnection, serve

from tests.bench.common import raise_fd_limit

EVENT = json.dumps({"type": "event", "seq": 0, "data": {"symbol": "ABC", "price": 101.25}})


async def main(mode: str, port: int, count: int) -> None:
    raise_fd_limit()

    async def hold(ws: ServerConnection) -> None:
        await ws.wait_closed()

    async def stream(ws: ServerConnection) -> None:
        await ws.recv()
        for _ in range(count):
            await ws.send(EVENT)
        await ws.close()

    handler = stream if mode == "stream" else hold
    async with serve(
        handler, "127.0.0.1", port, ping_interval=None, compression=None, backlog=4096
    ) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
