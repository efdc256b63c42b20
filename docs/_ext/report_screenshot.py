"""Regenerate docs/_static/report.png: a screenshot of ``statesock report`` for a small fleet.

Six clients with recovery run for about ten seconds against a
:class:`~statesock.testing.TestServer` that restarts, crashes, goes silent and finally
closes with 1008, writing their JSON-lines transition log the way the logging page's
structlog recipe does. ``statesock report`` turns the log into its HTML page, and headless
Chromium photographs it. Run from the repository root (needs Chromium)::

    .venv/bin/python docs/_ext/report_screenshot.py

The PNG is committed; the docs build never runs this (no browser needed to build the site).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import structlog

from statesock import ConnectionRecoveryHandler, WebSocketClient
from statesock.testing import TestServer, auth_hook, decode_message

OUT = Path(__file__).resolve().parent.parent / "_static" / "report.png"


async def fleet(log: Path) -> None:
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=log.open("a")),
    )
    async with TestServer(token="t") as server:
        clients = [
            WebSocketClient(
                server.url,
                decode_message,
                on_connection_established=auth_hook("t"),
                ping_interval=0.5,
                pong_timeout=0.25,
                label=f"feed-{n}",
            )
            for n in range(1, 7)
        ]
        handlers = [ConnectionRecoveryHandler(client) for client in clients]
        for client in clients:
            await client.connect()
            await asyncio.sleep(0.15)
        await asyncio.sleep(1)
        await server.close_all(1012, "service restart")
        await asyncio.sleep(1.5)
        await server.kill()  # a crash: no close frame, nothing listening
        await asyncio.sleep(1.5)
        await server.start()
        await asyncio.sleep(2)
        server.silent = True  # a frozen server: health checks go unanswered
        await asyncio.sleep(1)
        server.silent = False
        await asyncio.sleep(2.5)
        await server.close_all(1008, "policy violation")  # the policy stops
        await asyncio.sleep(0.5)
        for handler in handlers:
            handler.close()
        for client in clients:
            await client.close()


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("report_screenshot: Chromium is not installed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        log, page = Path(tmp) / "fleet.jsonl", Path(tmp) / "report.html"
        asyncio.run(fleet(log))
        statesock = Path(sys.executable).with_name("statesock")
        subprocess.run(
            [statesock, "report", log.name, "-o", page.name, "--title", "Six clients, one bad day"],
            check=True,
            cwd=tmp,
        )
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                "--window-size=1280,1500",
                f"--screenshot={OUT}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
