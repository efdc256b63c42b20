"""The ``statesock`` command line: diagrams, transition-log inspection, a demo, a debug client.

This module imports no network code at the top: ``demo`` and ``connect`` import the client
lazily, so ``statesock diagram`` and ``statesock logs`` work without touching sockets.
The CLI is the one place in statesock that prints.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import diagram

__all__ = ["main"]


def _write(text: str, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
    else:
        Path(output).write_text(text, encoding="utf-8")


def _cmd_diagram(args: argparse.Namespace) -> int:
    try:
        text = diagram.render(args.format)
    except diagram.DiagramError as exc:
        print(f"statesock diagram: {exc}", file=sys.stderr)
        return 2
    _write(text, args.output)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statesock",
        description="Inspect statesock's connection state machine and its transition logs.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("diagram", help="render the connection state diagram")
    p.add_argument("--format", choices=diagram.FORMATS, default="mermaid")
    p.add_argument("-o", "--output", help="write to FILE instead of standard output")
    p.set_defaults(func=_cmd_diagram)
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
