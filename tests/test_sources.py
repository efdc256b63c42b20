"""The default reconnect policy, row by row of DESIGN.md's table, and close reasons."""

from __future__ import annotations

import pytest

from statesock.events import ServerErrorEvent
from statesock.exceptions import (
    ConfigurationError,
    ConnectionFailure,
    ConnectionLost,
    ConnectionRefused,
    ConnectTimeout,
    HandshakeRejected,
    InvalidURL,
    NameResolutionFailed,
    TLSFailure,
)
from statesock.machine import ConnectionState
from statesock.sources import (
    DisconnectionSource,
    NoPongReceived,
    ServerInitiated,
    SystemInitiated,
    Timeout,
    UserInitiated,
    default_reconnect_policy,
    is_auth_rejection,
    is_fatal_close_code,
)

STOP_CLOSE_CODES = [1000, 1002, 1003, 1007, 1008, 1009, 1010, 4400, 4401, 4403, 4404, 4499]
RETRY_CLOSE_CODES = [1001, 1006, 1011, 1012, 1013, 1014, 4000, 4399, 4408, 4429, 4500, 4999]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (UserInitiated(), False),
        (NoPongReceived(), True),
        (SystemInitiated(), True),
        (SystemInitiated("app paused"), True),
        (Timeout(ConnectionState.CONNECTING), True),
        (Timeout(ConnectionState.AUTHENTICATING), True),
        (ServerInitiated(), True),
    ],
)
def test_policy_by_source_kind(source: DisconnectionSource, expected: bool) -> None:
    assert default_reconnect_policy(source) is expected


@pytest.mark.parametrize("code", STOP_CLOSE_CODES)
def test_policy_stops_on_fatal_close_codes(code: int) -> None:
    assert is_fatal_close_code(code)
    assert default_reconnect_policy(ServerInitiated(code)) is False


@pytest.mark.parametrize("code", RETRY_CLOSE_CODES)
def test_policy_retries_other_close_codes(code: int) -> None:
    assert not is_fatal_close_code(code)
    assert default_reconnect_policy(ServerInitiated(code)) is True


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, True),
        (429, True),
        (499, False),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
    ],
)
def test_policy_by_handshake_status(status: int, expected: bool) -> None:
    source = ServerInitiated(error=HandshakeRejected(status))
    assert default_reconnect_policy(source) is expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (InvalidURL("ftp://x"), False),
        (ConfigurationError("bad settings"), False),
        (TLSFailure("certificate verify failed", certificate=True), False),
        (TLSFailure("handshake aborted", certificate=False), True),
        (ConnectionRefused("refused"), True),
        (NameResolutionFailed("no such host"), True),
        (ConnectionLost("reset"), True),
        (ConnectTimeout("slow"), True),
        (ServerErrorEvent("maintenance", retryable=True), True),
        (ServerErrorEvent("banned", code=17, retryable=False), False),
    ],
)
def test_policy_by_error(error: BaseException | ServerErrorEvent, expected: bool) -> None:
    assert default_reconnect_policy(ServerInitiated(error=error)) is expected


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        (UserInitiated(), "user disconnect"),
        (NoPongReceived(), "no pong received"),
        (SystemInitiated(), "network unavailable"),
        (Timeout(ConnectionState.AUTHENTICATING), "timed out in authenticating"),
        (ServerInitiated(1011, "overloaded"), "server closed with 1011: overloaded"),
        (ServerInitiated(1006), "server closed with 1006"),
        (ServerInitiated(error=ServerErrorEvent("bad auth")), "server error: bad auth"),
        (
            ServerInitiated(error=HandshakeRejected(503, retry_after=7)),
            "server rejected the WebSocket handshake with HTTP 503 (Retry-After 7 s)",
        ),
    ],
)
def test_close_reason_reads_well(source: DisconnectionSource, reason: str) -> None:
    assert source.close_reason == reason


def test_sources_are_immutable_values() -> None:
    source = ServerInitiated(1011, "x")
    with pytest.raises(AttributeError):
        source.close_code = 1000  # type: ignore[misc]
    assert source == ServerInitiated(1011, "x")
    assert source.code == 1011
    assert NoPongReceived().code is None
    assert {UserInitiated(), UserInitiated()} == {UserInitiated()}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (ServerInitiated(error=HandshakeRejected(401)), True),
        (ServerInitiated(error=HandshakeRejected(403)), True),
        (ServerInitiated(error=HandshakeRejected(404)), False),
        (ServerInitiated(error=HandshakeRejected(429)), False),
        (ServerInitiated(4401), True),
        (ServerInitiated(4403), True),
        (ServerInitiated(4400), False),
        (ServerInitiated(1008), False),
        (ServerInitiated(), False),
        (UserInitiated(), False),
        (NoPongReceived(), False),
        (SystemInitiated(), False),
        (Timeout(ConnectionState.AUTHENTICATING), False),
        (None, False),
    ],
)
def test_auth_rejections_are_401_403_and_4401_4403_from_the_server_only(
    source: DisconnectionSource | None, expected: bool
) -> None:
    assert is_auth_rejection(source) is expected


@pytest.mark.parametrize(
    ("error", "retryable", "auth_rejected"),
    [
        (InvalidURL("ftp://x"), False, None),
        (ConfigurationError("bad settings"), False, None),
        (TLSFailure("certificate verify failed", certificate=True), False, None),
        (TLSFailure("handshake aborted", certificate=False), True, None),
        (HandshakeRejected(401), False, True),
        (HandshakeRejected(403), False, True),
        (HandshakeRejected(404), False, False),
        (HandshakeRejected(429), True, False),
        (HandshakeRejected(503), True, False),
        (ConnectionLost("reset"), None, None),
        (ConnectionRefused("refused"), None, None),
    ],
)
def test_a_failure_carries_its_own_verdict_for_the_policy(
    error: ConnectionFailure, retryable: bool | None, auth_rejected: bool | None
) -> None:
    # None: no verdict of its own, the close code decides (see the next test).
    assert (error.retryable, error.auth_rejected) == (retryable, auth_rejected)


def test_a_failure_without_a_verdict_leaves_the_decision_to_the_close_code() -> None:
    lost = ConnectionLost("closed with 1002")
    assert default_reconnect_policy(ServerInitiated(1002, error=lost)) is False
    assert default_reconnect_policy(ServerInitiated(1011, error=lost)) is True
    assert is_auth_rejection(ServerInitiated(4401, error=lost)) is True
    # A failure with a verdict decides, whatever the code.
    assert default_reconnect_policy(ServerInitiated(1011, error=HandshakeRejected(404))) is False
    assert is_auth_rejection(ServerInitiated(4401, error=HandshakeRejected(500))) is False


# -- what each exception carries and says --------------------------------------------------------


def test_an_invalid_transition_names_the_trigger_the_state_and_why() -> None:
    from statesock.exceptions import InvalidTransition

    refused = InvalidTransition("opened", "connected", "no rule for it")
    assert (refused.trigger, refused.state) == ("opened", "connected")
    assert refused.why == "no rule for it"
    assert str(refused) == "trigger 'opened' is not allowed in state 'connected': no rule for it"
    bare = InvalidTransition("opened", "connected")
    assert bare.why == ""
    assert str(bare) == "trigger 'opened' is not allowed in state 'connected'"


def test_not_connected_names_the_state() -> None:
    from statesock.exceptions import NotConnectedError

    refused = NotConnectedError("disconnected")
    assert refused.state == "disconnected"
    assert str(refused) == (
        "cannot send in state 'disconnected': sending needs authenticating or connected"
    )


@pytest.mark.parametrize("kind", ["ConnectFailed", "ConnectionEnded"])
def test_a_failed_or_ended_connection_carries_its_source_and_says_why(kind: str) -> None:
    from statesock import exceptions

    cls = getattr(exceptions, kind)
    prefix = "connection attempt failed" if kind == "ConnectFailed" else "connection ended"
    source = ServerInitiated(1011, "boom")
    failed = cls(source)
    assert failed.source is source
    assert str(failed) == f"{prefix}: {source.close_reason}"
    unknown = cls(None)
    assert unknown.source is None
    assert str(unknown) == f"{prefix}: unknown reason"


def test_a_rejected_handshake_carries_the_status_retry_after_and_body() -> None:
    rejected = HandshakeRejected(503, 7.0, "busy")
    assert (rejected.status, rejected.retry_after, rejected.body) == (503, 7.0, "busy")
    assert str(rejected) == (
        "server rejected the WebSocket handshake with HTTP 503 (Retry-After 7 s)"
    )
    plain = HandshakeRejected(404)
    assert (plain.retry_after, plain.body) == (None, "")
    assert str(plain) == "server rejected the WebSocket handshake with HTTP 404"


@pytest.mark.parametrize("certificate", [True, False])
def test_a_tls_failure_says_whether_the_certificate_was_the_cause(certificate: bool) -> None:
    failure = TLSFailure("handshake failed", certificate=certificate)
    assert failure.certificate is certificate
    assert failure.retryable is (not certificate)  # a bad certificate stays bad
    assert str(failure) == "handshake failed"


def test_a_stalled_subscriber_is_named_with_how_long_it_took_nothing() -> None:
    from statesock.exceptions import SubscriberStalled

    stalled = SubscriberStalled("events(AppEvent)", 30.0)
    assert (stalled.subscription, stalled.stalled_for) == ("events(AppEvent)", 30.0)
    assert str(stalled) == (
        "subscriber events(AppEvent) took nothing for 30 s while the client waited for it: "
        "cut off so that the client reads again"
    )
