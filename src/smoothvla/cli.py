"""`smoothvla <verb>`: one entry point. Each verb lives in `smoothvla.commands.<verb>` as a
typed dataclass `Config` (its fields become the flags, through tyro) and a `run(cfg)`.

`--config FILE.toml` (every verb whose Config has no `config` field of its own) takes the
defaults from a TOML file whose keys are the Config's field names (`batch_size`, not
`batch-size`), nested configs as tables (`[policy]`, `[grpo]`, `[reward]`); flags given on
the command line override it. Unknown keys and values of the wrong type are errors that name
them; paths in the file are relative to the current directory, as on the command line.
`smoothvla demo --config` is the demo's own flag (a study preset, `StudyConfig.from_toml`).

Verb modules are imported only when their verb is called, so `smoothvla jerk` does not
pay for importing torch or MuJoCo. Bad input (`smoothvla.errors.UserError`) prints one line,
`smoothvla VERB: error: MESSAGE`, and exits 1; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

VERBS: dict[str, str] = {
    "demo": "Run the small end-to-end study on the embedded suite and print its summary.",
    "jerk": "Measure the smoothness of trajectories in HDF5 (LIBERO/robomimic) or .npz files.",
    "collect": "Collect scripted-expert demonstrations into a LIBERO-layout HDF5 file.",
    "sft": "Supervised fine-tuning of a policy on demonstrations.",
    "train": "RL fine-tuning (GRPO, PPO, DPO) with a binary, staged, smooth or random reward.",
    "eval": "Evaluate checkpoints over suites x tasks x init states x perturbations.",
    "report": "Tables, figures and an HTML report from result files.",
    "bench": "List the throughput benchmarks, or run one with its defaults (bench metrics).",
}

CONFIG_HELP = ("--config FILE.toml takes the defaults from a TOML file whose keys are the "
               "fields below (nested ones as tables, e.g. [policy]); flags override it.")

T = TypeVar("T")


def _usage() -> str:
    width = max(len(v) for v in VERBS)
    lines = ["usage: smoothvla <verb> [--help] [--config FILE.toml] [flags]", "", "verbs:"]
    lines += [f"  {verb:<{width}}  {text}" for verb, text in VERBS.items()]
    lines += ["", "Run `smoothvla <verb> --help` for the flags of one verb."]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# --config FILE.toml
# ---------------------------------------------------------------------------------------------
def takes_config_file(cls: type) -> bool:
    """Whether `--config FILE.toml` is the generic config file for this Config: a dataclass
    without a `config` field of its own (`smoothvla demo` has one: its study preset)."""
    return dataclasses.is_dataclass(cls) and "config" not in {f.name for f in dataclasses.fields(cls)}


def pop_config_flag(args: list[str]) -> tuple[str | None, list[str]]:
    """Split `--config FILE` / `--config=FILE` off the arguments -> (FILE or None, the rest)."""
    path, rest, i = None, [], 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest += args[i:]
            break
        if arg == "--config" or arg.startswith("--config="):
            if path is not None:
                raise _user_error("--config given twice; merge the files into one")
            if arg == "--config":
                if i + 1 >= len(args) or args[i + 1].startswith("--"):
                    raise _user_error("--config needs a TOML file: --config FILE.toml")
                path, i = args[i + 1], i + 2
                continue
            path = arg.split("=", 1)[1]
            if not path:
                raise _user_error("--config needs a TOML file: --config=FILE.toml")
        else:
            rest.append(arg)
        i += 1
    return path, rest


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


def _user_error(message: str):
    from smoothvla.errors import UserError

    return UserError(message)


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


def parse(verb: str, cls: type[T], args: list[str]) -> T:
    """The verb's Config from its command-line arguments, `--config FILE.toml` included."""
    import tyro

    default, description = None, VERBS.get(verb, "")
    if takes_config_file(cls):
        path, args = pop_config_flag(args)
        if path is not None:
            default = config_from_toml(cls, path, f"smoothvla {verb}")
        description = f"{description}\n\n{CONFIG_HELP}"
    return tyro.cli(cls, args=args, default=default, prog=f"smoothvla {verb}",
                    description=description)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a verb; returns the process exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0
    verb, rest = argv[0], argv[1:]
    if verb not in VERBS:
        print(f"smoothvla: unknown verb {verb!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    from smoothvla.runtime import keep_freed_memory

    keep_freed_memory()  # before torch allocates anything
    try:
        module = importlib.import_module(f"smoothvla.commands.{verb}")
    except ModuleNotFoundError as err:
        if err.name != f"smoothvla.commands.{verb}":
            raise
        print(f"smoothvla {verb}: not available in this version yet", file=sys.stderr)
        return 2
    from smoothvla.errors import UserError

    try:
        cfg = parse(verb, module.Config, rest)
        result = module.run(cfg)
    except UserError as err:  # anything else is a bug: it keeps its traceback
        print(f"smoothvla {verb}: error: {err}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
