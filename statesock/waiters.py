"""Futures that the connection core settles by number.

``connect()``, ``disconnect()`` / ``close()`` and a buffered ``send()`` each wait on a future
kept here. The core names them by number in its effects (``ResolveConnect``,
``ResolveDisconnect``, ``ResolveSend``), so it never holds an asyncio object, and a caller
that gave up waiting (cancelled) is simply gone when its number is settled.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

__all__ = ["Waiters"]

_numbers = itertools.count(1)


class Waiters:
    __slots__ = ("_futures",)

    def __init__(self) -> None:
        self._futures: dict[int, asyncio.Future[Any]] = {}

    def add(self) -> int:
        """A new waiter's number (needs a running loop)."""
        number = next(_numbers)
        self._futures[number] = asyncio.get_running_loop().create_future()
        return number

    async def wait(self, number: int) -> Any:
        future = self._futures[number]
        try:
            return await future
        finally:
            futures = self._futures
            futures.pop(number, None)
            if not futures:
                # A dict keeps the table it grew to: an empty one is 160 B smaller, on every
                # client, between connects.
                self._futures = {}

    def settle(self, number: int, result: Any = None, error: BaseException | None = None) -> None:
        # The future stays until its wait() ends: it may be settled before the wait starts.
        future = self._futures.get(number)
        if future is None or future.done():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def __len__(self) -> int:
        return len(self._futures)
