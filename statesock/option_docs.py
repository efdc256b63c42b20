"""What each option of the client and of the recovery handler means: its unit and meaning.

One source for ``help(WebSocketClient)`` and ``help(ConnectionRecoveryHandler)`` (their
``__init__`` docstrings end with these, generated at import) and for the documentation site's
option tables (docs/_ext/statesock_docs.py), whose tests fail when an option has no entry or
an entry names an option that is gone. The defaults are not written here: they live once, in
:class:`statesock.settings.ClientSettings` and in the handler's signature. ``code`` in
backquotes is code. Pure module: data and one formatting function.
"""

from __future__ import annotations

import textwrap

__all__ = ["OPTIONS", "options_help"]

S = "seconds"
OPTIONS: dict[str, dict[str, tuple[str, str]]] = {
    "client": {
        "ack_required": (
            "",
            "Wait in `authenticating` for the server's ack (a `ConnectionAckEvent`, or the "
            "first `HealthCheckPongEvent`) before `connected`. `False`: connected as soon as "
            "`on_connection_established` has returned, for servers with no ack step.",
        ),
        "subprotocols": (
            "",
            "WebSocket subprotocols offered in the handshake (`Sec-WebSocket-Protocol`), in "
            "order of preference; the one the server chose is `client.subprotocol`.",
        ),
        "headers": (
            "",
            "Extra HTTP headers of the opening handshake: a mapping, `(name, value)` pairs, or "
            "a callable (sync or async) returning one, called before every attempt, so it can "
            "use a fresh `client.token`. Secret-looking values never reach a log line.",
        ),
        "query_params": (
            "",
            "Query parameters added to the URL at every attempt: a mapping, pairs or a "
            "callable, as for `headers`; `str` or number values.",
        ),
        "ssl": (
            "",
            "The TLS context for `wss://` URLs. `None`: Python's default context "
            "(certificates and host names verified).",
        ),
        "max_size": (
            "bytes",
            "The largest incoming message (1 MiB). A larger one ends the connection as "
            "`ServerInitiated(error=MessageTooLarge(...))` and the client closes with 1009; "
            "the default policy reconnects. `None`: no limit.",
        ),
        "compression": (
            "",
            "Offer permessage-deflate compression. `None`: the transport's own default, on "
            "for websockets, off for picows (which has none, and refuses `True`). `False` "
            "saves CPU per message; the benchmarks run without it.",
        ),
        "connect_timeout": (
            S,
            "Bounds `connecting` (TCP, proxy, TLS and WebSocket handshakes together); "
            "on expiry the client disconnects with `Timeout(connecting)`.",
        ),
        "auth_timeout": (
            S,
            "Bounds `authenticating` (from the open socket to the server's ack); on expiry "
            "the client disconnects with `Timeout(authenticating)` and cancels the auth hook.",
        ),
        "close_timeout": (
            S,
            "How long a close waits for the server's closing handshake; the socket is "
            "aborted 1 s after that at the latest, so no client stays in `disconnecting`. "
            "A link that failed a health check is not waited for.",
        ),
        "ping_interval": (
            S,
            "The health-check cadence while connected: `ping_request_builder(health)` is sent "
            "every `ping_interval` (a WebSocket Ping frame when the builder returns `None`). "
            "`None`: no health checks (see `idle_timeout`).",
        ),
        "pong_timeout": (
            S,
            "How long a health check waits for an answer before the client disconnects with "
            "`NoPongReceived`. Any inbound frame counts as an answer, and the deadline does "
            "not run while the client has stopped reading for a full subscriber. Shorter "
            "than `ping_interval`.",
        ),
        "idle_timeout": (
            S,
            "For servers that drive the heartbeat (Socket.IO, Centrifugo): no inbound frame "
            "for this long disconnects with `NoPongReceived`. Use with "
            "`ping_interval=None`. `None`: off.",
        ),
        "protocol_keepalive": (
            S,
            "websockets' own keepalive: a protocol Ping every N seconds, the connection "
            "dropped when its Pong is N seconds late. `None` (the default): off, the "
            "client's health checks do this job with a state and a source.",
        ),
        "event_queue_size": (
            "events",
            "The queue of each `events()` subscription, async `on()` callback and `states()` "
            "stream that does not give its own `maxsize`. A full lossless queue makes the "
            "client stop reading (backpressure through TCP). 1 to 10**6.",
        ),
        "message_encoder": (
            "",
            "Turns a message that is not `str` or `bytes` (given to `send()`, or returned by "
            "`ping_request_builder`) into `str` or `bytes`.",
        ),
        "token_provider": (
            "",
            "Called (sync or async) before every connection attempt; the result is "
            "`client.token`, for `headers`, `query_params` or the auth hook. An auth "
            "rejection (HTTP 401/403, close 4401/4403) then gets one retry with a fresh "
            "token; a provider that raises fails the attempt with `TokenUnavailable`.",
        ),
        "proxy": (
            "",
            "`True`: the proxy the environment names (`HTTPS_PROXY`, `HTTP_PROXY`, "
            "`ws_proxy`, ..., honouring `NO_PROXY`), as websockets does; `None` or `False`: "
            "no proxy; or an `http://`, `https://`, `socks4://`, `socks4a://`, "
            "`socks5://` or `socks5h://` URL.",
        ),
        "label": (
            "",
            "The client's name in log records (`client`), `client.stats` and repr. "
            "`None`: `ws-1`, `ws-2`, ... in order of creation.",
        ),
        "stall_timeout": (
            S,
            "How long a lossless subscriber (or async `on()` callback) may take nothing while "
            "the client has stopped reading for it; then it is cut off with "
            "`SubscriberStalled` and the client reads again. `None`: never cut off.",
        ),
        "transport": (
            "",
            'What carries the socket: `"websockets"` (websockets\' asyncio client) or '
            '`"picows"` (faster; installed by the `statesock[fast]` extra, with no '
            "compression and no `socks4a://` proxy). A transport that is not installed is an "
            "`ImportError` saying how to install it.",
        ),
        "meter_provider": (
            "",
            "The OpenTelemetry `MeterProvider` the client's meter comes from. `None`: the "
            'global one (`opentelemetry.metrics.get_meter("statesock")`), as instrumented '
            "libraries do. Used only with the `statesock[otel]` extra installed.",
        ),
    },
    "recovery": {
        "client": ("", "The client to bring back; one recovery handler per client."),
        "network_monitor": (
            "",
            "Where the handler learns that the network is down (the client disconnects with "
            "`SystemInitiated` and waits) or back (it reconnects at once, without backoff). "
            "`None`: the network is taken to be always up.",
        ),
        "policy": (
            "",
            "`(source) -> bool`: whether to reconnect after a disconnection with that "
            "source. The default is the reconnect table on the state-machine page.",
        ),
        "strategy": (
            "",
            "`next_delay(attempt, source) -> seconds | None` (or a plain callable of the "
            "same shape): the wait before each attempt; `None` gives up. `None` here: "
            "`PacedBackoff()`.",
        ),
        "stable_after": (
            S,
            "The flapping guard: a connection that drops sooner than this after reaching "
            "`connected` counts as a failed attempt, so the backoff goes on growing.",
        ),
        "send_buffer_size": (
            "messages",
            "With more than 0, `send()` while disconnected waits for the next connection "
            "(flushed in order after authentication) instead of raising "
            "`NotConnectedError`; a full buffer raises `SendBufferFull`. 0 to 10**6.",
        ),
        "send_ttl": (
            S,
            "How long a buffered message may wait for a connection; then its `send()` raises "
            "`SendExpired`. A message already being written never expires.",
        ),
        "retry_first_connect": (
            "",
            "`True`: `connect()` (and `async with client:`) waits through failed first "
            "attempts, with the policy and the backoff, and raises `ConnectFailed` only when "
            "recovery gives up. `False`: a failed first attempt raises at once (recovery "
            "still retries in the background).",
        ),
    },
}

CLIENT_OPTIONS = OPTIONS["client"]
RECOVERY_OPTIONS = OPTIONS["recovery"]


def options_help(kind: str, defaults: dict[str, object]) -> str:
    """The options of ``kind`` ("client", "recovery") as plain text for a docstring:
    ``name`` (default, unit): meaning, one paragraph each."""
    lines = ["", "Options:", ""]
    for name, (unit, meaning) in OPTIONS[kind].items():
        head = f"{name} (default {defaults.get(name)!r}" + (f", {unit})" if unit else ")")
        text = meaning.replace("`", "")
        lines.append(textwrap.fill(f"{head}: {text}", width=88, subsequent_indent="    "))
    return "\n".join(lines) + "\n"
