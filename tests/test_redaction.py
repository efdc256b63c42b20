"""Redaction of secrets in URLs, headers, free text and exceptions (statesock.redaction)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statesock.redaction import (
    REDACTED,
    redact_exception,
    redact_headers,
    redact_text,
    redact_url,
)

SECRETS = ["s3cr3t-tok", "k3y-value", "hunter2", "sig-abc123", "eyJhbGciOi.payload.sig"]


@pytest.mark.parametrize(
    "url",
    [
        "wss://example.test/connect?token=s3cr3t-tok&user=ann",
        "wss://example.test/connect?api_key=k3y-value",
        "wss://ann:hunter2@example.test/connect",
        "wss://hunter2@example.test/connect",
        "wss://example.test/c?X-Amz-Signature=sig-abc123&x=1",
        "ws://example.test/?access_token=eyJhbGciOi.payload.sig",
        "wss://example.test/c?AUTH=hunter2",
        "wss://example.test/c?pass=hunter2",
        "wss://example.test/c?sig=sig-abc123",
    ],
)
def test_redact_url_masks_secrets_and_keeps_the_rest(url: str) -> None:
    redacted = redact_url(url)
    assert not any(secret in redacted for secret in SECRETS)
    assert "example.test" in redacted
    assert REDACTED in redacted or "%5BREDACTED%5D" in redacted


def test_redact_url_keeps_harmless_parameters() -> None:
    assert redact_url("wss://h.test/c?user=ann&v=2") == "wss://h.test/c?user=ann&v=2"


def test_redact_url_keeps_the_user_name() -> None:
    assert redact_url("wss://ann:hunter2@h.test/") == f"wss://ann:{REDACTED}@h.test/"


def test_redact_headers() -> None:
    headers = {
        "Authorization": "Bearer s3cr3t-tok",
        "X-Api-Key": "k3y-value",
        "Cookie": "session=hunter2",
        "X-Request-Id": "r-1",
    }
    assert dict(redact_headers(headers)) == {
        "Authorization": REDACTED,
        "X-Api-Key": REDACTED,
        "Cookie": REDACTED,
        "X-Request-Id": "r-1",
    }
    assert redact_headers([("authorization", "Basic aGk=")]) == [("authorization", REDACTED)]
    assert redact_headers(None) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type": "auth", "token": "s3cr3t-tok"}', '{"type": "auth", "token": "[REDACTED]"}'),
        ("{'token': 's3cr3t-tok'}", "{'token': '[REDACTED]'}"),
        ('"password": "a b c"', '"password": "[REDACTED]"'),
        ("{'password': 'a b c', 'user': 'ann'}", "{'password': '[REDACTED]', 'user': 'ann'}"),
        ("pass=hunter2&user=x", "pass=[REDACTED]&user=x"),
        ("{'pass': 'hunter2'}", "{'pass': '[REDACTED]'}"),
        ("Authorization: Bearer eyJhbGciOi.payload.sig", "Authorization: [REDACTED]"),
        ("Authorization: Basic aHVudGVyMg==", "Authorization: [REDACTED]"),
        ("> Cookie: sid=hunter2; theme=dark", "> Cookie: [REDACTED]"),
        ("< Set-Cookie: sid=hunter2; Path=/", "< Set-Cookie: [REDACTED]"),
        (
            "> GET /c?token=s3cr3t-tok&api_key=k3y-value&v=2 HTTP/1.1",
            "> GET /c?token=[REDACTED]&api_key=[REDACTED]&v=2 HTTP/1.1",
        ),
        ("wss://ann:hunter2@example.test/c failed", "wss://ann:[REDACTED]@example.test/c failed"),
        (
            "Headers([('Authorization', 'Bearer x'), ('X-Api-Key', 'k3y-value'), ('Host', 'h')])",
            "Headers([('Authorization', '[REDACTED]'), ('X-Api-Key', '[REDACTED]'), "
            "('Host', 'h')])",
        ),
        ("apiKey: k3y-value", "apiKey: [REDACTED]"),
        ('{"signature":"sig-abc123"}', '{"signature":"[REDACTED]"}'),
        ('"password": "a b c', '"password": "[REDACTED]"'),  # cut off by a length limit
        ("x=1&credential=hunter2", "x=1&credential=[REDACTED]"),
        ("sig=sig-abc123", "sig=[REDACTED]"),
    ],
)
def test_redact_text_masks_each_secret_shape(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "timed out in authenticating",
        "server closed with 4401: invalid token",
        "authenticated=True",
        "user=ann v=2",
        "the key was rejected",
    ],
)
def test_redact_text_leaves_ordinary_text_alone(text: str) -> None:
    assert redact_text(text) == text


def test_redact_text_accepts_bytes() -> None:
    assert redact_text(b'{"signature":"sig-abc123"}') == '{"signature":"[REDACTED]"}'


def test_redact_text_truncates() -> None:
    assert redact_text("x" * 1000, limit=10) == "xxxxxxxxxx… (1000 chars)"
    assert redact_text("x" * 1000, limit=None) == "x" * 1000


def test_redact_text_keeps_200_characters_by_default() -> None:
    assert redact_text("x" * 200) == "x" * 200
    assert redact_text("x" * 201) == "x" * 200 + "… (201 chars)"


def test_bytes_are_decoded_only_as_far_as_the_limit_needs() -> None:
    # At most 4 bytes a character: a huge payload is cut to 4 x limit bytes before it is
    # decoded, so the count says how much was looked at, not how big the payload was.
    assert redact_text(b"x" * 100_000, limit=10) == "xxxxxxxxxx… (40 chars)"
    # Without a limit the whole payload is decoded and kept.
    assert redact_text(b"x" * 5000, limit=None) == "x" * 5000


# Printable ASCII without the characters that end a bare value (separators, quotes) or that a
# URL's userinfo cannot hold unescaped.
_secret = st.text(
    alphabet=st.characters(
        min_codepoint=33, max_codepoint=126, exclude_characters="\"'\\&;,)]}>@/?#"
    ),
    min_size=6,
    max_size=30,
).filter(lambda s: "REDACTED" not in s)

_TEMPLATES = [
    '{{"token": "{}"}}',
    "{{'password': '{} and more words'}}",
    "pass={}&user=ann",
    "Authorization: Bearer {}",
    "> Cookie: a=1; sid={}",
    "/c?x=1&api_key={}&v=2",
    "wss://ann:{}@host.test/",
    "[('X-Auth-Token', '{}')]",
    "client_secret: {}",
]


@given(secret=_secret, template=st.sampled_from(_TEMPLATES))
def test_a_planted_secret_never_survives_and_redaction_is_idempotent(
    secret: str, template: str
) -> None:
    text = template.format(secret)
    once = redact_text(text, limit=None)
    assert secret not in once
    assert redact_text(once, limit=None) == once


def test_redact_exception_masks_the_message_of_every_exception_in_the_chain() -> None:
    try:
        try:
            raise KeyError("api_key=k3y-value")
        except KeyError as inner:
            raise RuntimeError("login failed: password=hunter2") from inner
    except RuntimeError as exc:
        rendered = redact_exception(exc)
    assert "Traceback (most recent call last)" in rendered
    assert "RuntimeError: login failed: password=[REDACTED]" in rendered
    assert "KeyError" in rendered
    assert not any(secret in rendered for secret in SECRETS)


def test_redact_exception_survives_an_unprintable_exception() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("no")

    assert "Unprintable" in redact_exception(Unprintable())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # No other secret word anywhere: only the Basic rule can catch these.
        ("retrying with Basic dXNlcjpodW50ZXIy now", "retrying with Basic [REDACTED] now"),
        ("proxy answered: basic aHVudGVyMg==", "proxy answered: basic [REDACTED]"),
        ("BASIC aHVudGVyMg==, then 407", "BASIC [REDACTED], then 407"),
        ('["Basic aHVudGVyMg=="]', '["Basic [REDACTED]"]'),
    ],
)
def test_basic_credentials_in_free_text_are_masked(text: str, expected: str) -> None:
    once = redact_text(text)
    assert once == expected
    assert redact_text(once) == once


def test_the_word_basic_without_a_credential_is_left_alone() -> None:
    for text in ("Basic", "the scheme was basic.", "basic, digest or bearer?"):
        assert redact_text(text) == text


# -- exact shapes: what is kept, what is masked, how a URL is re-encoded -------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("ws://[bad/?token=abc", "ws://[bad/?token=[REDACTED]"),  # unparsable: redacted as text
        ("wss://u:p@ss@example.com/", "wss://u:[REDACTED]@example.com/"),  # the last @ splits
        ("wss://u:p:q@example.com/", "wss://u:[REDACTED]@example.com/"),  # the first : splits
        ("wss://h/?a=&token=x", "wss://h/?a=&token=[REDACTED]"),  # blank values are kept
        ("wss://h/?path=/a/b&a/b=1", "wss://h/?path=%2Fa%2Fb&a%2Fb=1"),  # nothing left unquoted
    ],
)
def test_redact_url_exactly(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_userinfo_in_free_text_keeps_the_user_only_before_the_first_colon() -> None:
    assert redact_text("connect to wss://u:p:q@h failed; wss://user@h2") == (
        "connect to wss://u:[REDACTED]@h failed; wss://[REDACTED]@h2"
    )


def test_a_rendered_exception_keeps_its_last_line_as_raised_and_is_cut_at_8000() -> None:
    for message in ("boomX", "boom  "):
        try:
            raise ValueError(message)
        except ValueError as exc:
            rendered = redact_exception(exc)
        assert rendered.startswith("Traceback (most recent call last):\n  File ")
        assert rendered.endswith(f"\nValueError: {message}")  # only the final newline goes
    long = redact_exception(ValueError("x" * 9000))
    assert long.endswith("… (9012 chars)")
    assert len(long) == 8000 + len("… (9012 chars)")


def test_an_exception_that_cannot_be_rendered_is_named_unprintable() -> None:
    class Broken(Exception):
        @property
        def __notes__(self) -> list[str]:  # type: ignore[override]  # traceback reads it, and it raises
            raise RuntimeError("no notes")

    assert redact_exception(Broken()) == "Broken: <unprintable>"
