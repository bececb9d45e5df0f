"""One source of truth per command-line setting: a dataclass field carries its flag, help and rule.

    @dataclass(frozen=True)
    class EvalConfig:
        lr_scale: float = setting(1.0, "Scale of the outer step ...", POSITIVE, flag="--eval.lr-scale")

    add_settings(parser, EvalConfig, "validator")          # --eval.lr-scale, help "... (default 1.0)"
    cfg = settings_from_args(EvalConfig, args)             # ConfigError "--eval.lr-scale must be > 0 (got -1.0)"

Flags follow bittensor's dotted convention (``--group.name``, words joined by ``-``). This module
imports nothing heavy, so a bad value is reported before torch or transformers load.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting breaks its rule; the message names the flag, the rule and the value."""


@dataclass(frozen=True)
class Rule:
    """A predicate on a value and the sentence that states it ("must be > 0")."""

    ok: Callable[[Any], bool]
    text: str

    def check(self, flag: str, value: Any) -> None:
        try:
            good = value is None or bool(self.ok(value))
        except (TypeError, ValueError):
            good = False
        if not good:
            raise ConfigError(f"{flag} {self.text} (got {value!r})")


def at_least(lo: float) -> Rule:
    return Rule(lambda v: _finite(v) and v >= lo, f"must be >= {lo}")


def between(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> Rule:
    left, right = ("(" if lo_open else "["), (")" if hi_open else "]")

    def ok(v: float) -> bool:
        above = v > lo if lo_open else v >= lo
        below = v < hi if hi_open else v <= hi
        return _finite(v) and above and below

    return Rule(ok, f"must be in {left}{lo}, {hi}{right}")


def one_of(*choices: str) -> Rule:
    return Rule(lambda v: v in choices, "must be one of " + ", ".join(choices))


POSITIVE = Rule(lambda v: _finite(v) and v > 0, "must be > 0")
NON_NEGATIVE = at_least(0)
PORT = between(0, 65535)


def _finite(v: Any) -> bool:
    return not (isinstance(v, float) and math.isnan(v))


def setting(
    default: Any,
    help: str,  # noqa: A002 - argparse's word
    rule: Rule | None = None,
    *,
    flag: str | None = None,
    metavar: str | None = None,
    type: Callable[[str], Any] | None = None,  # noqa: A002 - argparse's word
    factory: Callable[[], Any] | None = None,
) -> Any:
    """A dataclass field that is also a command-line flag (``flag`` defaults from the name).

    ``type`` parses the flag's text (default: the type of ``default``); ``factory`` computes the
    default when the flag is not given (the flag then defaults to None)."""
    meta = {"help": help, "rule": rule, "flag": flag, "metavar": metavar, "type": type}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_of(f: dataclasses.Field) -> str:
    """``--eval.lr-scale`` for field ``eval_lr_scale`` unless the field names its flag."""
    if f.metadata.get("flag"):
        return f.metadata["flag"]
    group, _, rest = f.name.partition("_")
    return f"--{group}.{rest.replace('_', '-')}" if rest else f"--{group}"


def _dest(prefix: str, f: dataclasses.Field) -> str:
    return prefix + f.name


def add_settings(
    parser: argparse.ArgumentParser, cls: type, title: str, dest_prefix: str = ""
) -> argparse._ArgumentGroup:
    """Add one flag per field of dataclass ``cls`` (booleans become on/off switches)."""
    group = parser.add_argument_group(title)
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        default = None if f.default is dataclasses.MISSING else f.default
        kw: dict[str, Any] = {"dest": _dest(dest_prefix, f), "default": default}
        text = f.metadata["help"].replace("%", "%%")  # argparse formats help with %
        if isinstance(default, bool):
            kw["action"] = argparse.BooleanOptionalAction
            kw["help"] = text
        else:
            parse = f.metadata.get("type") or (type(default) if default is not None else None)
            if parse is not None:
                kw["type"] = parse
            shown = "" if default in (None, ()) else f" (default {default})"
            kw["help"] = text + shown
            if f.metadata.get("metavar"):
                kw["metavar"] = f.metadata["metavar"]
        group.add_argument(flag_of(f), **kw)
    return group


def check_settings(obj: Any) -> None:
    """Raise ConfigError for the first field of ``obj`` that breaks its rule."""
    for f in dataclasses.fields(obj):
        rule = f.metadata.get("rule")
        if rule is not None:
            rule.check(flag_of(f), getattr(obj, f.name))


def settings_from_args(cls: type[T], args: argparse.Namespace, dest_prefix: str = "") -> T:
    """Build and check a ``cls`` from parsed flags."""
    values = {}
    for f in dataclasses.fields(cls):
        dest = _dest(dest_prefix, f)
        given = getattr(args, dest, None)
        if hasattr(args, dest) and (given is not None or f.default_factory is dataclasses.MISSING):
            values[f.name] = given
    obj = cls(**values)
    check_settings(obj)
    return obj


def check_args(cls: type, args: argparse.Namespace, dest_prefix: str = "") -> None:
    """Check the flags of ``cls`` that ``args`` holds, without keeping the object."""
    for f in dataclasses.fields(cls):
        rule = f.metadata.get("rule")
        dest = _dest(dest_prefix, f)
        if rule is not None and hasattr(args, dest):
            rule.check(flag_of(f), getattr(args, dest))


def flags_table(cls: type) -> str:
    """A Markdown table of ``cls``'s flags (flag, meaning, rule) for the docs. Defaults are left
    to ``--help`` (they are tuned more often than the docs are read)."""
    rows = ["| flag | meaning | rule |", "|---|---|---|"]
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help")
        if not help_text or help_text == argparse.SUPPRESS:
            continue
        rule = f.metadata.get("rule")
        cells = [f"`{flag_of(f)}`", help_text.replace("%%", "%"), rule.text if rule else ""]
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows) + "\n"
