"""Console output for the CLI's live commands (``demo``, ``connect``).

:func:`configure` points structlog at one processor that writes every event as a JSON line
to an optional file (the format ``statesock logs`` reads) and prints transitions and
recovery decisions as readable, coloured lines. Only the CLI calls this: the library itself
never configures logging.
"""

from __future__ import annotations

import json
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from .cli import Style, format_transition

__all__ = ["ConsoleSink", "configure"]

_NOTABLE = {
    "recovery_stopped": "recovery stopped",
    "reconnect_now": "reconnecting now",
    "recovery_waiting": "waiting",
    "network_status": "network",
    "decode_failed": "message skipped (decoder failed)",
    "events_dropped": "events dropped",
    "callback_failed": "callback failed",
    "hook_interrupted": "hook interrupted",
}


class ConsoleSink:
    def __init__(self, style: Style, log_file: TextIO | None, out: TextIO = sys.stdout) -> None:
        self.style = style
        self.log_file = log_file
        self.out = out
        self.transitions = 0

    def __call__(self, logger: Any, method: str, event: MutableMapping[str, Any]) -> Any:
        if self.log_file is not None:
            self.log_file.write(json.dumps(event, default=str, sort_keys=True) + "\n")
            self.log_file.flush()
        name = event.get("event")
        if name == "transition":
            self.transitions += 1
            if event.get("trigger") != "pong":  # pongs are logged, but too chatty to show
                print(format_transition(event, self.style), file=self.out, flush=True)
        elif name == "reconnect_scheduled":
            line = (
                f"    ↻ reconnect in {float(event['retry_in']):.2f} s (attempt {event['attempt']})"
            )
            print(self.style(line, "bold"), file=self.out, flush=True)
        elif name in _NOTABLE:
            extra = {k: v for k, v in event.items() if k not in ("event", "timestamp", "level")}
            fields = " ".join(f"{k}={v}" for k, v in sorted(extra.items()) if k != "client")
            print(self.style(f"    • {_NOTABLE[name]}: {fields}", "dim"), file=self.out, flush=True)
        raise structlog.DropEvent


def configure(log_file: TextIO | None, out: TextIO = sys.stdout) -> ConsoleSink:
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
