"""``statesock demo``: a guided tour of a client recovering from scripted faults.

An embedded loopback TestServer speaks a realistic protocol (auth message, ack with a
connection id, JSON health checks, a stream of app events). A client with a recovery
handler and a network monitor connects with short timings while the script restarts the
server, silences it, takes the network down and finally rejects the client's token. Every
transition is printed as it happens and written as JSON lines to a file that
``statesock logs`` can inspect. Real time, about 15 seconds at speed 1. It ends by writing
the HTML report of that log (``statesock report``) and printing its path.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

from ..client import WebSocketClient
from ..machine import ConnectionState
from ..network import ManualNetworkMonitor
from ..recovery import ConnectionRecoveryHandler
from ..retry import ExponentialBackoff
from ..testing import AppEvent, TestServer, auth_hook, decode_message
from .console import Style, configure
from .log_analysis import Summariser
from .log_reader import LogReader, LogRecord

__all__ = ["run_demo"]

S = ConnectionState
TOKEN = "demo-token"


async def _stream(server: TestServer, every: float) -> None:
    seq = 0
    while True:
        await asyncio.sleep(every)
        if server.silent:
            continue  # any inbound frame proves the link alive: a silent server sends nothing
        await server.broadcast({"type": "event", "seq": seq, "symbol": "ABC", "price": 100 + seq})
        seq += 1


async def _tour(out: Style, speed: float) -> dict[str, int]:
    t = 1.0 / speed
    server = await TestServer(token=TOKEN).start()
    streamer = asyncio.ensure_future(_stream(server, 0.25 * t))
    monitor = ManualNetworkMonitor()
    client = WebSocketClient(
        server.url,
        decode_message,
        on_connection_established=auth_hook(TOKEN),
        ping_interval=0.5 * t,
        pong_timeout=0.3 * t,
        connect_timeout=1.0 * t,
        auth_timeout=1.0 * t,
        close_timeout=0.3 * t,
        label="demo",
    )
    recovery = ConnectionRecoveryHandler(
        client, monitor, strategy=ExponentialBackoff(base=0.2 * t, cap=2.0 * t), stable_after=t
    )
    received = {"events": 0}
    client.on(AppEvent, lambda event: received.__setitem__("events", received["events"] + 1))

    def step(text: str) -> None:
        print("\n" + out(text, "bold"), flush=True)

    try:
        step("1. Connect: open the socket, send the auth message, wait for the server's ack")
        await client.connect()
        print(f"    connection id {client.state.health.connection_id}", flush=True)
        await asyncio.sleep(1.5 * t)

        step("2. The server crashes and comes back a second later")
        await server.kill()
        await asyncio.sleep(1.0 * t)
        await server.start()
        await asyncio.wait_for(client.wait_for(S.CONNECTED), 10 * t)
        await asyncio.sleep(1.0 * t)

        step("3. The server goes silent (no pongs, no events): no pong, so the link is dead")
        server.silent = True
        await asyncio.wait_for(client.wait_for(S.DISCONNECTED), 5 * t)
        server.silent = False
        await asyncio.wait_for(client.wait_for(S.CONNECTED), 10 * t)
        await asyncio.sleep(1.0 * t)

        step("4. The network goes away for two seconds (as the app's monitor reports it)")
        monitor.set_available(False)
        await asyncio.sleep(2.0 * t)
        monitor.set_available(True)
        await asyncio.wait_for(client.wait_for(S.CONNECTED), 5 * t)
        await asyncio.sleep(1.0 * t)

        step("5. The server rotates its token and restarts: ours is rejected, so we stop")
        server.token = "rotated-token"
        await server.close_all(1012, "service restart")
        for _ in range(int(100 * t) + 1):
            if recovery.gave_up:
                break
            await asyncio.sleep(0.1)
        print(f"    recovery gave up: {recovery.gave_up}", flush=True)
    finally:
        streamer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await streamer
        recovery.close()
        await client.close()
        await server.stop()
    return {"events": received["events"]}


def run_demo(
    log_file: str = "statesock-demo.jsonl",
    speed: float = 1.0,
    report: str | None = "statesock-demo.html",
) -> int:
    out = Style(sys.stdout)
    path = Path(log_file)
    print(out("statesock demo: a client that connects, authenticates, pings and recovers", "bold"))
    print(f"(writing the JSON-lines transition log to {path})")
    try:
        with path.open("w", encoding="utf-8") as log:
            configure(log)
            counts = asyncio.run(_tour(out, speed))
    except (OSError, TimeoutError) as exc:
        print(f"statesock demo failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    summariser = Summariser()
    for item in LogReader([path]):
        if isinstance(item, LogRecord):
            summariser.feed(item)
    print("\n" + out("Summary", "bold"))
    for summary in summariser.finish():
        times = ", ".join(
            f"{state} {seconds:.2f}s"
            for state, seconds in sorted(summary.time_in_state.items(), key=lambda kv: -kv[1])
        )
        sources = ", ".join(f"{k}={v}" for k, v in sorted(summary.disconnections.items()))
        print(f"  client {summary.label}: {summary.records} transition records")
        print(f"  time in state: {times}")
        print(f"  disconnections by source: {sources}")
        print(f"  reconnects: {summary.reconnects}")
        if summary.outages:
            print(
                f"  outages: {len(summary.outages)}, longest {summary.longest_outage:.2f} s, "
                f"time to reconnect p50 {summary.p50_reconnect:.2f} s"
            )
    print(f"  app events received: {counts['events']}")
    print(f"\nInspect the log:  statesock logs {path}")
    print(f"Check it:         statesock logs --check {path}")
    print(f"See the diagram:  statesock diagram --log {path}")
    if report is not None:
        from .report import build_report

        try:
            page = build_report(LogReader([path]), title=f"statesock demo: {path}")
            Path(report).write_text(page.html, encoding="utf-8")
        except OSError as exc:
            print(f"statesock demo: cannot write the report {report}: {exc}", file=sys.stderr)
            return 1
        print(f"The report:       {Path(report).resolve()}  (open it in a browser)")
    return 0
