"""Hostile constructor inputs (issue 18, item 6): each is refused at construction.

The specification: every case below raises a ``TypeError`` or ``ValueError`` when the object
is built (not at connect, not as an endless reconnect loop), and the message names the
parameter and shows the value that was refused. The second half checks that the good edge
values next to them are still accepted, and the one documented coercion (``DelayList``
stores its delays as a tuple of floats).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from statesock.client import WebSocketClient
from statesock.exceptions import InvalidURL
from statesock.network import (
    MIN_ROUTE_INTERVAL,
    ManualNetworkMonitor,
    RouteNetworkMonitor,
)
from statesock.recovery import ConnectionRecoveryHandler
from statesock.retry import DelayList, ExponentialBackoff, PacedBackoff
from statesock.settings import MAX_QUEUE_SIZE, ClientSettings
from statesock.sources import NoPongReceived
from statesock.testing import decode_message

URL = "ws://127.0.0.1:1/"
NAN = math.nan
INF = math.inf


def client(url: str = URL, **options: Any) -> WebSocketClient:
    return WebSocketClient(url, decode_message, **options)


def recovery(**options: Any) -> ConnectionRecoveryHandler:
    return ConnectionRecoveryHandler(client(), **options)


def encoded_by(encoder: Callable[[Any], Any]) -> str | bytes:
    return ClientSettings.check(
        URL, decode_message, None, None, None, message_encoder=encoder
    ).encode({"type": "auth"})


class NotAMonitor:
    """Has neither ``available`` nor ``subscribe``."""

    def __repr__(self) -> str:
        return "<NotAMonitor>"


class FuzzyMonitor:
    """Looks like a monitor, but ``available`` is not a bool."""

    available = "no"

    def subscribe(self, callback: Callable[[bool], None]) -> Callable[[], None]:
        return lambda: None


class NotAClient:
    def __repr__(self) -> str:
        return "<NotAClient>"


# (build, exception type, the parameter named, the value shown). Cases from the issue's list
# first, in its order; the ones after "-- more --" are their neighbours.
HOSTILE: list[tuple[str, Callable[[], object], type[Exception], str, str]] = [
    # DelayList
    ("DelayList([-1])", lambda: DelayList([-1]), ValueError, "delays", "-1"),
    ("DelayList([nan])", lambda: DelayList([NAN]), ValueError, "delays", "nan"),
    ("DelayList([inf])", lambda: DelayList([INF]), ValueError, "delays", "inf"),
    ("DelayList('abc')", lambda: DelayList("abc"), TypeError, "delays", "'abc'"),  # type: ignore[arg-type]
    ("DelayList(5)", lambda: DelayList(5), TypeError, "delays", "5"),  # type: ignore[arg-type]
    # ExponentialBackoff
    ("Exponential base=nan", lambda: ExponentialBackoff(base=NAN), ValueError, "base", "nan"),
    ("Exponential factor=nan", lambda: ExponentialBackoff(factor=NAN), ValueError, "factor", "nan"),
    ("Exponential cap=inf", lambda: ExponentialBackoff(cap=INF), ValueError, "cap", "inf"),
    (
        "Exponential max_attempts=-1",
        lambda: ExponentialBackoff(max_attempts=-1),
        ValueError,
        "max_attempts",
        "-1",
    ),
    (
        "Exponential max_retry_after=-1",
        lambda: ExponentialBackoff(max_retry_after=-1),
        ValueError,
        "max_retry_after",
        "-1",
    ),
    (
        "Exponential jitter='no'",
        lambda: ExponentialBackoff(jitter="no"),  # type: ignore[arg-type]
        TypeError,
        "jitter",
        "'no'",
    ),
    # PacedBackoff
    ("Paced cap=inf", lambda: PacedBackoff(cap=INF), ValueError, "cap", "inf"),
    ("Paced high=inf cap=inf", lambda: PacedBackoff(high=INF, cap=INF), ValueError, "high", "inf"),
    (
        "Paced paced_attempts=2.5",
        lambda: PacedBackoff(paced_attempts=2.5),  # type: ignore[arg-type]
        TypeError,
        "paced_attempts",
        "2.5",
    ),
    # Types that only fail later, or are read as true
    (
        "headers=['K: V']",
        lambda: client(headers=["X-Trace: 1"]),
        TypeError,
        "headers",
        "'X-Trace: 1'",
    ),
    (
        "ack_required='false'",
        lambda: client(ack_required="false"),
        TypeError,
        "ack_required",
        "'false'",
    ),
    (
        "retry_first_connect='no'",
        lambda: recovery(retry_first_connect="no"),
        TypeError,
        "retry_first_connect",
        "'no'",
    ),
    (
        "ManualNetworkMonitor(available='no')",
        lambda: ManualNetworkMonitor(available="no"),  # type: ignore[arg-type]
        TypeError,
        "available",
        "'no'",
    ),
    # URLs and labels that break lines (request smuggling, log injection)
    ("url with a space", lambda: client("ws://a.test/a b"), InvalidURL, "url", "'ws://a.test/a b'"),
    (
        "url with CRLF",
        lambda: client("ws://a.test/\r\nX-Injected: 1"),
        InvalidURL,
        "url",
        r"'ws://a.test/\r\nX-Injected: 1'",
    ),
    ("url with LF", lambda: client("ws://a.test/x\n"), InvalidURL, "url", r"'ws://a.test/x\n'"),
    ("url with a tab", lambda: client("ws://a.\ttest/"), InvalidURL, "url", r"'ws://a.\ttest/'"),
    (
        "label with a newline",
        lambda: client(label="ws-1\nINFO statesock forged line"),
        ValueError,
        "label",
        r"'ws-1\nINFO statesock forged line'",
    ),
    ("label with ANSI", lambda: client(label="\x1b[31mred"), ValueError, "label", r"'\x1b[31mred'"),
    ("label with NUL", lambda: client(label="a\x00b"), ValueError, "label", r"'a\x00b'"),
    # message_encoder: refused when it first answers, by ClientSettings.encode
    (
        "message_encoder -> int",
        lambda: encoded_by(lambda m: 42),
        TypeError,
        "message_encoder",
        "42",
    ),
    # Sizes and kinds
    (
        "event_queue_size=10**18",
        lambda: client(event_queue_size=10**18),
        ValueError,
        "event_queue_size",
        str(10**18),
    ),
    (
        "send_buffer_size=10**12",
        lambda: recovery(send_buffer_size=10**12),
        ValueError,
        "send_buffer_size",
        str(10**12),
    ),
    ("send_ttl=True", lambda: recovery(send_ttl=True), TypeError, "send_ttl", "True"),
    ("proxy='not a url'", lambda: client(proxy="not a url"), ValueError, "proxy", "'not a url'"),
    (
        "RouteNetworkMonitor(interval=1e-9)",
        lambda: RouteNetworkMonitor("127.0.0.1", 9, interval=1e-9),
        ValueError,
        "interval",
        "1e-09",
    ),
    # Wrong objects handed to the recovery handler
    (
        "recovery client=object",
        lambda: ConnectionRecoveryHandler(NotAClient()),  # type: ignore[arg-type]
        TypeError,
        "client",
        "<NotAClient>",
    ),
    (
        "recovery network_monitor=object",
        lambda: ConnectionRecoveryHandler(client(), NotAMonitor()),  # type: ignore[arg-type]
        TypeError,
        "network_monitor",
        "<NotAMonitor>",
    ),
    # -- more: neighbours of the cases above --------------------------------------------
    ("DelayList([True])", lambda: DelayList([True]), TypeError, "delays", "True"),
    ("DelayList(['1'])", lambda: DelayList(["1"]), TypeError, "delays", "'1'"),  # type: ignore[list-item]
    ("DelayList([1, -0.5])", lambda: DelayList([1, -0.5]), ValueError, "delays", "-0.5"),
    (
        "DelayList repeat='no'",
        lambda: DelayList([1], repeat="no"),  # type: ignore[arg-type]
        TypeError,
        "repeat",
        "'no'",
    ),
    (
        "Exponential base='1'",
        lambda: ExponentialBackoff(base="1"),  # type: ignore[arg-type]
        TypeError,
        "base",
        "'1'",
    ),
    (
        "Exponential max_attempts=2.5",
        lambda: ExponentialBackoff(max_attempts=2.5),  # type: ignore[arg-type]
        TypeError,
        "max_attempts",
        "2.5",
    ),
    (
        "Exponential max_attempts=True",
        lambda: ExponentialBackoff(max_attempts=True),
        TypeError,
        "max_attempts",
        "True",
    ),
    (
        "Exponential max_retry_after=inf",
        lambda: ExponentialBackoff(max_retry_after=INF),
        ValueError,
        "max_retry_after",
        "inf",
    ),
    ("Paced factor=nan", lambda: PacedBackoff(factor=NAN), ValueError, "factor", "nan"),
    ("Paced low=nan", lambda: PacedBackoff(low=NAN), ValueError, "low", "nan"),
    (
        "Paced paced_attempts=True",
        lambda: PacedBackoff(paced_attempts=True),
        TypeError,
        "paced_attempts",
        "True",
    ),
    (
        "Paced max_attempts=-1",
        lambda: PacedBackoff(max_attempts=-1),
        ValueError,
        "max_attempts",
        "-1",
    ),
    (
        "Paced max_retry_after=nan",
        lambda: PacedBackoff(max_retry_after=NAN),
        ValueError,
        "max_retry_after",
        "nan",
    ),
    ("headers pair of one", lambda: client(headers=[("X-A",)]), TypeError, "headers", "('X-A',)"),
    (
        "headers value with CRLF",
        lambda: client(headers={"X-A": "1\r\nX-B: 2"}),
        ValueError,
        "headers",
        r"'1\r\nX-B: 2'",
    ),
    (
        "headers name with a space",
        lambda: client(headers={"X A": "1"}),
        ValueError,
        "headers",
        "'X A'",
    ),
    ("headers value int", lambda: client(headers={"X-A": 1}), TypeError, "headers", "1"),
    (
        "query_params=['a=1']",
        lambda: client(query_params=["a=1"]),
        TypeError,
        "query_params",
        "'a=1'",
    ),
    ("compression='no'", lambda: client(compression="no"), TypeError, "compression", "'no'"),
    (
        "label with bidi override",
        lambda: client(label="a\u202eb"),
        ValueError,
        "label",
        r"'a\u202eb'",
    ),
    ("label with U+2028", lambda: client(label="a\u2028b"), ValueError, "label", r"'a\u2028b'"),
    (
        "label empty",
        lambda: client(label=""),
        ValueError,
        "label",
        "label must not be empty (None numbers the client: ws-1, ws-2, ...)",
    ),
    (
        "label too long",
        lambda: client(label="x" * 257),
        ValueError,
        "label",
        f"not 257: {'x' * 40!r}...",
    ),
    ("url with NUL", lambda: client("ws://a.test/\x00"), InvalidURL, "url", r"'ws://a.test/\x00'"),
    (
        "event_queue_size just over",
        lambda: client(event_queue_size=MAX_QUEUE_SIZE + 1),
        ValueError,
        "event_queue_size",
        str(MAX_QUEUE_SIZE + 1),
    ),
    (
        "send_buffer_size just over",
        lambda: recovery(send_buffer_size=MAX_QUEUE_SIZE + 1),
        ValueError,
        "send_buffer_size",
        str(MAX_QUEUE_SIZE + 1),
    ),
    ("send_ttl='30'", lambda: recovery(send_ttl="30"), TypeError, "send_ttl", "'30'"),
    (
        "proxy ftp",
        lambda: client(proxy="ftp://proxy.test"),
        ValueError,
        "proxy",
        "'ftp://proxy.test'",
    ),
    ("proxy ws", lambda: client(proxy="ws://proxy.test"), ValueError, "proxy", "'ws://proxy.test'"),
    ("proxy no host", lambda: client(proxy="http://"), ValueError, "proxy", "'http://'"),
    (
        "proxy with a path",
        lambda: client(proxy="http://proxy.test/path"),
        ValueError,
        "proxy",
        "'http://proxy.test/path'",
    ),
    ("proxy=''", lambda: client(proxy=""), ValueError, "proxy", "''"),
    (
        "route interval just under",
        lambda: RouteNetworkMonitor("127.0.0.1", 9, interval=MIN_ROUTE_INTERVAL / 2),
        ValueError,
        "interval",
        repr(MIN_ROUTE_INTERVAL / 2),
    ),
    (
        "set_available('no')",
        lambda: ManualNetworkMonitor().set_available("no"),  # type: ignore[arg-type]
        TypeError,
        "available",
        "'no'",
    ),
    (
        "monitor.available='no'",
        lambda: ConnectionRecoveryHandler(client(), FuzzyMonitor()),  # type: ignore[arg-type]
        TypeError,
        "network_monitor",
        "'no'",
    ),
    ("stall_timeout=0", lambda: client(stall_timeout=0), ValueError, "stall_timeout", "0"),
    ("stall_timeout=nan", lambda: client(stall_timeout=NAN), ValueError, "stall_timeout", "nan"),
    ("stall_timeout=True", lambda: client(stall_timeout=True), TypeError, "stall_timeout", "True"),
    (
        "message_encoder -> dict",
        lambda: encoded_by(lambda m: m),
        TypeError,
        "message_encoder",
        "dict",
    ),
]

# The cases of issue 18's list (before "-- more --").
FROM_THE_ISSUE = 33


@pytest.mark.parametrize(
    ("build", "error", "named", "shown"),
    [pytest.param(*case[1:], id=case[0]) for case in HOSTILE],
)
def test_a_hostile_input_is_refused_at_construction_by_name_and_value(
    build: Callable[[], object], error: type[Exception], named: str, shown: str
) -> None:
    with pytest.raises(error) as info:
        build()
    message = str(info.value)
    assert named in message, message
    assert shown in message, message


def test_the_issue_list_is_all_there() -> None:
    assert len(HOSTILE) > FROM_THE_ISSUE
    assert HOSTILE[FROM_THE_ISSUE - 1][0] == "recovery network_monitor=object"
    assert HOSTILE[FROM_THE_ISSUE][0] == "DelayList([True])"


def test_an_invalid_url_is_a_value_error() -> None:
    # InvalidURL is also a ValueError: the issue asks for TypeError or ValueError.
    assert issubclass(InvalidURL, ValueError)


def test_a_refused_url_or_proxy_shows_no_password() -> None:
    with pytest.raises(InvalidURL) as url_info:
        client("ws://ann:hunter2@a.test/a b")
    with pytest.raises(ValueError) as proxy_info:
        client(proxy="ftp://ann:hunter2@proxy.test")
    with pytest.raises(TypeError) as header_info:
        client(headers=["Authorization: Bearer hunter2"])
    with pytest.raises(TypeError) as encoder_info:
        encoded_by(lambda m: {"token": "hunter2"})
    for info in (url_info, proxy_info, header_info, encoder_info):
        assert "hunter2" not in str(info.value), str(info.value)


# -- good edge values are still accepted --------------------------------------------------

NOPONG = NoPongReceived()


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: DelayList([0]), id="DelayList([0])"),
        pytest.param(lambda: DelayList([0.5, 1]), id="DelayList([0.5, 1])"),
        pytest.param(lambda: DelayList((2, 5), repeat=False), id="DelayList tuple"),
        pytest.param(lambda: DelayList(range(1, 3)), id="DelayList range"),
        pytest.param(ExponentialBackoff, id="ExponentialBackoff()"),
        pytest.param(lambda: ExponentialBackoff(max_attempts=0), id="Exponential max_attempts=0"),
        pytest.param(
            lambda: ExponentialBackoff(max_retry_after=0, jitter=False), id="Exponential 0/False"
        ),
        pytest.param(lambda: ExponentialBackoff(cap=1e30), id="Exponential huge finite cap"),
        pytest.param(PacedBackoff, id="PacedBackoff()"),
        pytest.param(lambda: PacedBackoff(paced_attempts=1, max_attempts=3), id="Paced 1/3"),
        pytest.param(lambda: client(label="ws-1"), id="label ws-1"),
        pytest.param(lambda: client(label="Bücher client #2 ✓"), id="label unicode"),
        pytest.param(lambda: client(proxy=None), id="proxy None"),
        pytest.param(lambda: client(proxy=True), id="proxy True"),
        pytest.param(lambda: client(proxy=False), id="proxy False"),
        pytest.param(lambda: client(proxy="http://proxy.test:3128"), id="proxy http"),
        pytest.param(lambda: client(proxy="https://proxy.test/"), id="proxy https slash"),
        pytest.param(lambda: client(proxy="socks5h://ann:pw@proxy.test:1080"), id="proxy socks"),
        pytest.param(lambda: client(proxy="http://[::1]:3128"), id="proxy ipv6"),
        pytest.param(lambda: client(headers={"X-A": "1", "Authorization": "Bearer t"}), id="map"),
        pytest.param(lambda: client(headers=[("X-A", "1"), ["X-B", ""]]), id="header pairs"),
        pytest.param(lambda: client(headers=lambda: ["anything, checked later"]), id="callable"),
        pytest.param(lambda: client(query_params={"v": 2, "q": "a b"}), id="query map"),
        pytest.param(lambda: client(query_params=[("v", "2")]), id="query pairs"),
        pytest.param(lambda: client(ack_required=False, compression=False), id="bools"),
        pytest.param(lambda: client(event_queue_size=MAX_QUEUE_SIZE), id="queue at the max"),
        pytest.param(lambda: recovery(send_buffer_size=MAX_QUEUE_SIZE), id="buffer at the max"),
        pytest.param(lambda: recovery(send_ttl=0.5, retry_first_connect=True), id="ttl"),
        pytest.param(lambda: client(stall_timeout=None), id="stall_timeout None"),
        pytest.param(lambda: client(stall_timeout=0.5), id="stall_timeout 0.5"),
        pytest.param(lambda: client("ws://a.test/a%20b?q=%0D%0A"), id="url percent-encoded"),
        pytest.param(lambda: client("ws://bücher.test/"), id="url IDN"),
        pytest.param(
            lambda: RouteNetworkMonitor("127.0.0.1", 9, interval=MIN_ROUTE_INTERVAL),
            id="route interval at the minimum",
        ),
        pytest.param(lambda: ManualNetworkMonitor(False), id="manual monitor offline"),
        pytest.param(
            lambda: ConnectionRecoveryHandler(client(), ManualNetworkMonitor()), id="monitor"
        ),
    ],
)
def test_a_good_edge_value_is_accepted(build: Callable[[], object]) -> None:
    build()


def test_the_bounds_are_what_the_docs_say() -> None:
    assert MAX_QUEUE_SIZE == 10**6
    assert MIN_ROUTE_INTERVAL == 0.01


def test_delay_list_stores_its_delays_as_a_tuple_of_floats() -> None:
    # The documented coercion: a copy, so mutating the list passed in changes nothing.
    delays = [0, 1]
    strategy = DelayList(delays)
    delays.append(-1)
    assert strategy.delays == (0.0, 1.0)
    assert all(type(d) is float for d in strategy.delays)
    assert [strategy.next_delay(n, NOPONG) for n in (1, 2, 3)] == [0.0, 1.0, 1.0]


def test_stall_timeout_defaults_to_thirty_seconds_and_is_checked_like_the_other_seconds() -> None:
    assert ClientSettings().stall_timeout == 30.0
    assert ClientSettings.check(URL, decode_message, None, None, None).stall_timeout == 30.0
    settings = ClientSettings.check(URL, decode_message, None, None, None, stall_timeout=5)
    assert settings.stall_timeout == 5.0 and type(settings.stall_timeout) is float
    off = ClientSettings.check(URL, decode_message, None, None, None, stall_timeout=None)
    assert off.stall_timeout is None


def test_encode_returns_what_a_good_encoder_returns() -> None:
    assert ClientSettings().encode({"a": 1}) == json.dumps({"a": 1})
    assert encoded_by(lambda m: b"\x00raw") == b"\x00raw"
    assert encoded_by(lambda m: "") == ""


def test_encode_names_the_type_and_lets_the_encoders_own_errors_through() -> None:
    with pytest.raises(TypeError, match=r"^message_encoder must return str or bytes, not NoneType"):
        encoded_by(lambda m: None)
    with pytest.raises(TypeError, match=r"not bytearray"):
        encoded_by(lambda m: bytearray(b"x"))

    def broken(message: object) -> str:
        raise ValueError("cannot encode")

    with pytest.raises(ValueError, match=r"^cannot encode$"):
        encoded_by(broken)


def test_ack_required_and_compression_keep_the_bool_given() -> None:
    settings = ClientSettings.check(
        URL, decode_message, None, None, None, ack_required=False, compression=False
    )
    assert settings.ack_required is False and settings.compression is False


def test_a_label_of_the_longest_length_allowed_is_kept_whole() -> None:
    label = "x" * 256
    assert client(label=label).label == label


def test_an_empty_label_says_what_none_does_instead() -> None:
    with pytest.raises(
        ValueError,
        match=r"^label must not be empty \(None numbers the client: ws-1, ws-2, \.\.\.\)$",
    ):
        client(label="")
