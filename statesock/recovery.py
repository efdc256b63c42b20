"""ConnectionRecoveryHandler: brings a client back, for the right reasons, at the right pace.

The handler decides nothing itself: it attaches a recovery configuration (policy, retry
strategy, ``stable_after``, send buffer) to the client's connection core, which makes every
recovery decision (see :mod:`statesock.core`), and it feeds the core what it watches: the
:class:`~statesock.network.NetworkMonitor` and the app's ``pause()`` / ``resume()``.

In short, what the core does with it: after a disconnection allowed by the policy, with the
network up and the app not paused, it waits ``strategy.next_delay(attempt, source)`` and
reconnects (None gives up); a connection that had been up for ``stable_after`` seconds
starts the count again, one that dropped sooner does not, so a server that accepts and then
closes at once cannot cause a tight loop. A user disconnect stops recovery until the user
connects again. Network down (or ``pause()``) disconnects with ``SystemInitiated`` and
waits; network up (or ``resume()``) reconnects at once. An auth rejection that the policy
would stop on gets one retry when the client has a ``token_provider``.

With ``send_buffer_size`` > 0, ``client.send()`` waits (up to ``send_ttl`` seconds) for the
next connection instead of raising. With ``retry_first_connect=True``, ``client.connect()``
keeps waiting through failed attempts until connected or until recovery gives up.

Like the client, the handler belongs to its event loop's thread: a monitor fed from another
thread must hand its status over with ``loop.call_soon_threadsafe(monitor.set_available, ...)``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass

from .client import WebSocketClient
from .core import RecoveryState
from .core_io import RecoveryConfig
from .network import NetworkMonitor
from .option_docs import options_help
from .retry import RetryStrategy, as_strategy
from .settings import MAX_QUEUE_SIZE
from .sources import DisconnectionSource, ReconnectPolicy, default_reconnect_policy

__all__ = ["ConnectionRecoveryHandler", "SendBufferStats"]


@dataclass(frozen=True)
class SendBufferStats:
    """What the send buffer holds and what became of the messages it could not send."""

    size: int
    ttl: float
    pending: int
    expired: int
    abandoned: int


class ConnectionRecoveryHandler:
    """Reconnects ``client`` per ``policy`` and ``strategy`` (see the module docstring).

    Accepted values (anything else is a TypeError or ValueError naming the parameter):
    ``client`` a :class:`~statesock.client.WebSocketClient`; ``network_monitor`` None or an
    object with a bool ``available`` and a callable ``subscribe`` (a
    :class:`~statesock.network.NetworkMonitor`); ``policy`` a callable; ``strategy`` a
    :class:`~statesock.retry.RetryStrategy`, a callable or None; ``stable_after`` finite
    seconds >= 0; ``send_buffer_size`` an int in 0..:data:`~statesock.settings.MAX_QUEUE_SIZE`
    (10**6); ``send_ttl`` finite seconds > 0 (not a bool); ``retry_first_connect`` a bool.
    """

    def __init__(
        self,
        client: WebSocketClient,
        network_monitor: NetworkMonitor | None = None,
        *,
        policy: ReconnectPolicy = default_reconnect_policy,
        strategy: RetryStrategy | Callable[[int, DisconnectionSource], float | None] | None = None,
        stable_after: float = 10.0,
        send_buffer_size: int = 0,
        send_ttl: float = 30.0,
        retry_first_connect: bool = False,
    ) -> None:
        if not isinstance(client, WebSocketClient):
            raise TypeError(f"client must be a WebSocketClient, not {client!r}")
        _check_monitor(network_monitor)
        if not callable(policy):
            raise TypeError(f"policy must be callable (source) -> bool, not {policy!r}")
        if isinstance(stable_after, bool) or not isinstance(stable_after, int | float):
            raise TypeError(f"stable_after must be a number of seconds, not {stable_after!r}")
        if not math.isfinite(stable_after) or stable_after < 0:
            raise ValueError(f"stable_after must be >= 0 and finite, not {stable_after!r}")
        if isinstance(send_buffer_size, bool) or not isinstance(send_buffer_size, int):
            raise TypeError(f"send_buffer_size must be an int, not {send_buffer_size!r}")
        if not 0 <= send_buffer_size <= MAX_QUEUE_SIZE:
            raise ValueError(
                f"send_buffer_size must be in 0..{MAX_QUEUE_SIZE}, not {send_buffer_size!r}"
            )
        if isinstance(send_ttl, bool) or not isinstance(send_ttl, int | float):
            raise TypeError(f"send_ttl must be a number of seconds, not {send_ttl!r}")
        if not math.isfinite(send_ttl) or send_ttl <= 0:
            raise ValueError(f"send_ttl must be a positive, finite number, not {send_ttl!r}")
        if not isinstance(retry_first_connect, bool):
            raise TypeError(
                f"retry_first_connect must be True or False, not {retry_first_connect!r}"
            )
        self.client = client
        self.network_monitor = network_monitor
        self.policy = policy
        self.strategy = as_strategy(strategy)
        self.stable_after = float(stable_after)
        self._closed = False
        config = RecoveryConfig(
            policy, self.strategy, self.stable_after, send_buffer_size, float(send_ttl),
            retry_first_connect,
        )  # fmt: skip
        available = network_monitor.available if network_monitor is not None else True
        # The client's public seam (raises RuntimeError when a handler is attached already).
        self._link = client.attach_recovery(config, network_available=bool(available))
        self._unsubscribe = (
            network_monitor.subscribe(self._link.network_changed) if network_monitor else None
        )

    # -- reading ----------------------------------------------------------------------------

    @property
    def _state(self) -> RecoveryState | None:
        return self._link.state

    @property
    def attempt(self) -> int:
        return self._state.attempt if self._state else 0

    @property
    def reconnects(self) -> int:
        return self._state.reconnects if self._state else 0

    @property
    def gave_up(self) -> bool:
        return self._state.gave_up if self._state else False

    @property
    def paused(self) -> bool:
        return self._state.paused if self._state else False

    @property
    def retry_in(self) -> float | None:
        """The delay of the reconnect now scheduled (None when none is)."""
        return self._state.retry_in if self._state else None

    @property
    def waiting(self) -> bool:
        """A reconnect is scheduled (``retry_in`` says after how long it was set for)."""
        return self.retry_in is not None

    @property
    def network_available(self) -> bool:
        return self.network_monitor is None or bool(self.network_monitor.available)

    @property
    def send_buffer(self) -> SendBufferStats | None:
        state = self._state
        if state is None or state.config.buffer_size == 0:
            return None
        stats = self.client.stats
        return SendBufferStats(
            state.config.buffer_size,
            state.config.buffer_ttl,
            len(state.buffer),
            stats.sends_expired,
            stats.sends_abandoned,
        )

    # -- app lifecycle ----------------------------------------------------------------------

    def pause(self) -> None:
        """The app goes idle: disconnect (SystemInitiated) and suspend reconnecting."""
        self._link.pause()

    def resume(self) -> None:
        """The app is back: reconnect at once if the last disconnection allows it."""
        self._link.resume()

    def close(self) -> None:
        """Stop recovering: no timer, no monitor subscription, no buffered message remain."""
        if self._closed:
            return
        self._closed = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._link.detach()


def _check_monitor(monitor: object) -> None:
    """A TypeError naming ``network_monitor`` rather than an AttributeError further on."""
    if monitor is None:
        return
    if not hasattr(monitor, "available") or not callable(getattr(monitor, "subscribe", None)):
        raise TypeError(
            "network_monitor must be a NetworkMonitor (a bool 'available' and a callable "
            f"'subscribe'), not {monitor!r}"
        )
    available = monitor.available
    if not isinstance(available, bool):
        raise TypeError(
            f"network_monitor.available must be True or False, not {available!r} (from {monitor!r})"
        )


# help(ConnectionRecoveryHandler) lists every option with its default, unit and meaning.
ConnectionRecoveryHandler.__init__.__doc__ = (
    ConnectionRecoveryHandler.__init__.__doc__ or ""
) + options_help(
    "recovery",
    {
        name: parameter.default
        for name, parameter in inspect.signature(ConnectionRecoveryHandler).parameters.items()
    },
)
