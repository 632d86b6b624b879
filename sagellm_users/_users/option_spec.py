"""How one option is declared, and everything derived from the declarations.

Each field of :class:`~sagellm_users._users.options.LLMOptions` carries an :class:`Opt` in
its ``Annotated`` metadata: its flag, help line, group, whether the web UI's start form shows
it, and the form its default takes on the command line. From those alone come Locust's
argparse registration, reading a parsed namespace, reading the start form (where an empty
field means "unset"), the grouped ``--llm-help`` listing and docs/options.md; so adding an
option is one declaration, and none of those can disagree with another.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, SecretStr

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo

__all__ = [
    "GROUPS",
    "Declared",
    "Opt",
    "declared",
    "form_changes",
    "help_listing",
    "reference_markdown",
    "register",
    "values_from_namespace",
]

GROUPS = (
    "Requests",
    "Workload",
    "Open loop",
    "Objectives and reports",
    "Load shapes",
    "Connection",
    "In-process engines",
    "Embedded mock server",
)
"""The groups, most used first: the order of ``--llm-help``, the docs and the web form."""

Kind = Literal["value", "switch", "inverted_switch", "append"]
_UNSET: Any = object()


@dataclasses.dataclass(frozen=True)
class Opt:
    """One option's command-line face.

    ``kind``: ``value`` takes one argument; ``switch`` is a flag that sets True;
    ``inverted_switch`` a flag that sets False (``--no-stream`` for ``stream``); ``append``
    repeats. ``shown_default`` is the default as typed on the command line (``64KiB`` for a
    size held in bytes), when it differs from the field's default.
    """

    flag: str
    help: str
    group: str
    web: bool = True
    kind: Kind = "value"
    secret: bool = False
    choices: tuple[str, ...] | None = None
    shown_default: Any = _UNSET
    metavar: str | None = None
    default_text: str | None = None
    """The default as the listing says it, where the value itself is too long to show."""

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"{self.flag}: unknown group {self.group!r}; one of {GROUPS}")


@dataclasses.dataclass(frozen=True)
class Declared:
    """An option as declared: the model field it fills and its :class:`Opt`."""

    field: str
    opt: Opt
    default: Any
    """What argparse holds when the option is not given (the command-line form)."""

    @property
    def dest(self) -> str:
        """The ``parsed_options`` attribute (and start-form field) name: the field's."""
        return self.field


def _command_line_default(name: str, info: FieldInfo, opt: Opt) -> Any:
    if opt.shown_default is not _UNSET:
        return opt.shown_default
    if opt.kind == "append":
        return []
    default = info.get_default(call_default_factory=True)
    if opt.kind == "inverted_switch":
        return True if default is None else bool(default)
    if isinstance(default, SecretStr) or default is None:
        return None if opt.kind == "value" and not opt.secret else ""
    if isinstance(default, str | int | float | bool):
        return default
    raise TypeError(f"{name}: give Opt(shown_default=...) for a default of {type(default)}")


def declared(model: type[BaseModel]) -> Iterator[Declared]:
    """The model's declared options, in declaration order."""
    for name, info in model.model_fields.items():
        for meta in info.metadata:
            if isinstance(meta, Opt):
                yield Declared(name, meta, _command_line_default(name, info, meta))
                break


def register(parser: Any, model: type[BaseModel]) -> None:
    """Add every declared option to Locust's (or any argparse-like) parser."""
    for option in declared(model):
        opt = option.opt
        kwargs: dict[str, Any] = {"dest": option.dest, "help": opt.help}
        if opt.kind == "switch":
            kwargs.update(action="store_true", default=False)
        elif opt.kind == "inverted_switch":
            kwargs.update(action="store_false", default=True)
        elif opt.kind == "append":
            kwargs.update(action="append", default=[])
        else:
            kwargs["default"] = option.default
        if opt.choices:
            kwargs["choices"] = opt.choices
        if opt.metavar:
            kwargs["metavar"] = opt.metavar
        if not opt.web:
            kwargs["include_in_web_ui"] = False
        if opt.secret:
            kwargs["is_secret"] = True
        parser.add_argument(opt.flag, **kwargs)


def values_from_namespace(ns: Any, model: type[BaseModel]) -> dict[str, Any]:
    """The declared options ``ns`` holds, by field name (absent attributes are left out,
    so the model's defaults apply)."""
    values: dict[str, Any] = {}
    for option in declared(model):
        value = getattr(ns, option.dest, _UNSET)
        if value is not _UNSET:
            values[option.field] = value
    return values


_TRUE = frozenset({"true", "on", "1", "yes"})
_FALSE = frozenset({"false", "off", "0", "no", ""})


def form_changes(
    form: Mapping[str, str], model: type[BaseModel]
) -> tuple[dict[str, Any], list[str]]:
    """What the start form changes (new ``parsed_options`` values, by attribute), and the
    problems the form itself has (a switch that is neither true nor false).

    Only the options the form shows are read; an empty field means "unset", which is the
    option's default, never a crash. Nothing is applied here: the caller applies the
    changes once the options they make are valid, so a refused start leaves nothing behind.
    """
    changes: dict[str, Any] = {}
    problems: list[str] = []
    for option in declared(model):
        opt = option.opt
        if not opt.web or option.dest not in form:
            continue
        text = str(form[option.dest]).strip()
        if opt.kind in ("switch", "inverted_switch"):
            word = text.lower()
            if word not in _TRUE | _FALSE:
                problems.append(f"{opt.flag}: {text!r} is neither true nor false")
                continue
            changes[option.dest] = word in _TRUE
        elif text == "":
            if opt.secret:
                continue  # a blanked secret field keeps the launch value (web_secrets)
            changes[option.dest] = option.default
        else:
            changes[option.dest] = text
    return changes, problems


def _default_text(option: Declared) -> str:
    opt = option.opt
    if opt.default_text:
        return f" (default {opt.default_text})"
    if opt.kind in ("switch", "inverted_switch", "append") or opt.secret:
        return ""
    value = option.default
    if value in (None, ""):
        return ""
    return f" (default {value})"


def _usage(option: Declared) -> str:
    opt = option.opt
    if opt.kind in ("switch", "inverted_switch"):
        return opt.flag
    metavar = opt.metavar or (
        "{" + ",".join(opt.choices) + "}" if opt.choices else option.dest.upper()
    )
    return f"{opt.flag} {metavar}" + (" (repeatable)" if opt.kind == "append" else "")


def _by_group(model: type[BaseModel]) -> dict[str, list[Declared]]:
    groups: dict[str, list[Declared]] = {group: [] for group in GROUPS}
    for option in declared(model):
        groups[option.opt.group].append(option)
    return {group: items for group, items in groups.items() if items}


def help_listing(model: type[BaseModel], width: int = 100) -> str:
    """Every option, grouped, with its help and default: what ``--llm-help`` prints."""
    formatter = argparse.HelpFormatter("locust", width=width)
    lines: list[str] = []
    for group, items in _by_group(model).items():
        lines.append(f"{group}:")
        for option in items:
            text = option.opt.help.replace("%%", "%") + _default_text(option)
            lines.append(f"  {_usage(option)}")
            wrapped = formatter._split_lines(text, width - 6)
            lines.extend(f"      {line}" for line in wrapped)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def reference_markdown(model: type[BaseModel]) -> str:
    """docs/options.md: the same listing as a table per group."""
    out = [
        "# Options",
        "",
        "Generated from the options model (`sagellm_users/_users/options.py`) by",
        "`python -m sagellm_users._users.list_options --markdown`; a test fails when this file is",
        "stale. Every option works on the command line, in a `locust.conf` file and (where",
        "the last column says so) in the web UI's start form, where an empty field means",
        "the default. `locust -f LOCUSTFILE --llm-help` prints the same list.",
        "",
    ]
    for group, items in _by_group(model).items():
        out += [f"## {group}", "", "| Option | Default | Web form | What it does |"]
        out.append("|---|---|---|---|")
        for option in items:
            opt = option.opt
            default = _default_text(option)[len(" (default ") : -1] if _default_text(option) else ""
            cell = f"`{default}`" if default else ""
            text = opt.help.replace("%%", "%").replace("|", "\\|")
            web = "yes" if opt.web else ""
            out.append(f"| `{_usage(option)}` | {cell} | {web} | {text} |")
        out.append("")
    return "\n".join(out).rstrip() + "\n"
