"""The connection core's timers on the event loop.

Theory of operation. The core says which timers run (``StartTimer`` / ``CancelTimer``); a
:class:`Timers` (one per client) keeps each kind at most once, so that starting a kind again
replaces it, and closing the client cancels them all. No task and no future per timer.

A process may hold thousands of clients, each with a health check every ``ping_interval``
whose one timer is armed twice per check (for the pong deadline when the check goes out,
for the next check when the pong comes). As ``loop.call_at`` handles, they would sit in
asyncio's own heap, whose entries compare in Python (``TimerHandle.__lt__``, about twenty
calls per check with a thousand clients): a tenth of a health check's CPU. So the timers of
all clients on a loop share one :class:`_Schedule`: a heap of ``[when, seq, timers, kind]``
lists, which compare in C, behind a single ``loop.call_at`` handle armed for the earliest
live one.

- A cancelled timer's entry stays in the heap until its time, emptied: it no longer refers to
  its client, so a closed client is not kept alive by it.
- When the handle fires, every entry due then is taken off the heap first (the time the loop
  woke up for counts as now: asyncio runs a handle up to a clock tick early), the handle is
  armed for what is left, and then each due timer's callback runs, in time order. A timer
  a callback starts for a moment already past fires on the next loop iteration, as a
  ``call_at`` in the past would; a callback that raises is reported to the loop's exception
  handler, as asyncio does for its own handles, and the others still run (a SystemExit or
  KeyboardInterrupt leaves the loop, as it would, and the rest fire when it runs again).
- Once no timer of any client is live, the handle is cancelled and the heap emptied: a loop
  with no statesock timer has nothing of statesock scheduled.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from .core_io import TimerKind

__all__ = ["Timers"]

# [when, seq, timers (None once cancelled or fired), kind, schedule]; seq makes every entry
# compare before reaching the third item, and keeps equal times in the order they started.
_Entry = list[Any]
_WHEN, _SEQ, _TIMERS, _KIND, _SCHEDULE = range(5)


class _Schedule:
    """The timers of every client on one loop (see the module docstring)."""

    __slots__ = ("__weakref__", "_armed_at", "_handle", "_heap", "_live", "_loop", "_seq")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: the registry's key is the loop, which this must not keep alive.
        self._loop = weakref.ref(loop)
        self._heap: list[_Entry] = []
        self._handle: asyncio.TimerHandle | None = None
        self._armed_at = math.inf
        self._live = 0  # entries neither cancelled nor fired
        self._seq = itertools.count()

    def add(self, at: float, timers: Timers, kind: TimerKind) -> _Entry:
        entry = [at, next(self._seq), timers, kind, self]
        if at < self._armed_at:
            self._arm(at)  # first: on a closed loop it raises, and nothing is kept
        heapq.heappush(self._heap, entry)
        self._live += 1
        return entry

    def drop(self, entry: _Entry) -> None:
        """``entry`` was cancelled: it stays in the heap, empty, until its time."""
        entry[_TIMERS] = None
        self._live -= 1
        if self._live == 0:  # nothing left to wake up for
            self._heap.clear()
            if self._handle is not None:
                self._handle.cancel()
                self._handle = None
            self._armed_at = math.inf

    def _arm(self, at: float) -> None:
        loop = self._loop()
        assert loop is not None  # its callers run on it
        handle = loop.call_at(at, self._run)
        if self._handle is not None:
            self._handle.cancel()
        self._handle, self._armed_at = handle, at

    def _run(self) -> None:
        loop = self._loop()
        assert loop is not None  # it is running this
        # asyncio runs a handle up to a clock tick before its time: what it woke up for is due.
        now = max(loop.time(), self._armed_at)
        self._handle, self._armed_at = None, math.inf
        heap = self._heap
        due: list[_Entry] = []
        while heap and (heap[0][_WHEN] <= now or heap[0][_TIMERS] is None):
            entry = heapq.heappop(heap)
            if entry[_TIMERS] is not None:
                due.append(entry)
        if heap:
            self._arm(heap[0][_WHEN])
        for index, entry in enumerate(due):
            timers = entry[_TIMERS]
            if timers is None:  # cancelled by a callback that ran before it
                continue
            self._live -= 1
            try:
                timers._fired(entry[_KIND])
            except (SystemExit, KeyboardInterrupt):
                self._put_back(due[index + 1 :])  # they fire when the loop runs again
                raise
            except BaseException as exc:  # as asyncio does for a handle: report, run the others
                loop.call_exception_handler(
                    {"message": f"statesock timer {entry[_KIND]} failed", "exception": exc}
                )

    def _put_back(self, entries: list[_Entry]) -> None:
        """Due entries a callback's SystemExit or KeyboardInterrupt left unrun: back on the
        heap, still live, the handle armed for them."""
        for entry in entries:
            if entry[_TIMERS] is not None:
                heapq.heappush(self._heap, entry)
        if self._heap and self._heap[0][_WHEN] < self._armed_at:
            self._arm(self._heap[0][_WHEN])


_schedules: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Schedule] = (
    weakref.WeakKeyDictionary()
)


def _schedule_of(loop: asyncio.AbstractEventLoop) -> _Schedule:
    schedule = _schedules.get(loop)
    if schedule is None:
        schedule = _schedules[loop] = _Schedule(loop)
    return schedule


class Timers:
    """One client's timers: each kind at most once (see the module docstring)."""

    __slots__ = ("_entries", "_fire")

    def __init__(self, fire: Callable[[TimerKind], None]) -> None:
        self._fire = fire
        self._entries: dict[TimerKind, _Entry] = {}

    def start(self, loop: asyncio.AbstractEventLoop, kind: TimerKind, at: float) -> None:
        self.cancel(kind)
        # Each entry knows its schedule: a client moved to another loop cancels on the old one.
        self._entries[kind] = _schedule_of(loop).add(at, self, kind)

    def cancel(self, kind: TimerKind) -> None:
        entry = self._entries.pop(kind, None)
        if entry is not None:
            entry[_SCHEDULE].drop(entry)

    def cancel_all(self) -> None:
        for kind in list(self._entries):
            self.cancel(kind)

    def _fired(self, kind: TimerKind) -> None:
        del self._entries[kind]  # gone before the callback, which may start it again
        self._fire(kind)

    def __contains__(self, kind: object) -> bool:
        return kind in self._entries

    def __iter__(self) -> Iterator[TimerKind]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)
