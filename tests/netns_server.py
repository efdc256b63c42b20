"""Run a TestServer on a given address until killed (used inside a network namespace)."""

from __future__ import annotations

import asyncio
import sys

from statesock.testing import TestServer


async def main(host: str) -> None:
    server = await TestServer(host=host).start()
    print(server.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
