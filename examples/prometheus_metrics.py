"""statesock's metrics in Prometheus, through OpenTelemetry's Prometheus exporter.

statesock reports through the OpenTelemetry *API* only (the ``statesock[otel]`` extra); the
app picks the SDK and the exporter, once, for every instrumented library it uses. Here: a
``PrometheusMetricReader`` behind the global ``MeterProvider``, and ``prometheus_client``'s
HTTP server for Prometheus to scrape. No exposition format of statesock's own.

    pip install 'statesock[otel]' opentelemetry-sdk opentelemetry-exporter-prometheus
    python -m examples.prometheus_metrics [--port 9464]

The demo connects a client to a local :class:`~statesock.testing.TestServer`, kills and
restarts the server so that there is a reconnect to see, then prints the ``statesock_``
lines of its own ``/metrics`` page; among them (the ``otel_scope_*`` labels left out)::

    statesock_state_changes_total{statesock_client="demo",statesock_state="connected"} 2.0
    statesock_disconnections_total{statesock_client="demo",statesock_disconnection_source="server",
                                   statesock_state="connected"} 1.0
    statesock_reconnect_duration_seconds_count{statesock_client="demo",
                                               statesock_disconnection_source="server"} 1.0
    statesock_messages_total{network_io_direction="receive",statesock_client="demo"} 7.0
    statesock_clients{statesock_client="demo",statesock_state="connected"} 1.0
"""

from __future__ import annotations

import argparse
import asyncio
import urllib.request
from typing import Any

# Neither is a dependency of statesock, nor of its test suite: install them to run this.
from opentelemetry import metrics
from opentelemetry.exporter.prometheus import (  # type: ignore[import-not-found, unused-ignore]
    PrometheusMetricReader,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from prometheus_client import start_http_server  # type: ignore[import-not-found, unused-ignore]

from statesock import ConnectionState, WebSocketClient
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import DelayList
from statesock.testing import TestServer, auth_hook, decode_message


def serve_prometheus(port: int) -> Any:
    """Expose every OpenTelemetry metric of this process on ``127.0.0.1:port/metrics`` (0:
    any free port); returns the HTTP server (``server_port``; ``shutdown()`` to stop)."""
    reader = PrometheusMetricReader()  # feeds prometheus_client's default registry
    resource = Resource.create({"service.name": "statesock-demo"})
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
    server, _thread = start_http_server(port, addr="127.0.0.1")
    return server


async def demo(port: int) -> str:
    """Run a client through a server crash; return the ``statesock_`` lines Prometheus sees."""
    http = serve_prometheus(port)
    server = await TestServer().start()
    # No meter_provider option: the client takes its meter from the global provider.
    client = WebSocketClient(
        server.url, decode_message, on_connection_established=auth_hook("t"), label="demo"
    )
    recovery = ConnectionRecoveryHandler(client, strategy=DelayList([0.2]))
    try:
        await client.connect()
        await server.send_burst(5)
        await server.kill()  # a crash: no close frame
        await client.wait_for(ConnectionState.DISCONNECTED)
        await server.start()  # the same port: recovery reconnects
        await client.wait_for(ConnectionState.CONNECTED)
        page = await asyncio.to_thread(_scrape, f"http://127.0.0.1:{http.server_port}/metrics")
    finally:
        recovery.close()
        await client.close()
        await server.stop()
        http.shutdown()
    return "\n".join(line for line in page.splitlines() if line.startswith("statesock_"))


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9464, help="the /metrics port (0: any)")
    print(asyncio.run(demo(parser.parse_args().port)))


if __name__ == "__main__":
    main()
