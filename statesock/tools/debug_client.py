"""``statesock connect URL``: a debugging client for any WebSocket server.

It prints every transition and every received message, sends each line typed on standard
input as a text message (lines typed before the connection is up wait for it), reconnects
per the default policy, and ends with a conventional exit code:

* 0 after a normal end: standard input ended (unless ``--keep-open``), or the server closed
  with 1000 (normal closure), which the policy does not retry;
* 1 when the reconnect policy gave up; the real final cause is printed (a 1008 close, an
  HTTP 401 handshake refusal, a certificate error ...), read from the last state change into
  disconnected before this command closes the client itself. The end of input does not hide
  it: when the server had closed first (the client was already done, or the server's close
  frame was in before this command's own close went out, so that the socket's close carries
  the server's code, not the 1000 of a normal close), that close is the cause, not the end of
  input;
* 2 for unusable arguments (a bad URL, header, CA file or setting);
* 130 on Ctrl-C and 143 on SIGTERM, after a clean close (user source, close code 1000).

Health checks are WebSocket Ping frames by default, which every server answers; ``--ping
json`` sends statesock's JSON health check and treats messages whose ``type`` is
``--pong-type`` as pongs. No auth ack by default; ``--ack-type T`` makes the client wait in
authenticating for a message of type T.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
import threading
from typing import Any

from ..client import WebSocketClient
from ..engine import SocketHandle
from ..events import HealthCheckPongEvent
from ..exceptions import (
    ConfigurationError,
    ConnectFailed,
    ConnectionFailure,
    InvalidURL,
    StatesockError,
)
from ..machine import ConnectionState, Record, StateChange
from ..ping import default_ping_request
from ..recovery import ConnectionRecoveryHandler
from ..redaction import redact_text
from ..sources import (
    DisconnectionSource,
    ServerInitiated,
    UserInitiated,
    default_reconnect_policy,
)
from .console import Style, configure

__all__ = ["EXIT_GAVE_UP", "EXIT_INTERRUPTED", "parse_header", "run_connect", "ssl_context"]

EXIT_OK = 0
EXIT_GAVE_UP = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT
EXIT_TERMINATED = 143  # 128 + SIGTERM


class UsageError(Exception):
    """An argument that cannot work; exit 2 with this message."""


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise UsageError(f"a header must look like 'Name: value', not {text!r}")
    return name.strip(), value.strip()


def ssl_context(url: str, insecure: bool, cafile: str | None) -> ssl.SSLContext | None:
    """The TLS context for ``--insecure`` / ``--cafile`` (None: the library's default)."""
    if not insecure and cafile is None:
        return None
    if not url.lower().startswith("wss://"):
        raise UsageError("--insecure and --cafile apply to wss:// URLs only")
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load the CA file {cafile}: {exc}") from exc
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class BinaryFrame(bytes):
    """A message that arrived in a binary frame (shown as such, never as text)."""


def _decoder(pong_type: str, ack_type: str | None) -> Any:
    health_types = {pong_type} | ({ack_type} if ack_type else set())

    def decode(data: str | bytes) -> Any:
        try:
            message = json.loads(data)
        except ValueError:
            message = None
        if isinstance(message, dict) and message.get("type") in health_types:
            connection_id = message.get("connection_id")
            return HealthCheckPongEvent(str(connection_id) if connection_id else None, message)
        if isinstance(data, bytes):
            return BinaryFrame(data)
        return data if message is None else message

    return decode


# Codes a socket closed by this command may report without the server having closed first:
# the server's answer to our 1000 (echoed, empty: 1005), or no answer at all (1006).
_ANSWERS_TO_OUR_CLOSE = frozenset({1000, 1005, 1006})


class _SessionClient(WebSocketClient):
    """The session's client: it also keeps how each socket closed, as the engine reports it.

    A close the session asks for is recorded with the user's source, whatever the socket
    saw; the socket's own report still says whether the server's close frame came first.
    """

    last_close: ServerInitiated | None = None

    def socket_closed(
        self, handle: SocketHandle, code: int | None, reason: str, error: ConnectionFailure | None
    ) -> None:
        self.last_close = ServerInitiated(code, reason, error)
        super().socket_closed(handle, code, reason, error)


def _read_stdin(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """A daemon thread: a blocked read cannot be cancelled and must not hold up the exit.

    It reads the file descriptor with os.read, not sys.stdin: a daemon thread blocked inside
    a buffered reader's lock makes the interpreter abort at shutdown.
    """

    def put(text: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            loop.call_soon_threadsafe(lines.put_nowait, text)

    def run() -> None:
        pending = b""
        try:
            fd = sys.stdin.fileno()
            while chunk := os.read(fd, 65536):
                *complete, pending = (pending + chunk).split(b"\n")
                for raw in complete:
                    put(raw.decode("utf-8", errors="replace").rstrip("\r"))
        except (OSError, ValueError, AttributeError):
            pass  # no usable standard input: the same as its end
        if pending:
            put(pending.decode("utf-8", errors="replace").rstrip("\r"))
        put(None)

    threading.Thread(target=run, name="statesock-stdin", daemon=True).start()


async def wait_until_done(
    client: WebSocketClient, recovery: ConnectionRecoveryHandler, stop: asyncio.Event
) -> None:
    """Return once the session is asked to stop, or nothing will reconnect the client."""
    done = asyncio.ensure_future(client.wait_done())
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({done, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in (done, stopped):
            waiter.cancel()
        await asyncio.gather(done, stopped, return_exceptions=True)


class Session:
    """One ``connect`` run: the client, its recovery handler, input, and how it ended."""

    def __init__(self, args: argparse.Namespace, headers: list[tuple[str, str]]) -> None:
        self.args = args
        self.style = Style(sys.stdout)
        self.stop = asyncio.Event()
        self.ended_by: str | None = None  # "interrupt", "terminate", "end of input"
        self.final: DisconnectionSource | None = None
        self.connected = asyncio.Event()
        self.ever_connected = asyncio.Event()
        auth = args.auth_message

        async def authenticate(client: WebSocketClient) -> None:
            if auth is not None:
                await client.send(auth)

        self.client = _SessionClient(
            args.url,
            _decoder(args.pong_type, args.ack_type),
            ping_request_builder=default_ping_request if args.ping == "json" else _frame_ping,
            on_connection_established=authenticate,
            ack_required=args.ack_type is not None,
            subprotocols=args.subprotocol,
            headers=headers or None,
            ssl=ssl_context(args.url, args.insecure, args.cafile),
            ping_interval=args.ping_interval,
            pong_timeout=args.pong_timeout,
            label="connect",
        )
        self.client.add_listener(self._record)
        self.client.on(None, self._show)

    def _record(self, record: Record) -> None:
        # The final cause must be read here, as it happens: after our own close() the
        # client's source is just "user disconnect".
        if isinstance(record, StateChange):
            if record.current is ConnectionState.CONNECTED:
                self.connected.set()
                self.ever_connected.set()
            else:
                self.connected.clear()
            if record.current is ConnectionState.DISCONNECTED:
                self.final = record.source

    def _show(self, event: Any) -> None:
        if isinstance(event, HealthCheckPongEvent):
            return
        if isinstance(event, BinaryFrame):
            # Binary: say so, with its size, and show it as bytes (a b'...' literal).
            shown = redact_text(repr(bytes(event)), limit=500)
            print(f"    ← [binary, {len(event)} bytes] {shown}", flush=True)
            return
        text = event if isinstance(event, str) else json.dumps(event)
        print(f"    ← {redact_text(text, limit=500)}", flush=True)

    def request_stop(self, why: str) -> None:
        if self.ended_by is None:
            self.ended_by = why
        self.stop.set()

    async def _send_lines(self, lines: asyncio.Queue[str | None]) -> None:
        while (text := await lines.get()) is not None:
            if not text.strip():
                continue
            await self.connected.wait()  # a line typed early waits for the connection
            try:
                await self.client.send(text)
            except StatesockError as exc:
                print(f"    ✗ not sent ({type(exc).__name__}: {exc}): {text[:80]}", flush=True)
                continue
            print(self.style(f"    → {redact_text(text, limit=500)}", "dim"), flush=True)
        if not self.args.keep_open:
            # Empty input (< /dev/null) still connects once: the session shows whether the
            # server can be reached, and a policy giving up first decides the exit code.
            await self.ever_connected.wait()
            self.request_stop("end of input")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig, why in ((signal.SIGINT, "interrupt"), (signal.SIGTERM, "terminate")):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop, why)
        recovery = ConnectionRecoveryHandler(client=self.client)
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        _read_stdin(loop, lines)
        sender = asyncio.ensure_future(self._send_lines(lines))
        first = asyncio.ensure_future(self.client.connect())
        try:
            await wait_until_done(self.client, recovery, self.stop)
        finally:
            # Before our own close(): how the client ended if it ended without us.
            final, gave_up, done = self.final, recovery.gave_up, self.client.done
            for task in (sender, first):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ConnectFailed, StatesockError):
                    await task
            recovery.close()
            self.client.last_close = None
            await self.client.close()
        if self.ended_by == "end of input":
            final, gave_up = self._server_first(final, gave_up, done)
        return self._verdict(final, gave_up)

    def _server_first(
        self, final: DisconnectionSource | None, gave_up: bool, done: bool
    ) -> tuple[DisconnectionSource | None, bool]:
        """The cause and give-up flag to report after the end of input: the server's close
        when it came before the session's own close took effect, else ``final`` unchanged.

        Standard input can end (``< /dev/null``) as the connection comes up, so the session's
        close races a server that closes at once: the client may be done already when the
        session acts on the end of input, or the server's close frame may be in while the
        client still counts as connected (the session's close then goes out as the answer to
        the server's, and the socket reports the server's code).
        """
        if done and final is not None and not isinstance(final, UserInitiated):
            self.ended_by = None
            return final, gave_up
        closed = self.client.last_close
        if (
            closed is not None
            and closed.close_code is not None
            and closed.close_code not in _ANSWERS_TO_OUR_CLOSE
        ):
            self.ended_by = None
            return closed, not default_reconnect_policy(closed)
        return final, gave_up

    def _verdict(self, final: DisconnectionSource | None, gave_up: bool) -> int:
        if self.ended_by == "interrupt":
            print(self.style("interrupted: disconnected (close 1000)", "bold"))
            return EXIT_INTERRUPTED
        if self.ended_by == "terminate":
            print(self.style("terminated: disconnected (close 1000)", "bold"))
            return EXIT_TERMINATED
        if self.ended_by == "end of input":
            print(self.style("end of input: disconnected (close 1000)", "bold"))
            return EXIT_OK
        reason = redact_text(final.close_reason) if final is not None else "unknown"
        if isinstance(final, ServerInitiated) and final.close_code == 1000:
            print(self.style(f"the server ended the session: {reason}", "bold"))
            return EXIT_OK
        verb = "the reconnect policy gives up after" if gave_up else "nothing reconnects after"
        print(self.style(f"stopped: {verb}: {reason}", "bold"))
        if isinstance(final, ServerInitiated) and isinstance(
            final.error, InvalidURL | ConfigurationError
        ):
            return EXIT_USAGE
        return EXIT_GAVE_UP


def _frame_ping(_health: Any) -> None:
    """Health checks as protocol Ping frames: the builder returns no message."""
    return None


def run_connect(args: argparse.Namespace) -> int:
    log = None
    try:
        headers = [parse_header(h) for h in args.header]
        if args.log_file:
            log = open(args.log_file, "w", encoding="utf-8")  # noqa: SIM115
        configure(log)

        async def main() -> int:
            try:
                session = Session(args, headers)
            except (TypeError, ValueError, ConfigurationError) as exc:
                # The client checks every setting (and the URL) when it is made.
                raise UsageError(str(exc)) from exc
            return await session.run()

        return asyncio.run(main())
    except (UsageError, OSError) as exc:
        print(f"statesock connect: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if log is not None:
            log.close()
