"""Console output for the CLI: colours, one readable line per transition, the live sink.

:class:`Style` and :func:`format_transition` are shared by ``logs`` (reading a file) and the
live commands ``demo`` and ``connect``. :func:`configure` points structlog at
:class:`ConsoleSink`, which writes every event as a JSON line to an optional file (the format
``statesock logs`` reads) and prints transitions and recovery decisions as they happen. Only
the CLI calls it: the library never configures logging. structlog (which loads asyncio) is
imported only inside :func:`configure` and the sink, so ``statesock logs`` stays light.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

from ..log_schema import LogEvent
from ..redaction import redact_text
from ..states import Trigger

__all__ = ["ConsoleSink", "Style", "clean", "configure", "format_transition"]


class Style:
    """ANSI colours when writing to a terminal (and NO_COLOR is not set)."""

    CODES: Mapping[str, str] = {
        "connected": "32",
        "connecting": "36",
        "authenticating": "36",
        "disconnecting": "33",
        "disconnected": "31",
        "initialized": "37",
        "dim": "2",
        "bold": "1",
    }

    def __init__(self, stream: TextIO) -> None:
        force = os.environ.get("FORCE_COLOR")
        isatty = getattr(stream, "isatty", lambda: False)
        self.enabled = bool(force) or (isatty() and not os.environ.get("NO_COLOR"))

    def __call__(self, text: str, name: str) -> str:
        code = self.CODES.get(name)
        if not self.enabled or code is None:
            return text
        return f"\033[{code}m{text}\033[0m"


# Log text is printed to a terminal: control characters (an escape sequence in a close
# reason, a newline in a client label) become U+FFFD instead of acting on the terminal.
_CONTROLS = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)], "\ufffd")


def clean(text: object) -> str:
    return str(text).translate(_CONTROLS)


def _shown(text: object) -> str:
    """Text from a record, for the terminal: secrets masked (statesock's own writer masked them
    already; this covers any other), control characters made harmless."""
    return clean(redact_text(str(text), None))


def format_transition(
    data: Mapping[str, Any], style: Style, when: str | None = None, who: str | None = None
) -> str:
    """One readable line for a transition record: time, client, src → dst, trigger, source."""
    if when is None:
        stamp = data.get("timestamp")
        at = data.get("at")
        if isinstance(stamp, str) and "T" in stamp:
            when = stamp.split("T", 1)[1][:12]  # HH:MM:SS.mmm of an ISO timestamp (live)
        elif isinstance(at, int | float) and not isinstance(at, bool):
            when = f"{at:.3f}"
        else:
            when = str(stamp or "")
    src, dst = _shown(data.get("src")), _shown(data.get("dst"))
    arrow = f"{style(src, src)} → {style(dst, dst)}"
    if data.get("internal") or src == dst:
        arrow = f"{style(src, src)} (internal)"
    client = _shown(who if who is not None else data.get("client", ""))
    parts = [style(clean(when), "dim"), client, arrow, _shown(data.get("trigger"))]
    source = data.get("source")
    if source:
        code = data.get("code")
        code_text = f"({_shown(code)})" if code is not None else ""
        parts.append(f"source={_shown(source)}{code_text}")
    detail = data.get("detail")
    if detail and not source:
        parts.append(_shown(detail))
    elif detail:
        parts.append(style(_shown(detail), "dim"))
    return "  ".join(parts)


# The events printed as one dim line each.
_NOTABLE: dict[str, str] = {
    LogEvent.RECOVERY_STOPPED: "recovery stopped",
    LogEvent.RECONNECT_NOW: "reconnecting now",
    LogEvent.RECOVERY_WAITING: "waiting",
    LogEvent.NETWORK_STATUS: "network",
    LogEvent.DECODE_FAILED: "message skipped (decoder failed)",
    LogEvent.EVENTS_DROPPED: "events dropped",
    LogEvent.CALLBACK_FAILED: "callback failed",
    LogEvent.HOOK_INTERRUPTED: "hook interrupted",
}


class ConsoleSink:
    """The last structlog processor: log to a file as JSON lines, print what matters."""

    def __init__(self, style: Style, log_file: TextIO | None, out: TextIO = sys.stdout) -> None:
        self.style = style
        self.log_file = log_file
        self.out = out
        self.transitions = 0

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        import structlog

        if self.log_file is not None:
            self.log_file.write(json.dumps(event, default=str, sort_keys=True) + "\n")
            self.log_file.flush()
        name = event.get("event")
        if name == LogEvent.TRANSITION:
            self.transitions += 1
            if event.get("trigger") != Trigger.PONG:  # pongs are logged, but too chatty to show
                print(format_transition(event, self.style), file=self.out, flush=True)
        elif name == LogEvent.RECONNECT_SCHEDULED:
            retry_in = event.get("retry_in")
            delay = f"{retry_in:.2f} s" if isinstance(retry_in, int | float) else str(retry_in)
            line = f"    ↻ reconnect in {delay} (attempt {event.get('attempt')})"
            print(self.style(line, "bold"), file=self.out, flush=True)
        elif name in _NOTABLE:
            extra = {k: v for k, v in event.items() if k not in ("event", "timestamp", "level")}
            fields = " ".join(f"{k}={v}" for k, v in sorted(extra.items()) if k != "client")
            line = f"    • {_NOTABLE[name]}: {redact_text(fields, None)}"
            print(self.style(line, "dim"), file=self.out, flush=True)
        raise structlog.DropEvent


def configure(log_file: TextIO | None, out: TextIO = sys.stdout) -> ConsoleSink:
    import structlog

    sink = ConsoleSink(Style(out), log_file, out)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            sink,
        ],
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    return sink
