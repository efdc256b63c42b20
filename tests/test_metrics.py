"""OpenTelemetry metrics (statesock.metrics): each instrument's name, unit and values, read
with the SDK's in-memory reader from clients of real loopback servers that are killed and
restarted (virtual time); the global provider and a missing API in subprocesses.
"""

from __future__ import annotations

import asyncio
import gc
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk.metrics", reason="needs the OpenTelemetry SDK (dev extra)")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Histogram,
    HistogramDataPoint,
    InMemoryMetricReader,
    Metric,
    NumberDataPoint,
    Sum,
)

from statesock.client import WebSocketClient
from statesock.exceptions import SendAbandoned, SendBufferFull, SendExpired
from statesock.machine import ACTIVE_STATES, ConnectionState, InternalTransition, StateChange
from statesock.metrics import CLIENT, DIRECTION, INSTRUMENTS, OUTCOME, SOURCE, STATE
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import DelayList
from statesock.states import Trigger
from statesock.subscriptions import Overflow
from statesock.testing import AppEvent, TestServer, decode_message
from tests.conftest import make_client, virtual_time

S = ConnectionState
ROOT = Path(__file__).resolve().parent.parent
Attrs = frozenset[tuple[str, Any]]


def collect(reader: InMemoryMetricReader) -> dict[str, Metric]:
    """Every metric the reader collects now, by name (statesock's scope only)."""
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, Metric] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "statesock"
            for metric in scope.metrics:
                found[metric.name] = metric
    return found


def values(metric: Metric) -> dict[Attrs, float]:
    """A counter's value per attribute set."""
    points = metric.data.data_points
    assert all(isinstance(p, NumberDataPoint) for p in points)
    return {frozenset((p.attributes or {}).items()): p.value for p in points}  # type: ignore[union-attr]


def histogram(metric: Metric) -> dict[Attrs, HistogramDataPoint]:
    assert isinstance(metric.data, Histogram)
    return {frozenset((p.attributes or {}).items()): p for p in metric.data.data_points}


def attrs(**kwargs: str) -> Attrs:
    names = {"client": CLIENT, "state": STATE, "source": SOURCE, "direction": DIRECTION}
    return frozenset((names.get(key, OUTCOME), value) for key, value in kwargs.items())


def records_of(client: WebSocketClient) -> list[Any]:
    records: list[Any] = []
    client.add_listener(records.append)
    return records


def check_described(metric: Metric) -> None:
    """Name, unit, description and kind as statesock.metrics.INSTRUMENTS lists them."""
    kind, unit, description = INSTRUMENTS[metric.name]
    assert (metric.unit, metric.description) == (unit, description)
    if kind == "histogram":
        assert isinstance(metric.data, Histogram)
    else:
        assert isinstance(metric.data, Sum)
        assert metric.data.is_monotonic == (kind != "observable_up_down_counter")


def sdk() -> tuple[MeterProvider, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    return MeterProvider(metric_readers=[reader]), reader


@virtual_time
async def test_metrics_of_a_client_whose_server_is_killed_and_restarted() -> None:
    provider, reader = sdk()
    server = await TestServer().start()
    server.pong_delay = 0.25
    client = make_client(
        server.url, label="feed", meter_provider=provider, ping_interval=5, pong_timeout=1
    )
    handler = ConnectionRecoveryHandler(client, strategy=DelayList([2.0]))
    records = records_of(client)
    await client.connect()
    await server.send_burst(3, size=10)
    await client.send({"type": "hello"})
    await asyncio.sleep(11)  # health checks at 5 and 10 s, each answered 0.25 s later
    await server.kill()
    await asyncio.sleep(5)  # refused attempts, 2 s apart
    await server.start()
    await client.wait_for(S.CONNECTED)
    found = collect(reader)
    for metric in found.values():
        check_described(metric)
    changes = [r for r in records if isinstance(r, StateChange)]
    feed = attrs(client="feed")

    # State changes, by the state entered.
    entered = Counter(change.current.value for change in changes)
    assert entered[S.CONNECTED.value] == 2
    assert values(found["statesock.state.changes"]) == {
        attrs(client="feed", state=state): count for state, count in entered.items()
    }
    # Disconnections, by source and the state left: the crash, then refused attempts.
    lost = Counter(
        (c.source.kind if c.source else "", c.previous.value)
        for c in changes
        if c.previous in ACTIVE_STATES and c.current not in ACTIVE_STATES
    )
    assert lost[("server", "connected")] == 1
    assert lost[("server", "connecting")] >= 1
    assert values(found["statesock.disconnections"]) == {
        attrs(client="feed", source=kind, state=state): n for (kind, state), n in lost.items()
    }
    # Reconnect attempts: the connects recovery fired.
    attempts = sum(c.reconnect for c in changes)
    assert attempts >= 2
    assert attempts == client.stats.reconnects
    assert values(found["statesock.reconnect.attempts"]) == {feed: attempts}
    # Time to reconnect: one sample, from leaving connected to connected again.
    left = next(c for c in changes if c.previous is S.CONNECTED)
    back = changes[-1]
    assert back.current is S.CONNECTED
    [(key, sample)] = histogram(found["statesock.reconnect.duration"]).items()
    assert key == attrs(client="feed", source="server")
    assert sample.count == 1
    assert sample.sum == pytest.approx(back.at - left.at)
    assert 5.0 <= sample.sum <= 8.0  # the crash at 11 s, the restart at 16 s, retries 2 s apart
    # Health-check round trips: the two answered checks, 0.25 s each.
    pongs = [r for r in records if isinstance(r, InternalTransition) and r.trigger is Trigger.PONG]
    assert len(pongs) == 2
    [(key, rtt)] = histogram(found["statesock.health_check.round_trip"]).items()
    assert key == feed
    assert rtt.count == 2
    assert rtt.sum == pytest.approx(0.5, abs=0.01)
    assert rtt.explicit_bounds[0] == 0.001  # seconds, the advisory buckets
    # Messages and bytes: ack, 3 events, 2 pongs, ack in; auth, hello, auth out.
    stats = client.stats
    assert (stats.messages_received, stats.messages_sent) == (7, 3)
    assert values(found["statesock.messages"]) == {
        attrs(client="feed", direction="receive"): 7,
        attrs(client="feed", direction="transmit"): 3,
    }
    assert values(found["statesock.io"]) == {
        attrs(client="feed", direction="receive"): stats.bytes_received,
        attrs(client="feed", direction="transmit"): stats.bytes_sent,
    }
    assert stats.bytes_received > 3 * 10
    assert values(found["statesock.events.dropped"]) == {feed: 0}
    assert values(found["statesock.subscribers.stalled"]) == {feed: 0}
    assert values(found["statesock.clients"]) == {
        attrs(client="feed", state=state.value): int(state is S.CONNECTED) for state in S
    }
    assert "statesock.send_buffer.outcomes" not in found  # no send buffer: nothing to count
    # Every point names the client.
    for metric in found.values():
        for point in metric.data.data_points:
            assert (point.attributes or {})[CLIENT] == "feed"
    handler.close()
    await client.close()
    await server.stop()
    provider.shutdown()


@virtual_time
async def test_send_buffer_outcomes_written_expired_full_and_abandoned() -> None:
    provider, reader = sdk()
    async with TestServer() as server:
        client = make_client(server.url, label="buf", meter_provider=provider)
        handler = ConnectionRecoveryHandler(
            client, strategy=DelayList([30.0]), send_buffer_size=2, send_ttl=25
        )
        await client.connect()
        await server.close_all(1011)
        await client.wait_for(S.DISCONNECTED)
        with pytest.raises(SendExpired):
            await client.send("late")  # waits 25 s of the 30 s backoff
        written = [asyncio.ensure_future(client.send(m)) for m in ("a", "b")]
        await asyncio.sleep(0)
        with pytest.raises(SendBufferFull):
            await client.send("c")
        await asyncio.gather(*written)  # the reconnect at 30 s writes them
        await server.close_all(1011)
        await client.wait_for(S.DISCONNECTED)
        abandoned = asyncio.ensure_future(client.send("d"))
        await asyncio.sleep(0)
        await client.disconnect()
        with pytest.raises(SendAbandoned):
            await abandoned
        found = collect(reader)
        check_described(found["statesock.send_buffer.outcomes"])
        assert values(found["statesock.send_buffer.outcomes"]) == {
            attrs(client="buf", outcome="written"): 2,
            attrs(client="buf", outcome="expired"): 1,
            attrs(client="buf", outcome="full"): 1,
            attrs(client="buf", outcome="abandoned"): 1,
        }
        assert (client.stats.sends_expired, client.stats.sends_abandoned) == (1, 1)
        handler.close()
        await client.close()
    provider.shutdown()


@virtual_time
async def test_dropped_events_and_a_stalled_subscriber_are_counted() -> None:
    provider, reader = sdk()
    async with TestServer() as server:
        client = make_client(
            server.url, label="slow", meter_provider=provider, stall_timeout=5.0,
            event_queue_size=10,
        )  # fmt: skip
        await client.connect()
        dropping = client.events(AppEvent, maxsize=2, overflow=Overflow.DROP_NEWEST)
        forgotten = client.events(AppEvent)  # lossless, never read: cut off after 5 s
        await server.send_burst(20)
        await asyncio.sleep(6)
        found = collect(reader)
        assert client.stats.events_dropped == 18  # it held 2 of the 20
        assert values(found["statesock.events.dropped"]) == {attrs(client="slow"): 18}
        assert values(found["statesock.subscribers.stalled"]) == {attrs(client="slow"): 1}
        assert values(found["statesock.messages"])[attrs(client="slow", direction="receive")] == 21
        del dropping, forgotten
        await client.close()
    provider.shutdown()


@virtual_time
async def test_an_unsolicited_pong_is_not_a_second_round_trip_sample() -> None:
    provider, reader = sdk()
    async with TestServer() as server:
        server.pong_delay = 0.5
        client = make_client(
            server.url, label="rtt", meter_provider=provider, ping_interval=5, pong_timeout=1
        )
        records = records_of(client)
        await client.connect()
        await asyncio.sleep(6)  # one check at 5 s, answered at 5.5 s
        await server.broadcast({"type": "health.check"})  # a pong nobody asked for
        await asyncio.sleep(1)
        pongs = [r for r in records if isinstance(r, InternalTransition)]
        assert [r.trigger for r in pongs] == [Trigger.PONG, Trigger.PONG]
        [sample] = histogram(collect(reader)["statesock.health_check.round_trip"]).values()
        assert sample.count == 1
        assert sample.sum == pytest.approx(0.5, abs=0.01)
        await client.close()
    provider.shutdown()


def test_clients_of_one_provider_are_reported_apart_and_forgotten_when_gone() -> None:
    provider, reader = sdk()
    url = "ws://127.0.0.1:9/"
    first = WebSocketClient(url, decode_message, label="a", meter_provider=provider)
    second = WebSocketClient(url, decode_message, label="b", meter_provider=provider)
    initialized = attrs(client="a", state="initialized")
    states = values(collect(reader)["statesock.clients"])
    assert states[initialized] == 1
    assert states[attrs(client="b", state="initialized")] == 1
    assert sum(states.values()) == 2  # each client is in one state
    del second
    gc.collect()
    # Metrics hold clients weakly: a collected client is no longer observed.
    states = values(collect(reader)["statesock.clients"])
    assert {dict(key)[CLIENT] for key, value in states.items() if value} == {"a"}
    assert first._metrics is not None
    provider.shutdown()


def test_a_provider_that_takes_no_weak_reference_still_reports_every_client() -> None:
    provider, reader = sdk()

    class Slotted:  # a wrapper with __slots__: no weak reference to key it by
        __slots__ = ("inner",)

        def __init__(self, inner: MeterProvider) -> None:
            self.inner = inner

        def get_meter(self, *args: Any, **kwargs: Any) -> Any:
            return self.inner.get_meter(*args, **kwargs)

    wrapper: Any = Slotted(provider)
    url = "ws://127.0.0.1:9/"
    clients = [
        WebSocketClient(url, decode_message, label=name, meter_provider=wrapper)
        for name in ("x", "y")
    ]
    states = values(collect(reader)["statesock.clients"])
    assert {dict(key)[CLIENT] for key, value in states.items() if value} == {"x", "y"}
    del clients
    provider.shutdown()


def test_meter_provider_must_be_a_meter_provider() -> None:
    with pytest.raises(TypeError, match="meter_provider must be an OpenTelemetry MeterProvider"):
        make_client("ws://127.0.0.1:9/", meter_provider="prometheus")


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_without_opentelemetry_nothing_is_imported_and_a_client_works() -> None:
    out = run_python(
        """
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # not importable, as without the extra

        from statesock.testing import TestServer
        from tests.conftest import make_client

        async def main():
            async with TestServer() as server:
                client = make_client(server.url)
                await client.connect()
                await server.send_burst(2)
                await client.send({"type": "hello"})
                await asyncio.sleep(0.1)
                await client.close()
                print("metrics", client._metrics, "received", client.stats.messages_received)
            try:
                make_client(server.url, meter_provider=type("P", (), {"get_meter": print})())
            except ImportError as exc:
                print("refused:", exc)

        asyncio.run(main())
        print("loaded", sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    assert "metrics None received 3" in out
    assert "refused: meter_provider needs OpenTelemetry: pip install 'statesock[otel]'" in out
    assert "loaded ['opentelemetry']" in out  # only the blocking None entry itself


def test_the_global_provider_is_used_even_when_set_after_the_first_client() -> None:
    out = run_python(
        """
        import asyncio, logging
        logging.basicConfig(level=logging.WARNING)
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from statesock.testing import TestServer
        from tests.conftest import make_client

        async def main():
            async with TestServer() as server:
                early = make_client(server.url, label="early")  # the global is a proxy yet
                reader = InMemoryMetricReader()
                provider = MeterProvider(metric_readers=[reader])
                metrics.set_meter_provider(provider)
                late = make_client(server.url, label="late")
                explicit = make_client(server.url, label="explicit", meter_provider=provider)
                await early.connect()
                data = reader.get_metrics_data()
                for scope in data.resource_metrics[0].scope_metrics:
                    for metric in scope.metrics:
                        for point in metric.data.data_points:
                            attributes = dict(point.attributes)
                            if metric.name == "statesock.clients" and point.value:
                                print("state", attributes["statesock.client"],
                                      attributes["statesock.state"])
                            if metric.name == "statesock.state.changes":
                                print("change", attributes["statesock.client"],
                                      attributes["statesock.state"], point.value)
                for client in (early, late, explicit):
                    await client.close()

        asyncio.run(main())
        """
    )
    lines = set(out.splitlines())
    assert {"state early connected", "state late initialized", "state explicit initialized"} <= (
        lines
    )
    assert "change early connected 1" in lines


def test_the_prometheus_example_shows_each_metric_on_its_metrics_page() -> None:
    pytest.importorskip(
        "opentelemetry.exporter.prometheus", reason="the example's exporter is not installed"
    )
    done = subprocess.run(
        [sys.executable, "-m", "examples.prometheus_metrics", "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    page = done.stdout
    for line in (
        'statesock_state_changes_total{.*statesock_client="demo",statesock_state="connected"} 2.0',
        'statesock_disconnections_total{.*statesock_disconnection_source="server",'
        'statesock_state="connected"} 1.0',
        'statesock_reconnect_attempts_total{.*statesock_client="demo"} 1.0',
        'statesock_reconnect_duration_seconds_count{.*statesock_disconnection_source="server"} 1.0',
        'statesock_messages_total{network_io_direction="receive",.*statesock_client="demo"} 7.0',
        'statesock_io_bytes_total{network_io_direction="transmit",.*',
        'statesock_clients{.*statesock_client="demo",statesock_state="connected"} 1.0',
    ):
        assert re.search(line.replace("{", r"\{").replace("}", r"\}"), page), line


def test_the_readme_metrics_section_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if "\n## Metrics\n" not in readme:
        pytest.skip("the README has no Metrics section yet")
    section = readme.split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    out = run_python(code)  # the exporter prints at exit, when the provider shuts down
    assert '"name": "statesock.clients"' in out
    assert '"statesock.client": "prices"' in out
