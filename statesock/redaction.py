"""Redaction: secrets in URLs, headers and free text never reach a log line.

Anything that may carry a URL, a header or server- or user-supplied text passes through
:func:`redact_url`, :func:`redact_headers` or :func:`redact_text` before it is logged.
Pure module: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

__all__ = ["REDACTED", "redact_headers", "redact_text", "redact_url"]

REDACTED = "[REDACTED]"

# Names whose values are secrets wherever they appear: query parameters, headers, key=value
# pairs inside free text. Broad on purpose: a false positive costs a log detail, a false
# negative leaks a credential.
_SECRET_NAME = re.compile(
    r"token|key|secret|passw|pwd|signature|sig$|^sig|auth|credential|session|cookie|jwt|bearer",
    re.IGNORECASE,
)
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_INLINE_SECRET = re.compile(
    r"(?P<name>[A-Za-z0-9_\-]*(?:token|key|secret|passw\w*|pwd|signature|auth\w*|jwt|session)"
    r"[A-Za-z0-9_\-]*)(?P<sep>\"?\s*[=:]\s*\"?)(?P<value>[^\s&\"',;}]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=\-]+", re.IGNORECASE)


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


def redact_headers(
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None,
) -> list[tuple[str, str]]:
    """Header pairs with secret values replaced (Authorization, Cookie, *token*, *key*...)."""
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [
        (name, REDACTED if name.lower() in _SECRET_HEADERS or _SECRET_NAME.search(name) else value)
        for name, value in items
    ]


def redact_text(text: str | bytes, limit: int = 200) -> str:
    """Server- or user-supplied text made safe for a log: secrets masked, length bounded."""
    if isinstance(text, bytes):
        text = text[: limit * 4].decode("utf-8", errors="replace")
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _INLINE_SECRET.sub(lambda m: f"{m.group('name')}{m.group('sep')}{REDACTED}", text)
    if len(text) > limit:
        text = f"{text[:limit]}… ({len(text)} chars)"
    return text
