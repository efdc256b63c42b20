"""The documentation site (docs/): it builds, its reference is complete, and its code runs.

* The site is built once per session, the way ``make docs`` builds it (Sphinx, warnings as
  errors, every cross-reference checked), into a temporary folder; ``make docs`` passes its
  own build instead (``STATESOCK_DOCS_HTML``). Without Sphinx (the ``docs`` extra) these
  tests skip loudly, and fail when ``STATESOCK_DOCS_REQUIRED=1``, which ``make docs`` sets:
  CI runs ``make docs`` after ``make test``, so a CI run cannot pass without them. (``CI=true``
  alone cannot be the switch: ``make test``, ``make lowest`` and ``make wheel-smoke`` run
  the suite without the docs extra, and the sdist ships no docs/ at all.)
* Every option of ``WebSocketClient`` (the keys of ``ClientOptions``) and of
  ``ConnectionRecoveryHandler`` (its parameters) has a row with a type, a default and a
  meaning in the built reference, and every public name is documented there.
* Every ```` ```python ```` block of every page runs, in order, in one namespace per page, as
  a reader would paste them into a file; with the Quick start's ``decode`` and
  ``authenticate`` defined first, as the pages say. ``wss://example.test`` becomes a local
  server speaking the page's protocol, and ``asyncio.run(main())`` becomes ``await main()``
  on a virtual-time loop (looptime), with the server on the same loop (the approach of
  tests/test_lifecycle.py for the README's Quick start). Each page's scenario says what its
  output must show, so a block that silently did nothing fails.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import dataclasses
import html
import importlib
import importlib.util
import inspect
import io
import json
import logging
import os
import re
import subprocess
import sys
import threading
import types
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from statesock.recovery import ConnectionRecoveryHandler
from statesock.settings import ClientOptions
from statesock.testing import TestServer
from tests.conftest import run_virtual

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
REQUIRED = os.environ.get("STATESOCK_DOCS_REQUIRED") == "1"
FENCE = re.compile(r"^```python\n(.*?)^```\s*$", re.DOTALL | re.MULTILINE)
EXAMPLE_URL = "wss://example.test"

# The modules of the public API: every name of their __all__ is in the reference.
PUBLIC_MODULES = (
    "statesock",
    "statesock.client",
    "statesock.settings",
    "statesock.stats",
    "statesock.recovery",
    "statesock.retry",
    "statesock.network",
    "statesock.sources",
    "statesock.events",
    "statesock.exceptions",
    "statesock.machine",
    "statesock.states",
    "statesock.subscriptions",
    "statesock.testing",
    "statesock.redaction",
    "statesock.transition_log",
    "statesock.log_schema",
    "statesock.ping",
)


def _missing(what: str) -> None:
    if REQUIRED:
        pytest.fail(f"{what} (make docs requires it: STATESOCK_DOCS_REQUIRED=1)")
    pytest.skip(f"SKIPPED LOUDLY: {what}; `make docs` installs the docs extra and runs these")


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built HTML site: ``make docs``'s build, or one made here like it."""
    if not DOCS.is_dir():
        _missing("no docs/ folder here (the sdist does not ship the documentation)")
    given = os.environ.get("STATESOCK_DOCS_HTML")
    if given:
        built = Path(given) if Path(given).is_absolute() else ROOT / given
        assert (built / "index.html").is_file(), f"STATESOCK_DOCS_HTML={given}: no index.html"
        return built
    if importlib.util.find_spec("sphinx") is None:
        _missing("Sphinx is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("docs") / "html"
    command = [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-q"]
    build = subprocess.run(
        [*command, str(DOCS), str(out)], capture_output=True, text=True, timeout=300, check=False
    )
    assert build.returncode == 0, f"the docs build failed:\n{build.stdout}\n{build.stderr}"
    return out


# -- the reference -------------------------------------------------------------------------------


def _page(site: Path, name: str) -> str:
    return (site / name).read_text(encoding="utf-8")


def _option_rows(page: str, kind: str) -> dict[str, list[str]]:
    """Each option row of a generated options table: name -> its cells, as text."""
    rows: dict[str, list[str]] = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.DOTALL):
        anchor = re.search(rf'id="{kind}-option-([\w]+)"', row)
        if anchor:
            cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.DOTALL)
            rows[anchor.group(1)] = [
                html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in cells
            ]
    return rows


def _recovery_parameters() -> list[str]:
    signature = inspect.signature(ConnectionRecoveryHandler.__init__)
    return [name for name in signature.parameters if name != "self"]


@pytest.mark.timeout(300)
def test_every_client_option_is_in_the_reference_with_type_default_and_meaning(
    site: Path,
) -> None:
    rows = _option_rows(_page(site, "reference/client.html"), "client")
    assert sorted(rows) == sorted(ClientOptions.__annotations__)
    for name, (_name, kind, default, _unit, meaning) in rows.items():
        assert kind and default and len(meaning) > 20, (name, kind, default, meaning)
    assert rows["ping_interval"][1:4] == ["float | None", "25.0", "seconds"]
    assert rows["max_size"][3] == "bytes"


@pytest.mark.timeout(300)
def test_every_recovery_option_is_in_the_reference_with_type_default_and_meaning(
    site: Path,
) -> None:
    rows = _option_rows(_page(site, "reference/recovery.html"), "recovery")
    assert list(rows) == _recovery_parameters()
    for name, (_name, kind, default, _unit, meaning) in rows.items():
        assert kind and default and len(meaning) > 20, (name, kind, default, meaning)
    assert rows["stable_after"][1:4] == ["float", "10.0", "seconds"]


def _documented_ids(site: Path) -> set[str]:
    ids: set[str] = set()
    for page in (site / "reference").glob("*.html"):
        text = page.read_text(encoding="utf-8")
        ids.update(re.findall(r'<dt class="sig[^"]*" id="([^"]+)"', text))
        ids.update(re.findall(r'<span id="([^"]+)"></span>', text))
    return ids


def _candidates(module: str, name: str) -> set[str]:
    """The ids under which ``module.name`` may be documented (its own, or its origin's)."""
    found = {f"{module}.{name}"}
    obj = getattr(importlib.import_module(module), name)
    origin = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(origin, str) and isinstance(qualname, str):
        found.add(f"{origin}.{qualname}")
    if module == "statesock":  # the package re-exports: documented where they are defined
        found.update(f"{m}.{name}" for m in PUBLIC_MODULES)
    return found


@pytest.mark.timeout(300)
def test_every_public_name_is_in_the_reference(site: Path) -> None:
    ids = _documented_ids(site)
    missing = [
        f"{module}.{name}"
        for module in PUBLIC_MODULES
        for name in importlib.import_module(module).__all__
        if not _candidates(module, name) & ids
    ]
    assert missing == []


@pytest.mark.timeout(300)
def test_the_front_page_links_every_guide_page(site: Path) -> None:
    front = _page(site, "index.html")
    for page in ("getting-started", "state-machine", "recovery", "reference/client"):
        assert f'href="{page}.html' in front, page
    assert "connection.svg" in front


# -- the code blocks -------------------------------------------------------------------------


def python_blocks(page: Path) -> list[str]:
    return FENCE.findall(page.read_text(encoding="utf-8"))


def _pages_with_code() -> list[Path]:
    if not DOCS.is_dir():
        return []
    return sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts and python_blocks(p))


class _AwaitRun(ast.NodeTransformer):
    """``asyncio.run(x)`` as a statement becomes ``await x``."""

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        call = node.value
        if (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Attribute)
            and isinstance(call.func.value, ast.Name)
            and call.func.value.id == "asyncio"
            and call.func.attr == "run"
            and len(call.args) == 1
        ):
            return ast.copy_location(ast.Expr(ast.Await(call.args[0])), node)
        return node


def _compile(source: str, name: str) -> Any:
    tree = ast.fix_missing_locations(_AwaitRun().visit(ast.parse(source, name)))
    # dont_inherit: this file's `from __future__ import annotations` is not the page's.
    return compile(tree, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)


async def run_page(page: Path, base_url: str | None, namespace: dict[str, Any]) -> None:
    for number, block in enumerate(python_blocks(page), 1):
        source = block if base_url is None else block.replace(EXAMPLE_URL, base_url)
        result = eval(_compile(source, f"{page.name}, block {number}"), namespace)
        if inspect.iscoroutine(result):
            await result


def quick_start() -> str:
    """The Quick start's definitions (decode, authenticate, imports), without its run."""
    [first, *_] = python_blocks(DOCS / "getting-started.md")
    return first.replace("asyncio.run(main())", "")


# -- the servers the pages talk to ---------------------------------------------------------------


@dataclasses.dataclass
class Served:
    """What a scenario's server saw, for the page's checks."""

    url: str
    pongs: int = 0
    received: list[Any] = dataclasses.field(default_factory=list)


@contextlib.asynccontextmanager
async def feed(first: float = 1.0, then: float = 15.0) -> AsyncIterator[Served]:
    """The Quick start's protocol (TestServer): on each connection, five events after
    ``first`` seconds, then a close with 1000 after ``then`` seconds more."""
    tasks: set[asyncio.Task[None]] = set()

    async def feed_one(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await asyncio.sleep(first)
            for seq in range(5):
                await ws.send(json.dumps({"type": "event", "seq": seq}))
            await asyncio.sleep(then)
            await ws.close(1000, "bye")

    async def watch(server: TestServer) -> None:
        seen: set[str] = set()
        while True:
            for name, ws in list(server.connections.items()):
                if name not in seen:
                    seen.add(name)
                    task = asyncio.create_task(feed_one(ws))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
            await asyncio.sleep(0.01)

    async with TestServer() as server:
        watcher = asyncio.create_task(watch(server))
        try:
            yield Served(f"ws://127.0.0.1:{server.port}")
        finally:
            for task in (watcher, *tasks):
                task.cancel()
            await asyncio.gather(watcher, *tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[ServerConnection, Served], Any], **options: Any
) -> AsyncIterator[Served]:
    served = Served("")

    async def handle(ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await handler(ws, served)

    async with serve(handle, "127.0.0.1", 0, **options) as server:
        served.url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        yield served


async def _every(seconds: float, ws: ServerConnection, message: str) -> None:
    with contextlib.suppress(ConnectionClosed):
        while True:
            await asyncio.sleep(seconds)
            await ws.send(message)


async def engineio(ws: ServerConnection, served: Served) -> None:
    """Socket.IO over Engine.IO 4: open, CONNECT with auth, server pings, events, DISCONNECT."""
    await ws.send('0{"sid":"e-1","upgrades":[],"pingInterval":25000,"pingTimeout":20000}')
    connect = str(await ws.recv())
    served.received.append(connect)
    if not connect.startswith("40") or json.loads(connect[2:]).get("token") != "token":
        await ws.send('44{"message":"Not authorized"}')
        return
    await ws.send('40{"sid":"s-1"}')
    pinger = asyncio.create_task(_every(25, ws, "2"))
    try:
        async for data in ws:
            served.received.append(data)
            if data == "3":
                served.pongs += 1
            elif isinstance(data, str) and data.startswith("42"):
                name, *args = json.loads(data[2:])
                if name == "join":
                    for n in range(3):
                        await ws.send("42" + json.dumps([args[0], {"headline": f"story {n}"}]))
                    await asyncio.sleep(30)  # one ping answered on the way
                    await ws.send("41")
    finally:
        pinger.cancel()


async def centrifugo(ws: ServerConnection, served: Served) -> None:
    """Centrifugo's JSON protocol: connect, subscribe, pushes (one frame batched), {} pings."""
    connect = json.loads(await ws.recv())
    served.received.append(connect)
    assert connect["connect"]["token"]
    reply = {"client": "c-1", "version": "0", "ping": 25, "pong": True}
    await ws.send(json.dumps({"id": connect["id"], "connect": reply}))
    pinger = asyncio.create_task(_every(25, ws, "{}"))

    def push(offset: int) -> str:
        pub = {"data": {"text": f"item {offset}"}, "offset": offset}
        return json.dumps({"push": {"channel": "news", "pub": pub}})

    try:
        async for data in ws:
            message = json.loads(data)
            served.received.append(message)
            if message == {}:
                served.pongs += 1
            elif "subscribe" in message:
                await ws.send(json.dumps({"id": message["id"], "subscribe": {}}))
                await ws.send(push(1))
                await ws.send(push(2) + "\n" + push(3))
                await asyncio.sleep(30)  # one ping answered on the way
                await ws.close(3501, "terminal")
    finally:
        pinger.cancel()


async def prices(ws: ServerConnection, served: Served) -> None:
    """No auth, no ack: ticks after the subscription, then a normal close."""
    async for data in ws:
        served.received.append(json.loads(data))
        for symbol, price in (("ABC", 101.5), ("XYZ", 7.25), ("ABC", 101.75)):
            await ws.send(json.dumps({"symbol": symbol, "price": price}))
        await asyncio.sleep(1)
        await ws.close(1000, "market closed")


@dataclasses.dataclass(frozen=True)
class Scenario:
    server: Callable[[], contextlib.AbstractAsyncContextManager[Served]] | None
    expect: tuple[str, ...] = ()  # printed somewhere by the page's blocks
    check: Callable[[Served], bool] = lambda served: True
    # Blocking code (statesock.sync): the blocks run in this thread, in real time, and the
    # server on an event loop in a thread of its own.
    threaded: bool = False
    # Modules the page's code imports beyond statesock's dependencies (extras, the dev
    # extra's OpenTelemetry SDK): without them the page skips loudly (`make lowest`'s
    # virtualenv has none), and fails under `make docs`.
    needs: tuple[str, ...] = ()


SCENARIOS: dict[str, Scenario] = {
    "index.md": Scenario(feed, ("{'type': 'event', 'seq': 4}",)),
    "getting-started.md": Scenario(
        feed,
        (
            "{'type': 'event', 'seq': 0}",
            "connection ended: ServerInitiated(close_code=1000",
            "event 4",
            "ended: server closed with 1000: bye",
        ),
    ),
    "state-machine.md": Scenario(
        feed,
        (
            "initialized -> connecting",
            "trigger 'opened' is not allowed in state 'authenticating'",
            "disconnecting UserInitiated()",
            "authenticating -> connected (authenticated)",
            "connection id: c-",
            "disconnected UserInitiated()",
            "False True",
        ),
    ),
    "recovery.md": Scenario(
        feed,
        (
            "[0.15, 1.65, 1.07, 1.54, 1.37, 1.06, 1.51, 1.04, 1.43, 1.07, 2.18, 5.7, 14.61]",
            "4.0\nNone",
            "SystemInitiated(reason='network unavailable')",
            "1 message waiting",
            "sent after 1 reconnect",
            "connected with token-1",
        ),
    ),
    "heartbeats.md": Scenario(feed, ("3 pongs, last round trip",)),
    "delivery.md": Scenario(
        feed,
        (
            "got 2",
            "subscription dropped 0 events",
            "stored [0, 1, 2, 3, 4]",
            "[3, 4] dropped 3",
            "reading paused for 3.0 s",
            "stalled: 1",
            "still delivered 1",
            "subscriber events(dict) took nothing for 5 s",
        ),
    ),
    "logging.md": Scenario(
        feed,
        ("1 initialized -> connecting connect", "3 authenticating -> connected", "[REDACTED]"),
    ),
    "testing.md": Scenario(None),
    "metrics.md": Scenario(
        feed,
        (
            "statesock.state.changes {'statesock.client': 'prices', 'statesock.state': "
            "'connected'} 1",
            "statesock.messages {'statesock.client': 'prices', 'network.io.direction': "
            "'receive'} 6",
        ),
        needs=("opentelemetry.sdk",),
    ),
    "sync.md": Scenario(
        lambda: feed(first=0.2, then=0.5),
        (
            "{'type': 'event', 'seq': 4}",
            "connection ended: ServerInitiated(close_code=1000",
            "connected\nTrue UserInitiated()",
        ),
        threaded=True,
    ),
    "performance.md": Scenario(
        feed, ("connected over picows", "messages so far"), needs=("picows",)
    ),
    "cookbook/socketio.md": Scenario(
        lambda: serving(engineio),
        ("news [{'headline': 'story 2'}]", "ended: server error: disconnected by the server"),
        lambda served: served.pongs >= 1 and served.received[1] == '42["join", "news"]',
    ),
    "cookbook/centrifugo.md": Scenario(
        lambda: serving(centrifugo),
        ("news 1 {'text': 'item 1'}", "news 3 {'text': 'item 3'}", "server closed with 3501"),
        lambda served: served.pongs >= 1,
    ),
    "cookbook/plain-json.md": Scenario(
        lambda: serving(prices),
        ("XYZ 7.25", "ended: server closed with 1000: market closed - dropped 0"),
        lambda served: served.received == [{"op": "subscribe", "symbols": ["ABC", "XYZ"]}],
    ),
}


@contextlib.contextmanager
def _global_meter_provider_kept() -> Iterator[None]:
    """A page that installs a global OpenTelemetry MeterProvider (the API allows one per
    process, and other tests use it) installs nothing: the provider is shut down after."""
    try:
        from opentelemetry import metrics
    except ImportError:
        yield
        return
    providers: list[Any] = []
    original = metrics.set_meter_provider
    metrics.set_meter_provider = providers.append  # type: ignore[assignment]
    try:
        yield
    finally:
        metrics.set_meter_provider = original
        for provider in providers:
            provider.shutdown()


@contextlib.contextmanager
def _isolated(tmp_path: Path) -> Iterator[None]:
    """What a page may change for the process (cwd, logging, structlog, gc, the global
    OpenTelemetry provider), put back."""
    import gc

    import structlog

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    machine_level = logging.getLogger("transitions").level
    cwd = Path.cwd()
    os.chdir(tmp_path)
    try:
        with _global_meter_provider_kept():
            yield
    finally:
        os.chdir(cwd)
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
        logging.getLogger("transitions").setLevel(machine_level)
        factory = structlog.get_config().get("logger_factory")
        file = getattr(factory, "_file", None)
        structlog.reset_defaults()
        if file is not None and file not in (sys.stdout, sys.stderr):
            file.close()
        gc.unfreeze()


def run_threaded(page: Path, scenario: Scenario, namespace: dict[str, Any]) -> Served:
    """Run a page of blocking code here, its server on a loop of its own in another thread."""
    assert scenario.server is not None
    exec(compile(quick_start(), "getting-started.md", "exec", dont_inherit=True), namespace)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="docs-server", daemon=True)
    thread.start()
    server = scenario.server()
    try:
        served = asyncio.run_coroutine_threadsafe(server.__aenter__(), loop).result(10)
        try:
            for number, block in enumerate(python_blocks(page), 1):
                source = block.replace(EXAMPLE_URL, served.url)
                exec(compile(source, f"{page.name}, block {number}", "exec", dont_inherit=True),
                     namespace)  # fmt: skip
        finally:
            exit_server = server.__aexit__(None, None, None)
            asyncio.run_coroutine_threadsafe(exit_server, loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    left = [t.name for t in threading.enumerate() if t.name.startswith("statesock-sync-")]
    assert left == [], f"{page.name} left threads running: {left}"
    return served


PAGES = _pages_with_code()


def test_the_state_machine_page_describes_every_state_and_source() -> None:
    if not DOCS.is_dir():
        _missing("no docs/ folder here (the sdist does not ship the documentation)")
    from statesock import sources
    from statesock.states import ConnectionState

    text = (DOCS / "state-machine.md").read_text(encoding="utf-8")
    states = text.split("## States", 1)[1].split("\n## ", 1)[0]
    assert [s.value for s in ConnectionState if f"\n`{s.value}`\n: " not in states] == []
    kinds = [
        name
        for name in sources.__all__
        if isinstance(getattr(sources, name), type)
        and issubclass(getattr(sources, name), sources.DisconnectionSource)
        and name != "DisconnectionSource"
    ]
    described = text.split("## Disconnection sources", 1)[1].split("\n## ", 1)[0]
    assert [k for k in kinds if f"{{class}}`~statesock.sources.{k}`\n: " not in described] == []


def test_getting_started_shows_the_readme_quick_start_as_it_is() -> None:
    if not DOCS.is_dir():
        _missing("no docs/ folder here (the sdist does not ship the documentation)")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1]
    assert python_blocks(DOCS / "getting-started.md")[0] == FENCE.findall(section)[0]


def test_every_page_with_code_has_a_scenario() -> None:
    if not DOCS.is_dir():
        _missing("no docs/ folder here (the sdist does not ship the documentation)")
    names = {page.relative_to(DOCS).as_posix() for page in PAGES}
    assert names == set(SCENARIOS)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(DOCS).as_posix())
def test_the_python_blocks_of_the_page_run(page: Path, tmp_path: Path) -> None:
    name = page.relative_to(DOCS).as_posix()
    scenario = SCENARIOS[name]
    for needed in scenario.needs:
        if importlib.util.find_spec(needed.partition(".")[0]) is None or (
            importlib.util.find_spec(needed) is None
        ):
            _missing(f"{name} needs {needed}, which is not installed (the dev extra has it)")
    text = page.read_text(encoding="utf-8")
    assert scenario.server is not None or EXAMPLE_URL not in text, f"{name} needs a server"
    output = io.StringIO()

    # The page's code runs as a module of its own (dataclasses look their module up).
    module = types.ModuleType("statesock_docs_page")
    namespace = module.__dict__

    async def run() -> Served | None:
        if name != "getting-started.md":
            exec(compile(quick_start(), "getting-started.md", "exec", dont_inherit=True), namespace)
        if scenario.server is None:
            await run_page(page, None, namespace)
            return None
        async with scenario.server() as served:
            await run_page(page, served.url, namespace)
            return served

    served: Served | None
    sys.modules[module.__name__] = module
    try:
        with _isolated(tmp_path), contextlib.redirect_stdout(output):
            if scenario.threaded:
                served = run_threaded(page, scenario, namespace)
            else:
                served = run_virtual(run(), end=3_600)
    finally:
        del sys.modules[module.__name__]
    printed = output.getvalue()
    for expected in scenario.expect:
        assert expected in printed, f"{name}: {expected!r} not in:\n{printed}"
    if served is not None:
        assert scenario.check(served), f"{name}: the server saw {served}"
