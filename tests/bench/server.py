"""The benchmark server: ``python -m tests.bench.server [PORT] [--defer]``, a separate process.

It must never be what a benchmark measures, so it is a minimal WebSocket server on a bare
``asyncio.Protocol``: it answers the HTTP upgrade itself (no extensions), writes frames that
were encoded once at start-up straight to the transport, and walks incoming frame headers
without unmasking data payloads. What a connection does is chosen by its URL path:

* ``/hold`` (any other path too): stay open, answer Ping with Pong and Close with Close.
* ``/health``: as ``/hold``, and answer every data frame (a JSON health check, statesock's
  default ``{"type": "health.check", ...}``) with one pre-encoded text frame
  ``{"type":"health.pong"}``, without unmasking or parsing the check; answers count as pings.
* ``/recv?n=N&size=S``: after the client's first data frame, write N copies of one text frame
  carrying a JSON event of exactly S bytes, then a Close frame.
* ``/sink?n=N``: count the client's data frames; after N, send one text frame ``"done"`` (JSON).
  With ``&size=S`` the client promises N unfragmented text frames of S payload bytes and
  nothing in between (no keepalive): the server checks the first frame's header, then only
  counts bytes until N frames' worth have arrived, so that however fast a client sends, the
  server is not what limits it (walking frame headers in Python costs about as much CPU as
  the fastest client spends per message).

Control over stdin, one command a line, one JSON answer a line on stdout:
``cpu`` (process CPU seconds and monotonic time: the harness turns two of them into the
server's CPU share of a run), ``arrivals`` (monotonic times of the handshakes since the last
call), ``pings`` (Ping frames and JSON health checks answered since the last call),
``listen`` (bind now, with ``--defer``: the reconnect storm starts the replacement server
this way so the outage is exact). Once listening it prints ``{"port": P, "at": T}`` (T:
monotonic time); with ``--defer`` its first line is ``deferred``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import struct
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.bench.common import raise_fd_limit

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CHUNK_FRAMES = 512
# The answer to a JSON health check on /health (the client's decoder maps it to a pong).
HEALTH_PONG = b'{"type":"health.pong"}'


def event_payload(size: int) -> bytes:
    """A JSON event of exactly ``size`` bytes (>= 60), the same shape at every size."""
    head = {"type": "event", "seq": 123456, "data": {"symbol": "ABC", "price": 101.25, "pad": ""}}
    bare = len(json.dumps(head, separators=(",", ":")))
    if size < bare:
        raise ValueError(f"an event needs at least {bare} bytes")
    head["data"]["pad"] = "x" * (size - bare)  # type: ignore[index]
    payload = json.dumps(head, separators=(",", ":")).encode()
    assert len(payload) == size
    return payload


def frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked (server-to-client) final frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


def client_frame_size(size: int) -> int:
    """Bytes on the wire of one masked client text frame of ``size`` payload bytes."""
    return size + 6 + (0 if size < 126 else 2 if size < 65536 else 8)


class Stats:
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.pings = 0


class BenchProtocol(asyncio.Protocol):
    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.mode = "hold"
        self.count = 0
        self.blob = b""
        self.remaining = 0
        self.received = 0
        self.can_write = asyncio.Event()
        self.can_write.set()
        self.started = False
        self.sink_left = 0  # /sink with size: bytes of data frames still to count, unparsed
        self.sink_header = b""  # what the first of them must start with
        self.pong = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def pause_writing(self) -> None:
        self.can_write.clear()

    def resume_writing(self) -> None:
        self.can_write.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.can_write.set()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            self.buffer += data
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.stats.arrivals.append(time.monotonic())
            request = bytes(self.buffer[:end]).decode("latin-1")
            data = bytes(self.buffer[end + 4 :])
            self.buffer.clear()
            self._upgrade(request)
        if self.sink_left:
            data = self._count(data)
        if data:
            self.buffer += data
            self._frames()

    def _count(self, data: bytes) -> bytes:
        """/sink with a size: count the promised frames' bytes; return what follows them."""
        if self.sink_header:
            if len(data) < len(self.sink_header):  # too short to check: parse it instead
                self.sink_left = 0
                return data
            if not data.startswith(self.sink_header):
                self.sink_left = 0
                if self.transport is not None:
                    self.transport.write(frame(0x1, b'"unexpected frame"'))
                return data
            self.sink_header = b""
        if len(data) < self.sink_left:
            self.sink_left -= len(data)
            return b""
        rest = data[self.sink_left :]
        self.sink_left = 0
        self.received = self.count
        if self.transport is not None:
            self.transport.write(frame(0x1, b'"done"'))
        return rest

    def _upgrade(self, request: str) -> None:
        assert self.transport is not None
        lines = request.split("\r\n")
        target = lines[0].split(" ")[1]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        key = headers.get("sec-websocket-key", "").encode()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        self.upgraded = True
        parts = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.mode = parts.path.strip("/") or "hold"
        self.count = int(query.get("n", "0"))
        if self.mode == "recv":
            one = frame(0x1, event_payload(int(query.get("size", "100"))))
            self.blob = one * CHUNK_FRAMES
            self.frame_bytes = len(one)
        elif self.mode == "sink" and "size" in query and self.count > 0:
            size = int(query["size"])
            self.sink_left = self.count * client_frame_size(size)
            length = size if size < 126 else 126 if size < 65536 else 127
            self.sink_header = bytes([0x81, 0x80 | length])
        elif self.mode == "health":
            self.pong = frame(0x1, HEALTH_PONG)

    def _frames(self) -> None:
        buffer = self.buffer
        offset = 0
        size = len(buffer)
        while size - offset >= 2:
            first, second = buffer[offset], buffer[offset + 1]
            length = second & 0x7F
            header = 2
            if length == 126:
                if size - offset < 4:
                    break
                length = int.from_bytes(buffer[offset + 2 : offset + 4], "big")
                header = 4
            elif length == 127:
                if size - offset < 10:
                    break
                length = int.from_bytes(buffer[offset + 2 : offset + 10], "big")
                header = 10
            masked = second & 0x80
            header += 4 if masked else 0
            if size - offset < header + length:
                break
            opcode = first & 0x0F
            if opcode >= 0x8:  # control frames: unmask and answer
                payload = bytes(buffer[offset + header : offset + header + length])
                if masked:
                    mask = buffer[offset + header - 4 : offset + header]
                    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self._control(opcode, payload)
            else:
                self._data()
            offset += header + length
        if offset:
            del buffer[:offset]

    def _control(self, opcode: int, payload: bytes) -> None:
        if self.transport is None:
            return
        if opcode == 0x9:
            self.stats.pings += 1
            self.transport.write(frame(0xA, payload))
        elif opcode == 0x8:
            self.transport.write(frame(0x8, payload[:2]))
            self.transport.close()

    def _data(self) -> None:
        if self.mode == "recv" and not self.started:
            self.started = True
            asyncio.get_running_loop().create_task(self._blast())
        elif self.mode == "sink":
            self.received += 1
            if self.received == self.count and self.transport is not None:
                self.transport.write(frame(0x1, b'"done"'))
        elif self.mode == "health" and self.transport is not None:
            self.stats.pings += 1
            self.transport.write(self.pong)

    async def _blast(self) -> None:
        remaining = self.count
        while remaining > 0 and self.transport is not None:
            await self.can_write.wait()
            batch = min(remaining, CHUNK_FRAMES)
            if batch == CHUNK_FRAMES:
                self.transport.write(self.blob)
            else:
                self.transport.write(self.blob[: batch * self.frame_bytes])
            remaining -= batch
        if self.transport is not None:
            self.transport.write(frame(0x8, struct.pack("!H", 1000)))


async def main(port: int, defer: bool) -> None:
    raise_fd_limit()
    loop = asyncio.get_running_loop()
    stats = Stats()
    commands: asyncio.Queue[str] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line.strip())
        loop.call_soon_threadsafe(commands.put_nowait, "quit")

    threading.Thread(target=read_stdin, daemon=True).start()

    async def listen() -> asyncio.Server:
        server = await loop.create_server(
            lambda: BenchProtocol(stats), "127.0.0.1", port, backlog=4096, reuse_address=True
        )
        port_bound = server.sockets[0].getsockname()[1]
        print(json.dumps({"port": port_bound, "at": time.monotonic()}), flush=True)
        return server

    if defer:
        print("deferred", flush=True)
    else:
        await listen()
    while True:
        command = await commands.get()
        answer: Any
        if command == "quit":
            return
        if command == "listen":
            await listen()
            continue
        if command == "cpu":
            answer = {"cpu": time.process_time(), "at": time.monotonic()}
        elif command == "arrivals":
            answer, stats.arrivals = stats.arrivals, []
        elif command == "pings":
            answer, stats.pings = stats.pings, 0
        else:
            answer = {"error": f"unknown command {command!r}"}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    arguments = sys.argv[1:]
    asyncio.run(main(int(next((a for a in arguments if a.isdigit()), "0")), "--defer" in arguments))
