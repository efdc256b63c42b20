"""Redaction: secrets in URLs, headers, free text and tracebacks never reach a log line.

Anything that may carry a URL, a header, server- or user-supplied text or an exception passes
through :func:`redact_url`, :func:`redact_headers`, :func:`redact_text` or
:func:`redact_exception` before it is logged. The log writer (:mod:`statesock.transition_log`)
also runs :func:`redact_text` over every string it writes, so a caller that forgets is still
covered.

What counts as a secret: the value of any name containing token, key, secret, pass, pwd,
signature, auth, credential, session, cookie, jwt or bearer (and a bare ``sig``), whether it
appears as a URL query parameter, a header, ``name=value``, ``name: value``, a JSON or Python
repr pair (``"token": "a b"``, ``{'token': 'x'}``, ``('X-Api-Key', 'x')``), plus URL userinfo
passwords, ``Bearer``/``Basic`` credentials and whole ``Cookie`` / ``Authorization`` header
lines. Broad on purpose: a false positive costs a log detail, a false negative leaks a
credential. The rules are idempotent: redacting redacted text changes nothing.

Pure module: standard library only, no clock.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

__all__ = [
    "REDACTED",
    "is_secret_name",
    "redact_exception",
    "redact_headers",
    "redact_text",
    "redact_url",
]

REDACTED = "[REDACTED]"

_WORDS = "token|key|secret|pass|pwd|signature|auth|credential|session|cookie|jwt|bearer"

# For names we are given whole (query parameters, header names).
_SECRET_NAME = re.compile(rf"{_WORDS}|sig$|^sig", re.IGNORECASE)
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})

# A secret-looking name inside free text. The machine's own state names contain "auth" and
# are not secrets, so they are excluded to keep transition details readable.
_NAME = (
    r"(?<![A-Za-z0-9_.\-])(?!authenticat(?:ing|ed)\b)"
    rf"(?:[A-Za-z0-9_.\-]*(?:{_WORDS})[A-Za-z0-9_.\-]*|(?<![A-Za-z0-9])sig(?![A-Za-z0-9]))"
)
_ALREADY = r"(?![\"']?\[REDACTED\])"
# ``name = value`` / ``name: value``, the name optionally quoted (JSON, Python repr); a quoted
# value runs to its closing quote (spaces included; to the end of the line when truncated), a
# bare one to the next separator. An auth scheme word (``Bearer x``) belongs to the value.
_INLINE_SECRET = re.compile(
    rf"(?P<name>{_NAME})(?P<sep>[\"']?\s*[=:]\s*){_ALREADY}"
    r"(?P<value>\"(?:[^\"\\\n]|\\.)*\"?|'(?:[^'\\\n]|\\.)*'?"
    r"|(?:(?:Bearer|Basic|Token|Digest)\s+)?[^\s&\"',;)\]}>]+)",
    re.IGNORECASE,
)
# ``('X-Api-Key', 'value')``: header pairs as Python prints them.
_PAIR_SECRET = re.compile(
    rf"(?P<open>\(\s*)(?P<q>[\"'])(?P<name>{_NAME})(?P=q)(?P<sep>\s*,\s*){_ALREADY}"
    r"(?P<value>\"(?:[^\"\\\n]|\\.)*\"?|'(?:[^'\\\n]|\\.)*'?)",
    re.IGNORECASE,
)
# A header line whose whole value is a credential (``Cookie: a=1; b=2``).
_HEADER_LINE = re.compile(
    r"(?P<name>\b(?:proxy-)?authorization|\b(?:set-)?cookie)(?P<sep>\s*:\s*)"
    rf"{_ALREADY}(?P<value>[^\s\"'][^\r\n]*)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+(?!\[REDACTED\])[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)
# Text without any of these cannot hold a secret the rules above would mask: checked first,
# it keeps redaction of ordinary text (state names, labels, counts) to one quick scan.
_MAYBE_SECRET = re.compile(rf"{_WORDS}|sig|basic|://", re.IGNORECASE)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^\s/@'\"]+)@")


def redact_url(url: str) -> str:
    """``url`` with passwords and secret-looking query values replaced by a marker."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return redact_text(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{hostport}" if ":" in userinfo else f"{REDACTED}@{hostport}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = "&".join(
            f"{quote(name, safe='')}="
            + (REDACTED if _SECRET_NAME.search(name) else quote(value, safe=""))
            for name, value in pairs
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def is_secret_name(name: str) -> bool:
    """Whether a value stored under ``name`` (a header, parameter or field) is a secret."""
    return name.lower() in _SECRET_HEADERS or _SECRET_NAME.search(name) is not None


def redact_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> list[tuple[str, str]]:
    """Header pairs with secret values replaced (Authorization, Cookie, *token*, *key*...)."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(name, REDACTED if is_secret_name(name) else value) for name, value in items]


def _mask(match: re.Match[str]) -> str:
    value = match.group("value")
    quote_char = value[0] if value[:1] in ("'", '"') else ""
    return f"{match.group('name')}{match.group('sep')}{quote_char}{REDACTED}{quote_char}"


def _mask_pair(match: re.Match[str]) -> str:
    quote_char = match.group("q")
    name = match.group("name")
    return f"{match.group('open')}{quote_char}{name}{quote_char}{_mask(match)[len(name) :]}"


def _mask_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    masked = f"{userinfo.split(':', 1)[0]}:{REDACTED}" if ":" in userinfo else REDACTED
    return f"{match.group('scheme')}{masked}@"


def redact_text(text: str | bytes, limit: int | None = 200) -> str:
    """Server- or user-supplied text made safe for a log: secrets masked, length bounded
    to ``limit`` characters (``None``: no bound)."""
    if isinstance(text, bytes):
        cut = text if limit is None else text[: limit * 4]
        text = cut.decode("utf-8", errors="replace")
    if _MAYBE_SECRET.search(text):
        text = _USERINFO.sub(_mask_userinfo, text)
        text = _HEADER_LINE.sub(_mask, text)
        text = _PAIR_SECRET.sub(_mask_pair, text)
        text = _INLINE_SECRET.sub(_mask, text)
        text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}… ({len(text)} chars)"
    return text


def redact_exception(exc: BaseException, limit: int | None = 8000) -> str:
    """The whole traceback of ``exc`` (with its chained causes), redacted like free text.

    This is what a log gets instead of the exception object: a renderer given the object
    would print its raw message, and some print local variables too.
    """
    try:
        rendered = "".join(traceback.format_exception(exc)).rstrip("\n")
    except Exception:  # an exception whose __str__ raises must not break logging
        rendered = f"{type(exc).__name__}: <unprintable>"
    return redact_text(rendered, limit)
