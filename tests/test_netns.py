"""Real network faults: client and server in two network namespaces joined by a veth pair.

The client runs here (the root namespace of this sandbox); the server runs in a namespace
this test creates, on an address of that namespace only. Faults are real: the link is set
down, the route is removed. These tests need root and ``ip netns``; elsewhere they skip
with the reason. Time is real, so intervals are short (ping 0.3 s, pong 0.2 s).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from statesock.client import WebSocketClient
from statesock.machine import ConnectionState, StateChange
from statesock.network import RouteNetworkMonitor
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import DelayList
from statesock.sources import NoPongReceived, SystemInitiated
from statesock.testing import auth_hook, decode_message

S = ConnectionState
ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.netns


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _netns_unavailable() -> str | None:
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "network namespaces need root"
    probe = f"ssp{os.getpid() % 100000}"
    result = _ip("netns", "add", probe, check=False)
    if result.returncode != 0:
        return f"`ip netns add` failed: {result.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


@dataclass
class Namespace:
    name: str
    host_if: str
    subnet: str
    client_ip: str
    server_ip: str
    server: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"ws://{self.server_ip}:{self.port}/"


@pytest.fixture
def netns() -> Iterator[Namespace]:
    reason = _netns_unavailable()
    if reason is not None:
        print(f"skipping namespace tests: {reason}")
        pytest.skip(reason)
    tag = os.getpid() % 100000
    name, host_if, ns_if = f"ssk{tag}", f"ssk{tag}a", f"ssk{tag}b"
    octet = tag % 250 + 1
    subnet = f"10.213.{octet}.0/30"
    client_ip, server_ip = f"10.213.{octet}.1", f"10.213.{octet}.2"
    _ip("netns", "add", name)
    server: subprocess.Popen[str] | None = None
    try:
        # A fallback for the namespace's subnet, so that with the veth route gone (or down)
        # packets to the test host are refused here instead of taking the default route
        # out of this machine.
        _ip("route", "add", "unreachable", subnet, "metric", "4000")
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", name)
        _ip("addr", "add", f"{client_ip}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{server_ip}/30", "dev", ns_if)
        _ip("-n", name, "link", "set", ns_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        server = subprocess.Popen(
            ["ip", "netns", "exec", name, sys.executable, "-m", "tests.netns_server", server_ip],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert server.stdout is not None
        port = int(server.stdout.readline())
        yield Namespace(name, host_if, subnet, client_ip, server_ip, server, port)
    finally:
        if server is not None:
            server.kill()
            server.wait()
            if server.stdout is not None:
                server.stdout.close()
        _ip("link", "del", host_if, check=False)
        _ip("route", "del", "unreachable", subnet, "metric", "4000", check=False)
        _ip("netns", "del", name, check=False)


def _client(url: str, ping_interval: float = 0.3) -> WebSocketClient:
    return WebSocketClient(
        url,
        decode_message,
        on_connection_established=auth_hook("t"),
        ping_interval=ping_interval,
        pong_timeout=0.2,
        connect_timeout=0.5,
        auth_timeout=0.5,
        close_timeout=0.2,
    )


def test_link_down_is_detected_by_ping_and_recovered(netns: Namespace) -> None:
    async def scenario() -> list[tuple[str, str, str]]:
        client = _client(netns.url)
        handler = ConnectionRecoveryHandler(client, strategy=DelayList([0.2]))
        seen: list[tuple[str, str, str]] = []
        client.add_listener(
            lambda r: (
                seen.append((r.previous.value, r.current.value, r.source.kind if r.source else ""))
                if isinstance(r, StateChange)
                else None
            )
        )
        await client.connect()
        _ip("link", "set", netns.host_if, "down")
        await asyncio.wait_for(client.wait_for(S.DISCONNECTED), 3)
        assert client.state.source == NoPongReceived()
        await asyncio.sleep(1.0)  # attempts fail while the link is down
        assert client.state.state is not S.CONNECTED
        _ip("link", "set", netns.host_if, "up")
        await asyncio.wait_for(client.wait_for(S.CONNECTED), 10)
        before_close = list(seen)
        handler.close()
        await client.close()
        return before_close

    seen = asyncio.run(scenario())
    assert seen[3:5] == [
        ("connected", "disconnecting", "no_pong"),
        ("disconnecting", "disconnected", "no_pong"),
    ]
    assert seen[-3:] == [
        ("disconnected", "connecting", ""),
        ("connecting", "authenticating", ""),
        ("authenticating", "connected", ""),
    ]


def test_route_removed_is_reported_offline_and_restored(netns: Namespace) -> None:
    async def scenario() -> None:
        # Pings far apart: this test is about the monitor noticing first.
        client = _client(netns.url, ping_interval=5.0)
        monitor = RouteNetworkMonitor(netns.server_ip, netns.port, interval=0.1)
        await monitor.start()
        handler = ConnectionRecoveryHandler(client, monitor, strategy=DelayList([0.2]))
        attempts: list[float] = []
        client.add_listener(
            lambda r: (
                attempts.append(r.at)
                if isinstance(r, StateChange) and r.current is S.CONNECTING
                else None
            )
        )
        await client.connect()
        _ip("route", "del", netns.subnet, "dev", netns.host_if)
        await asyncio.wait_for(client.wait_for(S.DISCONNECTED), 3)
        assert client.state.source == SystemInitiated("network unavailable")
        assert not monitor.available
        offline_attempts = len(attempts)
        await asyncio.sleep(1.5)
        assert len(attempts) == offline_attempts  # nothing tried while offline
        _ip("route", "add", netns.subnet, "dev", netns.host_if)
        await asyncio.wait_for(client.wait_for(S.CONNECTED), 5)
        assert monitor.available
        handler.close()
        await client.close()
        await monitor.stop()

    asyncio.run(scenario())
