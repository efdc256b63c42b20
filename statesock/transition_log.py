"""The log writer: where statesock's log records go, and the ``transition`` record schema.

Silent by default, conventional when asked. The library never configures logging. While the
application has not configured structlog (``structlog.is_configured()`` is false), records go
to the standard library logger ``statesock``, which has a :class:`logging.NullHandler`: nothing
shows until the app configures logging (``logging.basicConfig(level=logging.INFO)`` shows
transitions). Once the app has configured structlog, records go through structlog instead,
with the logger fetched at call time, so a configuration made later still applies.

The level is checked before anything else: for a disabled level no field is built, nothing
is redacted and nothing is formatted (:func:`log_enabled` exposes the same check).

Every string written passes through :func:`statesock.redaction.redact_text`, and every string
under a secret-named field or key (``token=...``, ``{"api_key": ...}``, at any depth) is masked
whole (:func:`statesock.redaction.is_secret_name`); an exception
(``exc_info=``) is never handed to a renderer, which would print its raw text (or its local
variables) but becomes a redacted ``exception`` field holding the formatted traceback.
:func:`websockets_logger` gives websockets a logger that redacts its own debug lines.

Each state change and internal transition is one ``transition`` record
(:attr:`LogEvent.TRANSITION <statesock.log_schema.LogEvent.TRANSITION>`) with the fields of
:data:`statesock.log_schema.TRANSITION_FIELDS`, in this order: ``client``, ``seq``, ``src``,
``dst``, ``trigger``, ``source``, ``code``, ``detail``, ``in_state_ms``, ``internal``,
``reconnect`` (True for a connect that recovery fired, False for the user's connect and for
every other record: :attr:`StateChange.reconnect <statesock.machine.StateChange.reconnect>`),
``at`` (the client's monotonic clock), ``ts`` (wall clock, epoch seconds) and ``run``
(:data:`RUN_ID`, random per process, so records of two runs appended to one file stay apart).
``detail`` is free text for people: no reader takes a decision from it. ``statesock logs``
(:mod:`statesock.tools.log_reader`) reads these records back.
"""

from __future__ import annotations

import logging
import operator
import secrets
import sys
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import structlog

from .log_schema import LogEvent
from .machine import InternalTransition, Record, StateChange
from .redaction import REDACTED, is_secret_name, redact_exception, redact_text

__all__ = [
    "LOGGER_NAME",
    "RUN_ID",
    "TransitionLogger",
    "emit",
    "get_logger",
    "log_enabled",
    "transition_fields",
    "websockets_logger",
]

LOGGER_NAME = "statesock"

RUN_ID = secrets.token_hex(6)
"""Identifies this process run in every ``transition`` record (12 hex digits, drawn once at
import)."""

# The one stdlib logger object for this name lives as long as the process, and the app's
# configuration changes that object in place, so holding it is not an early bind.
_stdlib_logger = logging.getLogger(LOGGER_NAME)
_stdlib_logger.addHandler(logging.NullHandler())

_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}
# structlog before 25.1 has no is_enabled_for() on its filtering loggers: a disabled level's
# method is then this shared no-op.
_STRUCTLOG_NOP = getattr(structlog.make_filtering_bound_logger(logging.CRITICAL), "debug", None)
_FIELD_LIMIT = 1000
# Event names reach renderers as plain strings: a renderer that prints repr() (logfmt,
# key=value) must show transition, not <LogEvent.TRANSITION: 'transition'>.
_TRANSITION = str(LogEvent.TRANSITION)
_EXCEPTION_LIMIT = 8000

ExcInfo = (
    BaseException
    | bool
    | tuple[type[BaseException], BaseException, TracebackType | None]
    | tuple[None, None, None]
    | None
)


def get_logger() -> Any:
    """The library's structlog logger, fetched at call time (never cached, never configured)."""
    return structlog.get_logger(LOGGER_NAME)


def _levelno(level: str | int) -> int:
    return level if isinstance(level, int) else _LEVELS[level]


# The bound structlog logger, the configuration it was bound under, and its level check.
# Binding builds the configured logger (a PrintLogger, a file lock...) every time: per record,
# that was a tenth of a health check's cost. A new structlog.configure() changes the values,
# so a new logger. The check depends only on the bound logger's class: found once per logger.
_bound: tuple[tuple[Any, ...], Any, Any] | None = None


def _level_check(bound: Any) -> Any:
    """The bound logger's own level check (a bound method), or None when it has none.

    Only a check the wrapper's class defines: structlog's generic BoundLogger makes up a
    method for any name, and calling that one would log a record named "is_enabled_for".
    """
    wrapper = type(bound)
    if hasattr(wrapper, "is_enabled_for"):
        return bound.is_enabled_for
    if hasattr(wrapper, "isEnabledFor"):
        return bound.isEnabledFor
    return None


def _structlog_bound() -> tuple[tuple[Any, ...], Any, Any]:
    """(configuration, bound logger, its level check) for structlog's configuration now."""
    global _bound
    configured = structlog.get_config()
    cached = _bound
    if (
        cached is not None
        and len(cached[0]) == len(configured)
        and all(map(operator.is_, cached[0], configured.values()))
    ):
        return cached
    bound = structlog.get_logger(LOGGER_NAME).bind()
    cached = _bound = (tuple(configured.values()), bound, _level_check(bound))
    return cached


def _sink(levelno: int) -> Any:
    """Where a record at ``levelno`` goes, or None when nothing would show it."""
    if not structlog.is_configured():
        return _stdlib_logger if _stdlib_logger.isEnabledFor(levelno) else None
    _, bound, check = _structlog_bound()
    if check is not None:
        try:
            return bound if check(levelno) else None
        except AttributeError:  # a stdlib-style wrapper around a non-stdlib logger
            return bound
    name = logging.getLevelName(levelno).lower()
    if _STRUCTLOG_NOP is not None and getattr(type(bound), name, None) is _STRUCTLOG_NOP:
        return None
    return bound


def log_enabled(level: str | int) -> bool:
    """Whether a record at ``level`` ("debug"... or a :mod:`logging` number) would be written.

    Cheap while structlog is unconfigured (one stdlib level check); with structlog it binds a
    logger, like any structlog call does.
    """
    try:
        return _sink(_levelno(level)) is not None
    except Exception:
        return False


def _clean(value: Any, secret: bool = False) -> Any:
    """``value`` safe to hand to any renderer: strings redacted, containers walked,
    anything else reduced to its redacted text (a renderer would print its repr).

    ``secret``: the value sits under a secret-named key (``token``, ``api_key``, ...), at any
    depth: then every string in it is masked whole. Numbers, flags and None stay (under such
    names they are counts, timeouts and states: ``token_refreshes=3``, ``auth_timeout=10``).
    """
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str | bytes):
        return REDACTED if secret else redact_text(value, _FIELD_LIMIT)
    if isinstance(value, BaseException):
        return REDACTED if secret else redact_text(f"{type(value).__name__}: {value}", _FIELD_LIMIT)
    if isinstance(value, Mapping):
        return {str(key): _clean_pair(str(key), item, secret) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        if len(value) == 2 and isinstance(value, list | tuple) and isinstance(value[0], str):
            # A (name, value) header pair: the value is secret when the name is.
            return [_clean(value[0], secret), _clean_pair(value[0], value[1], secret)]
        return [_clean(item, secret) for item in value]
    return REDACTED if secret else redact_text(str(value), _FIELD_LIMIT)


def _clean_pair(name: str, value: Any, secret: bool = False) -> Any:
    """The value of field or key ``name``, cleaned; masked whole when ``name`` is secret."""
    return _clean(value, secret or is_secret_name(name))


def _exception(exc_info: ExcInfo) -> BaseException | None:
    if isinstance(exc_info, BaseException):
        return exc_info
    if exc_info is True:
        return sys.exc_info()[1]
    if isinstance(exc_info, tuple):
        return exc_info[1]
    return None


def _message(event: str, fields: Mapping[str, Any]) -> str:
    """The stdlib record's text: the event name and its fields as ``key=value``."""
    parts = [event]
    parts.extend(f"{key}={value!r}" for key, value in fields.items() if key != "exception")
    text = " ".join(parts)
    exception = fields.get("exception")
    return f"{text}\n{exception}" if exception else text


def _write(
    sink: Any, levelno: int, event: str, fields: dict[str, Any], *, cleaned: bool = False
) -> None:
    """Write one record; ``cleaned``: the caller has made every field safe already."""
    exc = _exception(fields.pop("exc_info", None))
    fields.pop("stack_info", None)  # a stack dump could carry secrets in source lines
    clean = fields if cleaned else {key: _clean_pair(key, value) for key, value in fields.items()}
    if exc is not None:
        clean["exception"] = redact_exception(exc, _EXCEPTION_LIMIT)
    if sink is _stdlib_logger:
        # The formatter sees the fields under ``record.statesock``; the message is
        # readable on its own (with the redacted traceback appended, as logging would).
        sink.log(levelno, "%s", _message(event, clean), extra={"statesock": clean})
    else:
        getattr(sink, logging.getLevelName(levelno).lower())(event, **clean)


def emit(level: str, event: str, **fields: Any) -> None:
    """Log one event (``level`` is "debug", "info", "warning", "error" or "critical").

    ``event`` is a :class:`~statesock.log_schema.LogEvent` member; it reaches the log as a plain
    string. Nothing is built for a disabled level. ``exc_info=`` (an exception, True, or a
    ``sys.exc_info()`` tuple) becomes a redacted ``exception`` field. A failure of the app's
    logging (a broken processor, a closed file) is swallowed: the connection must not depend
    on the log sink.
    """
    try:
        levelno = _levelno(level)
        sink = _sink(levelno)
        if sink is not None:
            _write(sink, levelno, str(event), fields)  # str(): a LogEvent becomes its name
    except Exception:  # the app's logging must not break the connection
        pass


def transition_fields(client: str, record: Record) -> dict[str, Any]:
    """The log fields of one record, in :data:`~statesock.log_schema.TRANSITION_FIELDS` order
    (the schema ``statesock logs`` reads)."""
    if isinstance(record, StateChange):
        src, dst, reconnect = record.previous.value, record.current.value, record.reconnect
    else:
        src = dst = record.state.value
        reconnect = False
    source = record.source
    return {
        "client": client,
        "seq": record.seq,
        "src": src,
        "dst": dst,
        "trigger": record.trigger.value,
        "source": source.kind if source is not None else None,
        "code": source.code if source is not None else None,
        "detail": redact_text(record.detail),
        "in_state_ms": round(record.in_state * 1000, 3),
        "internal": isinstance(record, InternalTransition),
        "reconnect": reconnect,
        "at": round(record.at, 6),
        "ts": round(time.time(), 6),
        "run": RUN_ID,
    }


class TransitionLogger:
    """A machine listener that writes each record as a ``transition`` event at INFO.

    With INFO disabled a record costs one level check: no field is built. The fields need
    no further redaction (the label is redacted once, here; the detail by
    :func:`transition_fields`), which keeps an enabled record cheap too.
    """

    __slots__ = ("client",)

    def __init__(self, client: str) -> None:
        self.client = redact_text(client, _FIELD_LIMIT)

    def __call__(self, record: Record) -> None:
        try:  # not contextlib.suppress: a try block costs nothing when nothing is raised
            sink = _sink(logging.INFO)
            if sink is not None:
                fields = transition_fields(self.client, record)
                _write(sink, logging.INFO, _TRANSITION, fields, cleaned=True)
        except Exception:  # the app's logging must not break the machine
            pass


class _RedactingAdapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    """Formats each websockets record itself and hands on only its redacted text."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except (TypeError, ValueError):
            text = " ".join(str(part) for part in (msg, *args))
        exc = _exception(kwargs.pop("exc_info", None))
        kwargs.pop("stack_info", None)
        text = redact_text(text, None)
        if exc is not None:
            text = f"{text}\n{redact_exception(exc, _EXCEPTION_LIMIT)}"
        extra = {**(self.extra or {}), **kwargs.pop("extra", {})}
        self.logger.log(level, "%s", text, extra=extra, **kwargs)


def websockets_logger(label: str) -> logging.LoggerAdapter:  # type: ignore[type-arg]
    """A logger to pass as ``logger=`` to ``websockets.asyncio.client.connect``.

    It writes to websockets' usual ``websockets.client`` logger, so an app's logging
    configuration treats it as before, but every line is redacted first: the request line's
    query secrets, ``Authorization`` / ``Cookie`` / ``*-Token`` header values, secrets in
    frames (the auth message) and close reasons, and exception text. ``label`` (the client's)
    is available to formatters as ``record.statesock_client``.
    """
    return _RedactingAdapter(logging.getLogger("websockets.client"), {"statesock_client": label})
