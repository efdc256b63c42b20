"""TLS: an untrusted certificate is a clear, fatal error; a trusted one connects.

tests/data/localhost.{crt,key} is a self-signed certificate for 127.0.0.1 made for these
tests only (openssl req -x509 ... -days 36500).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from statesock.client import WebSocketClient
from statesock.exceptions import ConnectFailed, TLSFailure
from statesock.machine import ConnectionState
from statesock.sources import ServerInitiated, default_reconnect_policy
from tests.conftest import virtual_time

DATA = Path(__file__).parent / "data"


def server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(DATA / "localhost.crt", DATA / "localhost.key")
    return context


async def hold(ws: ServerConnection) -> None:
    await ws.wait_closed()


@virtual_time
async def test_untrusted_certificate_fails_with_tls_failure_and_is_not_retried() -> None:
    async with serve(hold, "127.0.0.1", 0, ssl=server_context()) as server:
        port = server.sockets[0].getsockname()[1]
        # No ssl argument: a wss:// URL gets the system's default TLS context.
        client = WebSocketClient(f"wss://127.0.0.1:{port}/", lambda data: data, ack_required=False)
        with pytest.raises(ConnectFailed) as info:
            await client.connect()
        source = info.value.source
        assert isinstance(source, ServerInitiated)
        assert isinstance(source.error, TLSFailure)
        assert source.error.certificate
        assert not default_reconnect_policy(source)
        await client.close()


@virtual_time
async def test_trusted_certificate_connects() -> None:
    async with serve(hold, "127.0.0.1", 0, ssl=server_context()) as server:
        port = server.sockets[0].getsockname()[1]
        trust = ssl.create_default_context(cafile=str(DATA / "localhost.crt"))
        client = WebSocketClient(
            f"wss://127.0.0.1:{port}/", lambda data: data, ack_required=False, ssl=trust
        )
        snapshot = await client.connect()
        assert snapshot.state is ConnectionState.CONNECTED
        await client.close()
