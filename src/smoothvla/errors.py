"""The project's user-facing error: bad input that the user can fix.

The CLI prints a `UserError`'s message alone (no traceback) and exits 1; every other
exception keeps its traceback, because it is a bug. Raise it for wrong flags, config
values out of range, missing or corrupt input files and output paths that cannot be
written. It subclasses ValueError so library callers that already catch ValueError keep
working; `UserFileNotFoundError` and `UserKeyError` are also FileNotFoundError and
KeyError, for callers that catch those.

`check_fields(cfg, name=RANGE, ...)` is the one range check of config dataclasses: every
int or float field must be finite, every named field inside its range. `check_parses(name,
text, parse)` turns a parser's ValueError into a UserError naming the flag.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any, Callable


class UserError(ValueError):
    """Input the user must fix; the message says what is wrong and what to do."""


class UserFileNotFoundError(UserError, FileNotFoundError):
    """A missing input file or folder."""


class ExpertError(RuntimeError):
    """The scripted expert met a plan or state it cannot handle (`smoothvla.experts`; also the
    LIBERO goal planner, `envs.libero_plan`, for a goal it has no stages for). Here, not in
    `experts`, so that envs raise it without importing the experts."""


class UserKeyError(UserError, KeyError):
    """A file lacks a key, group or field the user pointed at."""

    def __str__(self) -> str:  # KeyError's own str() quotes the message
        return str(self.args[0]) if self.args else ""


_INTERVAL = re.compile(r"^([\[(])\s*(\S+?)\s*,\s*(\S+?)\s*([\])])$")
_BOUND = re.compile(r"^(>=|>|<=|<)\s*(\S+)$")


def _parse_range(spec: str) -> tuple[float, float, bool, bool]:
    """'[0, 1)', '(0, inf)', '>= 0', '> 0', '<= 1' -> (low, high, low_closed, high_closed)."""
    m = _INTERVAL.match(spec)
    if m:
        return float(m[2]), float(m[3]), m[1] == "[", m[4] == "]"
    m = _BOUND.match(spec)
    if m:
        op, x = m[1], float(m[2])
        if op.startswith(">"):
            return x, math.inf, op == ">=", False
        return -math.inf, x, False, op == "<="
    raise ValueError(f"bad range spec {spec!r}")  # a bug in the caller, not user input


def in_range(value: float, spec: str) -> bool:
    """Whether the finite number `value` lies in `spec` (see `check_fields`)."""
    low, high, low_closed, high_closed = _parse_range(spec)
    above = value >= low if low_closed else value > low
    below = value <= high if high_closed else value < high
    return above and below


def check_number(name: str, value: Any, spec: str | None = None) -> None:
    """UserError unless `value` is a finite number (inside `spec` when given).
    `None` passes (fields such as `value_clip: float | None`)."""
    if value is None or isinstance(value, bool):
        return
    if not isinstance(value, (int, float)):
        raise UserError(f"{name} must be a number, got {value!r}")
    if spec is None:
        if not math.isfinite(value):
            raise UserError(f"{name} must be a finite number, got {value}")
    elif not (math.isfinite(value) and in_range(value, spec)):
        where = spec if spec[0] in "<>" else f"in {spec}"
        raise UserError(f"{name} must be {where}, got {value:g}")


def check_parses(name: str, text: str, parse: Callable[[str], Any], usage: str = "") -> Any:
    """`parse(text)`, with a ValueError turned into a UserError that names the flag or field
    `name`, the text and the `usage`."""
    try:
        return parse(text)
    except ValueError as err:  # float('high') included
        raise UserError(f"{name} {text!r}: {err}" + (f"; {usage}" if usage else "")) from None


def check_fields(cfg: Any, flags: bool = False, **ranges: str) -> None:
    """Validate a config dataclass in its `__post_init__`: every int or float field must be
    finite, and each field named in `ranges` must lie in its range, written '[0, 1]',
    '(0, 1]', '(0, inf)', '>= 0', '> 0' or '<= 1'. The message names the field (tyro adds
    the prefix of a nested config), or with `flags` the top-level flag (`--field-name`)."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        spec = ranges.pop(f.name, None)
        if spec is not None or isinstance(value, (int, float)):
            check_number("--" + f.name.replace("_", "-") if flags else f.name, value, spec)
    if ranges:
        raise TypeError(f"{type(cfg).__name__} has no fields {sorted(ranges)}")
