"""The ``statesock`` command line: diagrams, log inspection, an HTML report, a demo, a client.

This module imports no network code: ``demo`` and ``connect`` import the client lazily, so
``statesock diagram``, ``logs`` and ``report`` work without touching sockets. Log commands
stream (see :mod:`statesock.tools.log_reader`): any number of files, globs, ``.gz`` files and ``-``.

What the log commands show is redacted: a log written by an older statesock or by another
writer may hold secrets (``token=...``, ``Bearer ...``) in any text field, and neither the
timeline, the summaries, ``--json``, ``--check`` nor the report reprints them
(:func:`statesock.tools.log_reader.shown`).

Exit codes: 0 success; 1 an illegal transition (``--check``), or no valid record was read;
2 unusable arguments or unreadable input; ``connect`` adds its own (see its help).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..states import Trigger
from . import diagram
from .console import Style, clean
from .log_analysis import Checker, EdgeCounter, LaneLabels, LaneSummary, Summariser
from .log_reader import LogReader, LogRecord, RetryNote, shown

__all__ = ["build_parser", "main", "version"]

_PONG = str(Trigger.PONG)  # a plain str: comparing with an enum member costs 5x more


def version() -> str:
    """``statesock.__version__``, else the installed distribution's version."""
    from importlib import metadata

    import statesock as package

    value = getattr(package, "__version__", None)
    if value is not None:
        return str(value)
    try:
        return metadata.version("statesock")
    except metadata.PackageNotFoundError:
        return "unknown"


def _write(text: str, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


def _reader(args: argparse.Namespace, files: Sequence[str]) -> LogReader:
    return LogReader(files, getattr(args, "client", None))


def _read_problems(reader: LogReader, what: str) -> int | None:
    """Report unreadable inputs; the exit code when nothing valid was read, else None."""
    for error in reader.errors:
        print(f"statesock {what}: cannot read {clean(shown(error))}", file=sys.stderr)
    if reader.valid:
        return None
    if not reader.files:
        return 2
    print(
        f"statesock {what}: no valid transition records in {reader.lines} lines; "
        f"{reader.skipped_text()}",
        file=sys.stderr,
    )
    return 1


# -- diagram ------------------------------------------------------------------------------


def _cmd_diagram(args: argparse.Namespace) -> int:
    counts = None
    if args.log:
        reader = _reader(args, args.log)
        counter = EdgeCounter()
        for item in reader:
            if isinstance(item, LogRecord):
                counter.feed(item)
        problem = _read_problems(reader, "diagram")
        if problem is not None:
            return problem
        counts = dict(counter.counts)
    try:
        text = diagram.render(args.format, counts)
    except diagram.DiagramError as exc:
        print(f"statesock diagram: {exc}", file=sys.stderr)
        return 2
    _write(text, args.output)
    return 0


# -- logs ---------------------------------------------------------------------------------


def format_wall(epoch: float) -> str:
    """A date and time in UTC, to the millisecond: 2026-11-30 22:26:01.660Z."""
    try:
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return f"{epoch:.3f}"
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class Timeline:
    """Prints records as they stream by; each lane's pongs collapse into one count line."""

    def __init__(self, style: Style, show_pongs: bool = False) -> None:
        self.style = style
        self.show_pongs = show_pongs
        self.pongs: dict[tuple[str, str], int] = {}
        self.label = LaneLabels()
        self.labels: dict[tuple[str, str], str] = {}  # cleaned, per lane
        self.buffer: list[str] = []
        self._second = -1
        self._prefix = ""

    def _flush_pongs(self, lane: tuple[str, str]) -> None:
        count = self.pongs.pop(lane, 0)
        if count:
            who = clean(self.label(*lane))
            text = f"    ♥ {who}: {count} pong{'s' if count != 1 else ''} while connected"
            self.buffer.append(self.style(text, "dim"))

    def feed(self, item: LogRecord | RetryNote) -> None:
        if isinstance(item, RetryNote):
            self._flush_pongs(item.lane)
            attempt = f" (attempt {item.attempt})" if item.attempt is not None else ""
            who = clean(self.label(*item.lane))
            text = f"    ↻ {who}: reconnect in {item.retry_in:.2f} s{attempt}"
            self.buffer.append(self.style(text, "bold"))
        elif item.trigger == _PONG and item.internal and not self.show_pongs:
            lane = (item.client, item.run)
            self.pongs[lane] = self.pongs.get(lane, 0) + 1
        else:
            self._flush_pongs(item.lane)
            if item.wall is not None:
                when = self._when(item.wall)
            elif item.at is not None:
                when = f"{item.at:.3f}"
            else:
                when = "-"
            self.buffer.append(self._line(item, when))
        if len(self.buffer) >= 2000:
            self.flush()

    def _line(self, record: LogRecord, when: str) -> str:
        """What format_transition prints, from the validated record (this runs per line)."""
        style, src = self.style, record.src
        who = self.labels.get(record.lane)
        if who is None:
            who = self.labels[record.lane] = clean(self.label(record.client, record.run))
        if record.internal:
            arrow = f"{style(src, src)} (internal)"
        else:
            arrow = f"{style(src, src)} → {style(record.dst, record.dst)}"
        text = f"{style(when, 'dim')}  {who}  {arrow}  {clean(record.trigger)}"
        if record.source:
            code = f"({record.code})" if record.code is not None else ""
            text += f"  source={clean(record.source)}{code}"
            if record.detail:
                text += "  " + style(clean(record.detail), "dim")
        elif record.detail:
            text += "  " + clean(record.detail)
        return text

    def _when(self, epoch: float) -> str:
        minute = math.floor(epoch / 60)
        if minute != self._second:  # one strftime per minute of log, not per line
            self._second, self._prefix = minute, format_wall(minute * 60)[:-7]
        millis = (round(epoch * 1e6) - minute * 60_000_000) // 1000  # as datetime rounds
        return f"{self._prefix}{millis // 1000:02d}.{millis % 1000:03d}Z"

    def flush(self, final: bool = False) -> None:
        if final:
            for lane in list(self.pongs):
                self._flush_pongs(lane)
        if self.buffer:
            sys.stdout.write("\n".join(self.buffer) + "\n")
            self.buffer.clear()


def _print_lane(lane: LaneSummary, style: Style) -> None:
    label = clean(lane.label)
    print(style(f"client {label}", "bold") + f"  ({lane.records} records, {lane.pongs} pongs)")
    total = sum(lane.time_in_state.values()) or 1.0
    for state, seconds in sorted(lane.time_in_state.items(), key=lambda kv: -kv[1]):
        print(f"  {state:<15} {seconds:>12.3f} s  {100 * seconds / total:5.1f}%")
    by_source = ", ".join(f"{clean(k)}={v}" for k, v in sorted(lane.disconnections.items()))
    print(f"  disconnections: {by_source or 'none'}")
    print(f"  reconnects: {lane.reconnects}")
    if lane.outages:
        print(
            f"  outages: {len(lane.outages)}, longest {lane.longest_outage:.3f} s, "
            f"time to reconnect p50 {lane.p50_reconnect:.3f} s, p95 {lane.p95_reconnect:.3f} s"
        )
    else:
        print("  outages: none that ended in connected")


def _print_fleet(fleet: dict[str, Any], style: Style) -> None:
    print(style(f"fleet: {fleet['clients']} clients, {fleet['runs']} runs", "bold"))
    total = sum(fleet["time_in_state_s"].values()) or 1.0
    for state, seconds in sorted(fleet["time_in_state_s"].items(), key=lambda kv: -kv[1]):
        print(f"  {state:<15} {seconds:>12.3f} s  {100 * seconds / total:5.1f}%")
    by_source = ", ".join(f"{clean(k)}={v}" for k, v in fleet["disconnections"].items())
    print(f"  disconnections: {by_source or 'none'}; reconnects: {fleet['reconnects']}")
    if fleet["outages"]:
        print(
            f"  outages: {fleet['outages']}, longest {fleet['longest_outage_s']:.3f} s, "
            f"time to reconnect p50 {fleet['p50_time_to_reconnect_s']:.3f} s, "
            f"p95 {fleet['p95_time_to_reconnect_s']:.3f} s"
        )


def _cmd_check(reader: LogReader) -> int:
    checker = Checker()
    for item in reader:
        if isinstance(item, LogRecord) and checker.feed(item) is not None:
            break
    problem = _read_problems(reader, "logs")
    if problem is not None:
        return problem
    for warning in checker.warnings:
        print(f"warning: {warning}")
    if checker.warning_count > len(checker.warnings):
        print(f"warning: … and {checker.warning_count - len(checker.warnings)} more seq gaps")
    print(reader.skipped_text())
    if checker.violation is not None:
        print(f"illegal transition at {checker.violation}")
        return 1
    print(
        f"ok: {checker.records} records follow the machine's table "
        f"({checker.lanes} client runs, {reader.lines} lines)"
    )
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    if args.html:
        return _report(args.files, args.html, args.client, None)
    reader = _reader(args, args.files)
    if args.check:
        return _cmd_check(reader)
    summariser = Summariser()
    style = Style(sys.stdout)
    timeline = None if args.json or args.summary_only else Timeline(style, args.pongs)
    for item in reader:
        if isinstance(item, LogRecord):
            summariser.feed(item)
        if timeline is not None:
            timeline.feed(item)
    if timeline is not None:
        timeline.flush(final=True)
    problem = _read_problems(reader, "logs")
    if problem is not None:
        return problem
    lanes = summariser.finish()
    if args.json:
        payload = {
            "records": reader.records,
            "lines": reader.lines,
            "files": reader.files,
            "skipped": dict(sorted(reader.skipped.items())),
            "fleet": summariser.fleet(),
            "clients": [lane.as_dict() for lane in lanes],
        }
        # allow_nan=False: the output is strict JSON or an error, never NaN or Infinity.
        print(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False))
        return 0
    if timeline is not None:
        print()
    for lane in lanes:
        _print_lane(lane, style)
    if len(lanes) > 1:
        _print_fleet(summariser.fleet(), style)
    print(f"{reader.records} records from {reader.lines} lines; {reader.skipped_text()}")
    return 0


# -- report -------------------------------------------------------------------------------


def _report(files: Sequence[str], output: str, client: str | None, title: str | None) -> int:
    from .report import build_report

    reader = LogReader(files, client)
    try:
        report = build_report(reader, title=title or "statesock report: " + ", ".join(files))
    except OSError as exc:
        print(f"statesock report: {exc}", file=sys.stderr)
        return 2
    problem = _read_problems(reader, "report")
    if problem is not None:
        return problem
    try:
        _write(report.html, output)
    except OSError as exc:
        print(f"statesock report: cannot write {output}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if output != "-":
        print(
            f"wrote {output}: {report.lanes_shown} of {report.lanes_total} client runs drawn, "
            f"{reader.records} records; {reader.skipped_text()}"
        )
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    return _report(args.files, args.output, args.client, args.title)


# -- demo and connect (lazy: they need the network stack) ----------------------------------


def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(log_file=args.log_file, speed=args.speed, report=args.report)


def _cmd_connect(args: argparse.Namespace) -> int:
    from .debug_client import run_connect

    return run_connect(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statesock",
        description="statesock: see, inspect and try the connection state machine.",
    )
    parser.add_argument("--version", action="version", version=f"statesock {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    log_help = "JSON-lines log files, globs, .gz files, or - for standard input"

    p = sub.add_parser("diagram", help="render the connection state diagram")
    p.add_argument("--format", choices=diagram.FORMATS, default="mermaid", help="output format")
    p.add_argument("-o", "--output", help="write to FILE instead of standard output")
    p.add_argument(
        "--log", nargs="+", metavar="LOG", help="annotate each edge with its count in LOG"
    )
    p.set_defaults(func=_cmd_diagram)

    p = sub.add_parser("logs", help="inspect transition logs: timeline, summary, check")
    p.add_argument("files", nargs="+", metavar="LOG", help=log_help)
    p.add_argument("--check", action="store_true", help="replay against the machine's table")
    p.add_argument("--client", help="only this client's records")
    p.add_argument("--json", action="store_true", help="print the summaries as strict JSON")
    p.add_argument("--summary-only", action="store_true", help="no timeline, just summaries")
    p.add_argument("--pongs", action="store_true", help="a line per pong instead of a count")
    p.add_argument("--html", metavar="FILE", help="write the HTML report instead (see report)")
    p.set_defaults(func=_cmd_logs)

    p = sub.add_parser("report", help="write a self-contained HTML report of transition logs")
    p.add_argument("files", nargs="+", metavar="LOG", help=log_help)
    p.add_argument(
        "-o", "--output", default="statesock-report.html", help="the HTML file (- for stdout)"
    )
    p.add_argument("--client", help="only this client's records")
    p.add_argument("--title", help="the report's title")
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("demo", help="a guided tour: a client recovering from scripted faults")
    p.add_argument("--log-file", default="statesock-demo.jsonl", help="where to write the log")
    p.add_argument("--report", default="statesock-demo.html", help="where to write the report")
    p.add_argument("--speed", type=float, default=1.0, help="time scale (2 = twice as fast)")
    p.set_defaults(func=_cmd_demo)

    p = sub.add_parser(
        "connect",
        help="a debugging client for any WebSocket server",
        description=(
            "Connect to URL, print every transition and message, send each line typed on "
            "standard input as a message, and reconnect per the default policy. Exit codes: "
            "0 after a normal end (end of input once connected, or the server closing with 1000), "
            "1 when the reconnect policy gave up (the final cause is printed), 2 for unusable "
            "arguments, 130 on Ctrl-C, 143 on SIGTERM."
        ),
    )
    p.add_argument("url", help="the server's ws:// or wss:// URL")
    p.add_argument(
        "--subprotocol", action="append", default=[], help="offer this subprotocol (repeatable)"
    )
    p.add_argument(
        "--header", action="append", default=[], help="'Name: value' to send (repeatable)"
    )
    p.add_argument(
        "--ping-interval",
        type=float,
        default=25.0,
        help="seconds between health checks (default: %(default)s)",
    )
    p.add_argument(
        "--pong-timeout",
        type=float,
        default=3.0,
        help="seconds to wait for a pong before the link counts as dead (default: %(default)s)",
    )
    p.add_argument(
        "--ping",
        choices=("frame", "json"),
        default="frame",
        help="health checks as WebSocket Ping frames (any server) or JSON health.check messages",
    )
    p.add_argument("--pong-type", default="health.check", help="JSON 'type' of a pong message")
    p.add_argument(
        "--ack-type",
        help="require an auth ack: the JSON 'type' of the server's ack message "
        "(default: no ack, connected as soon as the socket opens)",
    )
    p.add_argument("--auth-message", help="JSON or text to send once the socket opens")
    p.add_argument(
        "--insecure", action="store_true", help="wss: do not verify the server's certificate"
    )
    p.add_argument("--cafile", help="wss: verify the server against these CA certificates (PEM)")
    p.add_argument(
        "--keep-open",
        action="store_true",
        help="keep running after standard input ends (default: end of input ends the session)",
    )
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
        # The reader went away (``statesock logs big.jsonl | head``): not an error. Point
        # stdout at /dev/null so that the interpreter's final flush does not complain.
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
