"""The ``statesock`` command line: diagrams, transition-log inspection, a demo, a debug client.

This module imports no network code at the top: ``demo`` and ``connect`` import the client
lazily, so ``statesock diagram`` and ``statesock logs`` work without touching sockets.
The CLI is the one place in statesock that prints, and, being an application, the one
place that configures structlog (for ``demo`` and ``connect`` only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import diagram
from .log_reader import LogRecord, ReadResult, check, edge_counts, read_records, summarise

__all__ = ["Style", "format_transition", "main"]


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
        self.enabled = bool(force) or (stream.isatty() and not os.environ.get("NO_COLOR"))

    def __call__(self, text: str, name: str) -> str:
        code = self.CODES.get(name)
        if not self.enabled or code is None:
            return text
        return f"\033[{code}m{text}\033[0m"


def format_transition(data: Mapping[str, Any], style: Style, retry_in: Any = None) -> str:
    """One readable line for a transition record (used by ``logs``, ``demo``, ``connect``)."""
    stamp = data.get("timestamp")
    if isinstance(stamp, str) and "T" in stamp:
        when = stamp.split("T", 1)[1][:12]  # HH:MM:SS.mmm of an ISO timestamp
    elif isinstance(data.get("at"), int | float):
        when = f"{data['at']:.3f}"
    else:
        when = str(stamp or "")
    src, dst = str(data.get("src")), str(data.get("dst"))
    arrow = f"{style(src, src)} → {style(dst, dst)}"
    if data.get("internal") or src == dst:
        arrow = f"{style(src, src)} (internal)"
    parts = [style(str(when), "dim"), str(data.get("client", "")), arrow, str(data.get("trigger"))]
    source = data.get("source")
    if source:
        code = data.get("code")
        parts.append(f"source={source}" + (f"({code})" if code is not None else ""))
    detail = data.get("detail")
    if detail and source is None:
        parts.append(str(detail))
    elif detail and source:
        parts.append(style(str(detail), "dim"))
    if retry_in is not None:
        parts.append(style(f"retry in {float(retry_in):.2f}s", "bold"))
    return "  ".join(parts)


def _write(text: str, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


def _read(path: str, client: str | None = None) -> ReadResult | None:
    try:
        return read_records(path, client)
    except OSError as exc:
        print(f"statesock: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return None


def _skipped_line(result: ReadResult) -> str:
    if not result.skipped:
        return "skipped: none"
    parts = ", ".join(f"{count} {why}" for why, count in sorted(result.skipped.items()))
    return f"skipped: {sum(result.skipped.values())} ({parts})"


# -- diagram ------------------------------------------------------------------------------


def _cmd_diagram(args: argparse.Namespace) -> int:
    counts = None
    if args.log is not None:
        result = _read(args.log)
        if result is None:
            return 2
        counts = edge_counts(result.records)
    try:
        text = diagram.render(args.format, counts)
    except diagram.DiagramError as exc:
        print(f"statesock diagram: {exc}", file=sys.stderr)
        return 2
    _write(text, args.output)
    return 0


# -- logs ---------------------------------------------------------------------------------


def _retry_delays(result: ReadResult) -> dict[tuple[str, int], Any]:
    """Attach each reconnect_scheduled to the transition line just before it."""
    delays: dict[tuple[str, int], Any] = {}
    by_line = sorted(result.records, key=lambda r: r.line)
    for note in result.annotations:
        before = [r for r in by_line if r.client == note.client and r.line < note.line]
        if before:
            delays[(note.client, before[-1].line)] = note.data.get("retry_in")
    return delays


def _cmd_logs(args: argparse.Namespace) -> int:
    result = _read(args.file, args.client)
    if result is None:
        return 2
    records: list[LogRecord] = result.records
    if args.check:
        violation, warnings = check(records)
        for warning in warnings:
            print(f"warning: {warning}")
        print(_skipped_line(result))
        if violation is not None:
            print(f"illegal transition at {violation}")
            return 1
        print(f"ok: {len(records)} records follow the machine's table")
        return 0
    summaries = summarise(records)
    if args.json:
        payload = {
            "records": len(records),
            "lines": result.lines,
            "skipped": dict(result.skipped),
            "clients": [s.as_dict() for s in summaries],
        }
        print(json.dumps(payload, indent=2, sort_keys=True))
        return 0
    style = Style(sys.stdout)
    if not args.summary_only:
        delays = _retry_delays(result)
        for record in records:
            print(format_transition(record.data, style, delays.get((record.client, record.line))))
        print()
    for summary in summaries:
        print(style(f"client {summary.client}", "bold") + f"  ({summary.records} records)")
        total = sum(summary.time_in_state.values()) or 1.0
        for state, seconds in sorted(summary.time_in_state.items(), key=lambda kv: -kv[1]):
            print(f"  {state:<15} {seconds:>12.3f} s  {100 * seconds / total:5.1f}%")
        by_source = ", ".join(f"{k}={v}" for k, v in sorted(summary.disconnections.items()))
        print(f"  disconnections: {by_source or 'none'}")
        print(f"  reconnects: {summary.reconnects}")
        if summary.outages:
            print(
                f"  outages: {len(summary.outages)}, longest {summary.longest_outage:.3f} s, "
                f"time to reconnect p50 {summary.p50_reconnect:.3f} s, "
                f"p95 {summary.p95_reconnect:.3f} s"
            )
        else:
            print("  outages: none that ended in connected")
    print(f"{len(records)} records from {result.lines} lines; {_skipped_line(result)}")
    return 0


# -- demo and connect (lazy: they need the network stack) ----------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(log_file=args.log_file, speed=args.speed)


def _cmd_connect(args: argparse.Namespace) -> int:
    from .debug_client import run_connect

    code: int = run_connect(args)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statesock",
        description="statesock: see, inspect and try the connection state machine.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("diagram", help="render the connection state diagram")
    p.add_argument("--format", choices=diagram.FORMATS, default="mermaid")
    p.add_argument("-o", "--output", help="write to FILE instead of standard output")
    p.add_argument("--log", help="annotate each edge with its count in a JSON-lines log")
    p.set_defaults(func=_cmd_diagram)

    p = sub.add_parser("logs", help="inspect a JSON-lines transition log")
    p.add_argument("file", help="the log file, or - for standard input")
    p.add_argument("--check", action="store_true", help="replay against the machine's table")
    p.add_argument("--client", help="only this client's records")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--summary-only", action="store_true", help="no timeline, just summaries")
    p.set_defaults(func=_cmd_logs)

    p = sub.add_parser("demo", help="a guided tour: a client recovering from scripted faults")
    p.add_argument("--log-file", default="statesock-demo.jsonl", help="where to write the log")
    p.add_argument("--speed", type=float, default=1.0, help="time scale (2 = twice as fast)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser("connect", help="a debugging client for any WebSocket server")
    p.add_argument("url")
    p.add_argument("--subprotocol", action="append", default=[], help="repeatable")
    p.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    p.add_argument("--ping-interval", type=float, default=25.0)
    p.add_argument("--pong-timeout", type=float, default=3.0)
    p.add_argument(
        "--ping",
        choices=("frame", "json"),
        default="frame",
        help="health checks as WebSocket Ping frames (any server) or JSON health.check messages",
    )
    p.add_argument("--pong-type", default="health.check", help="JSON 'type' of a pong")
    p.add_argument("--ack-type", help="JSON 'type' of the auth ack (default: the pong type)")
    p.add_argument("--auth-message", help="JSON or text to send once the socket opens")
    p.add_argument("--no-ack", action="store_true", help="connected at once, no ack expected")
    p.add_argument("--log-file", help="also write the JSON-lines transition log here")
    p.set_defaults(func=_cmd_connect)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
