"""The connection core's timers on the event loop: one ``loop.call_at`` handle per kind.

The core says which timers run (``StartTimer`` / ``CancelTimer``); this only keeps their
handles, so that starting a kind again replaces it and closing the client cancels them all.
No task and no future per timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

from .core_io import TimerKind

__all__ = ["Timers"]


class Timers:
    __slots__ = ("_fire", "_handles")

    def __init__(self, fire: Callable[[TimerKind], None]) -> None:
        self._fire = fire
        self._handles: dict[TimerKind, asyncio.TimerHandle] = {}

    def start(self, loop: asyncio.AbstractEventLoop, kind: TimerKind, at: float) -> None:
        self.cancel(kind)
        self._handles[kind] = loop.call_at(at, self._fired, kind)

    def cancel(self, kind: TimerKind) -> None:
        handle = self._handles.pop(kind, None)
        if handle is not None:
            handle.cancel()

    def cancel_all(self) -> None:
        for kind in list(self._handles):
            self.cancel(kind)

    def _fired(self, kind: TimerKind) -> None:
        self._handles.pop(kind, None)
        self._fire(kind)

    def __contains__(self, kind: object) -> bool:
        return kind in self._handles

    def __iter__(self) -> Iterator[TimerKind]:
        return iter(list(self._handles))

    def __len__(self) -> int:
        return len(self._handles)
