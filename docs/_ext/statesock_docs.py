"""Sphinx directives that generate the site's tables from statesock's own code.

* ``statesock-options`` (argument ``client`` or ``recovery``): every option of
  :class:`~statesock.client.WebSocketClient` (the fields of
  :class:`~statesock.settings.ClientSettings`: name, type, default) or every keyword
  parameter of :class:`~statesock.recovery.ConnectionRecoveryHandler` (its signature), with
  its unit and meaning. A meaning comes from the code when it has one (a ``#:`` comment or a
  string after the ``ClientSettings`` field, or a ``:param name:`` field in the class's
  docstring), else from :data:`OPTION_DOCS` below. An option with neither, or a docs entry for
  an option that no longer exists, is a build warning, so with ``-W`` the table cannot fall
  out of step with the code.
* ``statesock-policy``: :func:`statesock.sources.default_reconnect_policy` (and
  :func:`~statesock.sources.is_auth_rejection`) evaluated over a list of disconnection
  sources: the reconnect table as the code decides it, not as someone wrote it down.
* ``statesock-rules``: the machine's table, :data:`statesock.machine.RULES`, a row per rule,
  with the comment written above that rule in ``statesock/machine.py``.
* ``statesock-instruments``: the OpenTelemetry instruments, from
  :data:`statesock.metrics.INSTRUMENTS` (name, kind, unit, what it counts).
* ``<!-- include-readme: TITLE -->`` on a line of its own in a page: replaced, as the page is
  read, by the README's ``## TITLE`` section (its body, headings one level up), so that a
  section the README owns (Performance) is written once.

These hooks make the code's own docstrings render cleanly in the reference:

* a reference that docstrings write for their own module's context (``:class:`Finished```,
  ``:meth:`close_all```) resolves when exactly one documented object has that name;
* a private base class (``_Notifier``) is left out of "Bases:";
* a class, constant or enum member with no docstring of its own shows none, rather than the
  docstring of its base or type (``int([x]) -> integer``, "Create a collection of name/value
  pairs", "Base class for protocol classes");
* a section heading in a module docstring ("Theory of operation") becomes a rubric, so that
  module docstrings do not nest sections inside the reference's pages.

Every table is built as docutils nodes (no markup is parsed), so the directives work the
same from MyST Markdown and from reStructuredText pages.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

import statesock.option_docs as _option_docs

logger = logging.getLogger(__name__)

# -- each option's unit and meaning -----------------------------------------------------------
# (unit, meaning) of each option: statesock/option_docs.py, the same text help() shows.
OPTION_DOCS = _option_docs.OPTIONS

# Shown instead of an annotation that says only ``Any``.
TYPE_SHOWN = {
    "headers": "Mapping[str, str] | Iterable[tuple[str, str]] | Callable[[], ...] | None",
    "query_params": "Mapping[str, str | int | float] | Iterable[tuple[str, ...]] "
    "| Callable[[], ...] | None",
}

# -- the options -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Option:
    name: str
    type: str
    default: str
    unit: str
    meaning: str


def _type_text(annotation: object) -> str:
    if isinstance(annotation, typing.ForwardRef):  # TypedDict keys under PEP 563
        annotation = annotation.__forward_arg__
    text = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
    text = text.replace("ssl_module.", "ssl.")
    return re.sub(r"\b(?:collections\.abc|typing)\.", "", text)


def _shown_type(name: str, annotation: object) -> str:
    text = _type_text(annotation)
    return TYPE_SHOWN.get(name, text) if text == "Any" else text


def _default_text(value: object) -> str:
    if value is inspect.Parameter.empty:
        return "required"
    if callable(value) and hasattr(value, "__qualname__"):
        module = getattr(value, "__module__", "") or ""
        return f"{module}.{value.__qualname__}" if module else value.__qualname__
    if isinstance(value, int) and not isinstance(value, bool) and value >= 2**16:
        exponent = value.bit_length() - 1
        if value == 2**exponent:
            return f"2**{exponent}"
    return repr(value)


PARAM_FIELD = re.compile(r"^\s*:param (\w+):\s*(.*?)(?=^\s*:\w|\Z)", re.DOTALL | re.MULTILINE)


def _code_docs(module: str, owner: type) -> dict[str, str]:
    """What the code says of each option: docstrings written on the attributes of ``owner``
    (``#:`` or a string after the field), and the ``:param name:`` fields of its docstring."""
    found: dict[str, str] = {}
    for text in (owner.__doc__ or "", getattr(owner, "__init__", None).__doc__ or ""):
        for name, meaning in PARAM_FIELD.findall(inspect.cleandoc(text)):
            found[name] = " ".join(meaning.split())
    try:
        attributes = ModuleAnalyzer.for_module(module).find_attr_docs()
    except Exception:  # the analyzer found no source: no attribute docs
        return found
    for (cls, name), lines in attributes.items():
        if cls == owner.__name__:
            found[name] = " ".join(" ".join(lines).split())
    return found


def client_options() -> list[Option]:
    from statesock.settings import ClientOptions, ClientSettings

    annotations = ClientOptions.__annotations__
    in_code = _code_docs("statesock.settings", ClientSettings)
    written = OPTION_DOCS["client"]
    options = []
    for field in dataclasses.fields(ClientSettings):
        unit, meaning = written.get(field.name, ("", ""))
        options.append(
            Option(
                field.name,
                _shown_type(field.name, annotations.get(field.name, field.type)),
                _default_text(field.default),
                unit,
                in_code.get(field.name) or meaning,
            )
        )
    _check_docs("client", [o.name for o in options], in_code)
    if set(annotations) != {o.name for o in options}:
        logger.warning(
            "statesock-options: ClientOptions keys %s differ from ClientSettings fields %s",
            sorted(annotations),
            sorted(o.name for o in options),
        )
    return options


def recovery_options() -> list[Option]:
    from statesock.recovery import ConnectionRecoveryHandler

    signature = inspect.signature(ConnectionRecoveryHandler.__init__)
    hints = ConnectionRecoveryHandler.__init__.__annotations__
    in_code = _code_docs("statesock.recovery", ConnectionRecoveryHandler)
    written = OPTION_DOCS["recovery"]
    options = []
    for name, parameter in signature.parameters.items():
        if name == "self":
            continue
        unit, meaning = written.get(name, ("", ""))
        options.append(
            Option(
                name,
                _type_text(hints.get(name, "")),
                _default_text(parameter.default),
                unit,
                in_code.get(name) or meaning,
            )
        )
    _check_docs("recovery", [o.name for o in options], in_code)
    return options


def _check_docs(kind: str, names: Sequence[str], in_code: dict[str, str]) -> None:
    for name in names:
        if name not in in_code and name not in OPTION_DOCS[kind]:
            logger.warning("statesock-options: %s option %r has no meaning written", kind, name)
    for name in OPTION_DOCS[kind]:
        if name not in names:
            logger.warning("statesock-options: docs describe %s option %r, gone", kind, name)


OPTION_TABLES: dict[str, Callable[[], list[Option]]] = {
    "client": client_options,
    "recovery": recovery_options,
}


# -- the reconnect policy ----------------------------------------------------------------------


def policy_cases() -> list[tuple[str, str, Any]]:
    """(group, label, source) for every kind of disconnection the table shows."""
    from statesock import exceptions as x
    from statesock.events import ServerErrorEvent
    from statesock.sources import (
        NoPongReceived,
        ServerInitiated,
        SystemInitiated,
        Timeout,
        UserInitiated,
    )
    from statesock.states import ConnectionState

    def failure(error: BaseException) -> ServerInitiated:
        return ServerInitiated(error=error)

    cases: list[tuple[str, str, Any]] = [
        ("user", "`UserInitiated()`: `disconnect()` or `close()`", UserInitiated()),
        ("liveness", "`NoPongReceived()`: no answer within `pong_timeout`", NoPongReceived()),
        ("system", "`SystemInitiated()`: network lost, or `recovery.pause()`", SystemInitiated()),
    ]
    for state in (ConnectionState.CONNECTING, ConnectionState.AUTHENTICATING):
        cases.append(("timeout", f"`Timeout({state.value})`", Timeout(state)))
    closes = {
        1000: "normal closure",
        1001: "going away",
        1002: "protocol error",
        1003: "unsupported data",
        1006: "abnormal closure: no close frame",
        1007: "invalid payload",
        1008: "policy violation",
        1009: "message too big",
        1010: "mandatory extension",
        1011: "internal error",
        1012: "service restart",
        1013: "try again later",
        1014: "bad gateway",
        4000: "application-defined",
        4400: "application, 4400-4499 mirror HTTP 4xx: the client's fault",
        4401: "application: unauthorized",
        4403: "application: forbidden",
        4408: "application: timeout",
        4429: "application: too many requests",
        4500: "application-defined",
    }
    for code, meaning in closes.items():
        cases.append(("close", f"close `{code}` ({meaning})", ServerInitiated(code)))
    statuses = {
        400: "bad request",
        401: "unauthorized",
        403: "forbidden",
        404: "not found",
        408: "request timeout",
        429: "too many requests; `Retry-After` honoured",
        500: "server error",
        502: "bad gateway",
        503: "unavailable; `Retry-After` honoured",
    }
    for status, meaning in statuses.items():
        label = f"handshake refused with HTTP `{status}` ({meaning})"
        cases.append(("http", label, failure(x.HandshakeRejected(status))))
    errors: list[tuple[str, BaseException]] = [
        ("`TLSFailure`, certificate not verified", x.TLSFailure("bad cert", certificate=True)),
        ("`TLSFailure`, other TLS error", x.TLSFailure("handshake", certificate=False)),
        ("`InvalidURL`", x.InvalidURL("not a ws:// URL")),
        ("`ConfigurationError` (a setting the transport refused)", x.ConfigurationError("bad")),
        ("`NameResolutionFailed` (DNS)", x.NameResolutionFailed("no such host")),
        ("`ConnectionRefused`", x.ConnectionRefused("refused")),
        ("`ConnectTimeout`", x.ConnectTimeout("slow")),
        ("`ConnectionLost` (reset, no close frame)", x.ConnectionLost("reset")),
        ("`ProtocolViolation`", x.ProtocolViolation("not WebSocket")),
        ("`MessageTooLarge` (over `max_size`)", x.MessageTooLarge("too large")),
        ("`TokenUnavailable` (the token provider raised)", x.TokenUnavailable("failed")),
    ]
    for label, error in errors:
        cases.append(("failure", label, failure(error)))
    for retryable in (True, False):
        event = ServerErrorEvent("error", 42, retryable)
        cases.append(
            ("event", f"`ServerErrorEvent(retryable={retryable})`", ServerInitiated(error=event))
        )
    return cases


# -- the rules ---------------------------------------------------------------------------------


def rule_comments() -> list[str]:
    """The comment line written above each ``Rule(`` of RULES in statesock/machine.py."""
    from statesock import machine

    lines = Path(inspect.getfile(machine)).read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("RULES"))
    comments: list[str] = []
    pending = ""
    for line in lines[start + 1 :]:
        text = line.strip()
        if line.startswith(")"):
            break
        if text.startswith("#"):
            pending = text.lstrip("#").strip()
        elif text.startswith("Rule("):
            comments.append(pending)
            pending = ""
    return comments


# -- node helpers ------------------------------------------------------------------------------


def _inline(text: str) -> list[nodes.Node]:
    """``text`` with `backquoted` spans as code."""
    parts: list[nodes.Node] = []
    for index, piece in enumerate(text.split("`")):
        if not piece:
            continue
        parts.append(nodes.literal(piece, piece) if index % 2 else nodes.Text(piece))
    return parts


def _cell(content: str | Iterable[nodes.Node] = "", *, code: bool = False) -> nodes.entry:
    entry = nodes.entry()
    if isinstance(content, str):
        children: list[nodes.Node] = (
            [nodes.literal(content, content)] if code and content else _inline(content)
        )
    else:
        children = list(content)
    entry += nodes.paragraph("", "", *children)
    return entry


def _table(
    headers: Sequence[str], widths: Sequence[int], rows: Iterable[Sequence[nodes.entry]]
) -> nodes.table:
    table = nodes.table(classes=["statesock-table"])
    group = nodes.tgroup(cols=len(headers))
    table += group
    for width in widths:
        group += nodes.colspec(colwidth=width)
    head = nodes.thead()
    row = nodes.row()
    for header in headers:
        row += _cell(header)
    head += row
    group += head
    body = nodes.tbody()
    for cells in rows:
        row = nodes.row()
        for cell in cells:
            row += cell
        body += row
    group += body
    return table


# -- the directives ----------------------------------------------------------------------------


class OptionsDirective(SphinxDirective):
    """``statesock-options client`` / ``statesock-options recovery``: the options table."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        kind = self.arguments[0]
        if kind not in OPTION_TABLES:
            raise self.error(f"statesock-options takes one of {sorted(OPTION_TABLES)}")
        self.env.note_dependency(str(Path(__file__)))
        rows = []
        for option in OPTION_TABLES[kind]():
            name = _cell(option.name, code=True)
            # An anchor per option: the page links to it and tests/test_docs.py looks for it.
            name.children[0]["ids"].append(f"{kind}-option-{option.name}")
            rows.append(
                [
                    name,
                    _cell(option.type, code=True),
                    _cell(option.default, code=True),
                    _cell(option.unit),
                    _cell(option.meaning),
                ]
            )
        table = _table(("option", "type", "default", "unit", "meaning"), (14, 18, 12, 8, 48), rows)
        table["classes"] += ["statesock-options", f"statesock-{kind}-options"]
        return [table]


class PolicyDirective(SphinxDirective):
    """``statesock-policy``: what ``default_reconnect_policy`` answers, source by source."""

    def run(self) -> list[nodes.Node]:
        from statesock.sources import (
            SystemInitiated,
            default_reconnect_policy,
            is_auth_rejection,
        )

        rows = []
        for _group, label, source in policy_cases():
            verdict = "reconnect" if default_reconnect_policy(source) else "stop"
            if isinstance(source, SystemInitiated):
                verdict = "reconnect once the network is back / the app resumes"
            fresh = "one retry with a fresh token" if is_auth_rejection(source) else ""
            rows.append([_cell(label), _cell(verdict), _cell(fresh)])
        headers = ("disconnection source", "default policy", "with a token_provider")
        table = _table(headers, (50, 25, 25), rows)
        table["classes"].append("statesock-policy")
        return [table]


class RulesDirective(SphinxDirective):
    """``statesock-rules``: the machine's table, one row per rule, with its comment."""

    def run(self) -> list[nodes.Node]:
        from statesock.machine import RULES

        comments = rule_comments()
        if len(comments) != len(RULES):
            logger.warning(
                "statesock-rules: %d comments for %d rules in machine.py", len(comments), len(RULES)
            )
            comments = [""] * len(RULES)
        rows = []
        for rule, comment in zip(RULES, comments, strict=True):
            sources = ", ".join(state.value for state in rule.sources)
            dest = rule.dest.value if rule.dest is not None else "(stays)"
            guard = (rule.guard or "").lstrip("_").replace("_", " ")
            rows.append(
                [
                    _cell(rule.trigger.value, code=True),
                    _cell(sources),
                    _cell(dest),
                    _cell(rule.outcome.value),
                    _cell(guard),
                    _cell(comment),
                ]
            )
        headers = ("trigger", "from", "to", "outcome", "only if", "why")
        table = _table(headers, (12, 24, 14, 8, 12, 30), rows)
        table["classes"].append("statesock-rules")
        return [table]


# -- README sections ---------------------------------------------------------------------------

README_MARKER = re.compile(r"^<!-- include-readme: (.+?) -->$", re.MULTILINE)


def readme_section(title: str, readme: Path) -> str:
    """The body of README's ``## title`` section, its ``###`` headings made ``##``."""
    text = readme.read_text(encoding="utf-8")
    heading = f"\n## {title}\n"
    if heading not in text:
        raise ValueError(f"README.md has no section '## {title}'")
    body = text.split(heading, 1)[1]
    body = re.split(r"^## ", body, maxsplit=1, flags=re.MULTILINE)[0]
    return re.sub(r"^###(?=#* )", "##", body, flags=re.MULTILINE).strip() + "\n"


def include_readme(app: Sphinx, docname: str, source: list[str]) -> None:
    if "include-readme" not in source[0]:
        return
    readme = Path(app.srcdir).parent / "README.md"
    app.env.note_dependency(str(readme))

    def replace(match: re.Match[str]) -> str:
        try:
            return readme_section(match.group(1), readme)
        except ValueError as exc:
            logger.warning("%s: %s", docname, exc, location=docname)
            return ""

    source[0] = README_MARKER.sub(replace, source[0])


# -- docstring hooks ---------------------------------------------------------------------------


# Names that statesock imports for type checking only, as its annotations spell them, and the
# object of another project's inventory (docs/_inventories) each one is.
EXTERNAL_NAMES = {"MeterProvider": "opentelemetry.metrics.MeterProvider"}


def resolve_unqualified(
    app: Sphinx, env: Any, node: Any, contnode: nodes.Element
) -> nodes.Element | None:
    """Resolve a short Python reference that matches exactly one documented object."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    if target in EXTERNAL_NAMES:
        from sphinx.ext import intersphinx

        node["reftarget"] = EXTERNAL_NAMES[target]
        return intersphinx.missing_reference(app, env, node, contnode)
    domain = env.get_domain("py")
    wanted = set(domain.objtypes_for_role(node["reftype"]) or ())
    found = [
        (name, entry)
        for name, entry in domain.objects.items()
        if (name == target or name.endswith("." + target))
        and entry.objtype in wanted
        and not entry.aliased
    ]
    if len(found) > 1:  # prefer the reference's own class, then its own module
        context = [node.get("py:module"), node.get("py:class")]
        for depth in (2, 1):
            prefix = ".".join(part for part in context[:depth] if part) + "."
            near = [(name, entry) for name, entry in found if name.startswith(prefix)]
            if len(near) == 1 and prefix != ".":
                found = near
                break
    if len(found) != 1:
        return None
    from sphinx.util.nodes import make_refnode

    name, entry = found[0]
    return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id, contnode, name)


def public_bases(app: Sphinx, name: str, obj: object, options: Any, bases: list[type]) -> None:
    """Replace each private base class by its own bases."""
    index = 0
    while index < len(bases):
        base = bases[index]
        if base.__name__.startswith("_"):
            bases[index : index + 1] = [b for b in base.__bases__ if b is not object]
        else:
            index += 1


SECTION = re.compile(r"^(?P<title>\S.*)\n(?P<rule>[-=~^]{3,})$", re.MULTILINE)


def no_borrowed_docstrings(  # noqa: PLR0917  (Sphinx's event signature)
    app: Sphinx, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    """Drop a docstring that is not the object's own but its base class's or its type's."""
    if what == "class" and isinstance(obj, type):
        if obj.__dict__.get("__doc__") is None:
            lines[:] = []
    elif what in ("data", "attribute") and lines:
        borrowed = inspect.getdoc(type(obj))
        if borrowed and "\n".join(lines).strip() == borrowed.strip():
            lines[:] = []


def headings_to_rubrics(  # noqa: PLR0917  (Sphinx's event signature)
    app: Sphinx, what: str, name: str, obj: object, options: Any, lines: list[str]
) -> None:
    if what != "module":
        return
    text = "\n".join(lines)

    def rubric(match: re.Match[str]) -> str:
        title = match.group("title")
        if len(match.group("rule")) < len(title.rstrip()):
            return match.group(0)
        return f".. rubric:: {title}\n"

    lines[:] = SECTION.sub(rubric, text).split("\n")


def _owner(name: str) -> type | None:
    """The class that ``package.module.Class.method`` belongs to, or None."""
    import importlib

    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:-1]:
            found = getattr(found, part, None)
        return found if isinstance(found, type) else None
    return None


FUNCTION_REPR = re.compile(r"<function (?P<name>[\w.]+)(?: at 0x[0-9a-f]+)?>")
KNOWN_FUNCTIONS = {"dumps": "json.dumps"}


def clean_signature(  # noqa: PLR0917  (Sphinx's event signature)
    app: Sphinx,
    what: str,
    name: str,
    obj: object,
    options: Any,
    signature: str | None,
    return_annotation: str | None,
) -> tuple[str | None, str | None] | None:
    """Readable defaults where Python gives a repr: ``json.dumps`` for ``<function dumps at
    0x...>``, ``dict()`` for a dataclass field's ``<factory>``; ``ssl.`` for ``ssl_module.``."""
    if signature is None:
        return None

    def function(match: re.Match[str]) -> str:
        return KNOWN_FUNCTIONS.get(match.group("name"), match.group("name"))

    signature = FUNCTION_REPR.sub(function, signature).replace("ssl_module.", "ssl.")
    owner = obj if isinstance(obj, type) else _owner(name)
    if "<factory>" in signature and owner is not None and dataclasses.is_dataclass(owner):
        for field in dataclasses.fields(owner):
            factory = field.default_factory
            if factory is not dataclasses.MISSING:
                made = getattr(factory, "__name__", "factory")
                signature = signature.replace("<factory>", f"{made}()", 1)
    return signature, return_annotation


class InstrumentsDirective(SphinxDirective):
    """``statesock-instruments``: every instrument statesock reports, from the code."""

    def run(self) -> list[nodes.Node]:
        from statesock.metrics import INSTRUMENTS

        rows = []
        for name, (kind, unit, description) in INSTRUMENTS.items():
            shown = kind.replace("_", " ")
            rows.append(
                [_cell(name, code=True), _cell(shown), _cell(unit, code=True), _cell(description)]
            )
        headers = ("instrument", "kind", "unit", "what it counts")
        table = _table(headers, (26, 16, 12, 46), rows)
        table["classes"].append("statesock-instruments")
        return [table]


def no_generated_options(  # noqa: PLR0917  (Sphinx's event signature)
    app: Sphinx, what: str, name: str, obj: object, options: object, lines: list[str]
) -> None:
    """help() shows the options at the end of ``__init__``'s docstring (statesock.option_docs);
    the site has them as a table (statesock-options), so the page leaves that list out."""
    if what == "method" and name.endswith(".__init__") and "Options:" in lines:
        del lines[lines.index("Options:") :]


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("autodoc-process-docstring", no_generated_options)
    app.add_directive("statesock-instruments", InstrumentsDirective)
    app.connect("source-read", include_readme)
    app.connect("autodoc-process-signature", clean_signature)
    app.connect("missing-reference", resolve_unqualified)
    app.connect("autodoc-process-bases", public_bases)
    app.connect("autodoc-process-docstring", no_borrowed_docstrings)
    app.connect("autodoc-process-docstring", headings_to_rubrics)
    app.add_directive("statesock-options", OptionsDirective)
    app.add_directive("statesock-policy", PolicyDirective)
    app.add_directive("statesock-rules", RulesDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


__all__ = ["OPTION_DOCS", "client_options", "policy_cases", "recovery_options", "setup"]
