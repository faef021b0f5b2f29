"""Configs from TOML files: `config_from_toml(cls, path)`, what `smoothvla VERB --config
FILE.toml` and the study's presets (`StudyConfig.from_toml`) read.

Keys are the dataclass's field names (`batch_size`, not `batch-size`), nested dataclass fields
are tables (`[policy]`, `[grpo]`, `[train.reward]`); fields the file leaves out keep their
defaults (a nested table overrides the default instance of its field, so a study's own
defaults for its `[train]` table stay). Unknown keys and values of the wrong type are
UserErrors that name them.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")


def _user_error(message: str):
    from smoothvla.errors import UserError

    return UserError(message)


def config_from_toml(cls: type[T], path: str | Path, what: str = "") -> T:
    """The Config `cls` with the values of a TOML file as its fields: keys are field names,
    nested dataclass fields are tables, fields the file leaves out keep their defaults, and a
    required field it leaves out stays required (`tyro.MISSING`). The result is meant as
    tyro's `default=`: its checks (`__post_init__`) run when tyro builds the final Config
    with the flags applied, so a file may leave out what the command line gives. UserError
    for a missing or invalid file, unknown keys (all of them named) and wrong types; `what`
    names the command in the message (default: the class)."""
    import tomllib

    from smoothvla.errors import UserFileNotFoundError

    path = Path(path)
    if not path.is_file():
        raise UserFileNotFoundError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise _user_error(f"{path}: not valid TOML ({err})") from None
    unknown = _unknown_keys(cls, data)
    if unknown:
        raise _user_error(f"{path}: unknown keys {unknown} for `{what or cls.__name__}` (keys are the "
                          f"Config's field names, with underscores; see --help)")
    try:
        return _build(cls, data, "", None)
    except _TypeMismatch as err:
        raise _user_error(f"{path}: {err}") from None


class _TypeMismatch(Exception):
    pass


def _settable(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


def _unknown_keys(cls: type, data: dict[str, Any], prefix: str = "") -> list[str]:
    """Every key of `data` (nested tables included, as 'policy.hed') that is not a field."""
    fields = _settable(cls)
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for key, value in data.items():
        if key not in fields:
            out.append(prefix + key)
        else:
            nested = _dataclass_of(hints[key])
            if nested is not None and isinstance(value, dict):
                out += _unknown_keys(nested, value, f"{prefix}{key}.")
    return out


def _dataclass_of(tp: Any) -> type | None:
    """The dataclass a field holds (through Annotated and `X | None`), or None."""
    if typing.get_origin(tp) is typing.Annotated:
        return _dataclass_of(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        found = [c for c in map(_dataclass_of, typing.get_args(tp)) if c is not None]
        return found[0] if len(found) == 1 else None
    return tp if isinstance(tp, type) and dataclasses.is_dataclass(tp) else None


def _build(cls: type[T], data: dict[str, Any], prefix: str, base: Any) -> T:
    """An instance of `cls` without running its `__post_init__`: each field from `data`,
    else from `base` (the default instance this table overrides), else its default."""
    import tyro

    hints = typing.get_type_hints(cls, include_extras=True)
    obj = cls.__new__(cls)
    for name, f in _settable(cls).items():
        if base is not None:
            default = getattr(base, name)
        elif f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = tyro.MISSING
        if name not in data:
            value = default
        else:
            nested = _dataclass_of(hints[name])
            if nested is not None:
                if not isinstance(data[name], dict):
                    raise _TypeMismatch(f"{prefix}{name} must be a table ([{prefix}{name}]), "
                                        f"got {data[name]!r}")
                value = _build(nested, data[name], f"{prefix}{name}.",
                               default if isinstance(default, nested) else None)
            else:
                value = _typed(data[name], hints[name], prefix + name)
        object.__setattr__(obj, name, value)
    return obj


def _typed(value: Any, tp: Any, where: str) -> Any:
    """A TOML value as the field type `tp` wants it (a list becomes a tuple, a string a Path,
    an integer a float), or _TypeMismatch naming the field."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return _typed(value, args[0], where)
    if origin in (typing.Union, types.UnionType):
        for option in (a for a in args if a is not type(None)):  # TOML has no null
            try:
                return _typed(value, option, where)
            except _TypeMismatch:
                pass
        raise _TypeMismatch(f"{where} must be {_name(tp)}, got {value!r}")
    if origin is Literal:
        if any(value == a and type(value) is type(a) for a in args):
            return value
        raise _TypeMismatch(f"{where} must be one of {list(args)}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, list):
            raise _TypeMismatch(f"{where} must be a list ({_name(tp)}), got {value!r}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _TypeMismatch(f"{where} must be a list of {len(args)} values, got {value!r}")
            return tuple(_typed(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        items = [_typed(v, args[0] if args else Any, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif tp is str:
        ok = isinstance(value, str)
    elif tp is Path:
        ok = isinstance(value, str)
        value = Path(value) if ok else value
    else:
        raise _TypeMismatch(f"{where} ({_name(tp)}) cannot be set from a config file; "
                            "give it as a flag")
    if not ok:
        raise _TypeMismatch(f"{where} must be {_name(tp)}, got {value!r}")
    return value


def _name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def checked(obj: T) -> T:
    """`obj` built again through its constructor, nested dataclasses first, so that every
    `__post_init__` check runs (`config_from_toml` leaves them to the caller)."""
    values = {}
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        if f.init:
            value = getattr(obj, f.name)
            values[f.name] = checked(value) if dataclasses.is_dataclass(value) and not isinstance(value, type) else value
    return type(obj)(**values)

