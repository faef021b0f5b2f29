"""`smoothvla <verb>`: one entry point. Each verb lives in `smoothvla.commands.<verb>` as a
typed dataclass `Config` (its fields become the flags, through tyro) and a `run(cfg)`.

`--config FILE.toml` (every verb whose Config has no `config` field of its own) takes the
defaults from a TOML file whose keys are the Config's field names (`batch_size`, not
`batch-size`), nested configs as tables (`[policy]`, `[grpo]`, `[reward]`); flags given on
the command line override it. Unknown keys and values of the wrong type are errors that name
them; paths in the file are relative to the current directory, as on the command line.
`smoothvla demo --config` is the demo's own flag: a study preset (`PRESET_FIELDS`), whose
values the `--study.*` flags override in the same way.

Verb modules are imported only when their verb is called, so `smoothvla jerk` does not
pay for importing torch or MuJoCo. Bad input (`smoothvla.errors.UserError`) prints one line,
`smoothvla VERB: error: MESSAGE`, and exits 1; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from typing import TypeVar

from smoothvla.tomlconfig import _user_error, config_from_toml

__all__ = ["VERBS", "config_from_toml", "main", "parse", "pop_config_flag", "takes_config_file"]

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

PRESET_FIELDS: dict[str, str] = {"demo": "study"}
"""Verbs whose own `--config FILE.toml` is a preset of one nested field of their Config
(`smoothvla demo --config`: the study, `StudyConfig`'s fields as keys); the file is that
field's default and its flags (`--study.seeds 0 1`) override it."""


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


def parse(verb: str, cls: type[T], args: list[str]) -> T:
    """The verb's Config from its command-line arguments, `--config FILE.toml` included."""
    import tyro

    default, description = None, VERBS.get(verb, "")
    if takes_config_file(cls):
        path, args = pop_config_flag(args)
        if path is not None:
            default = config_from_toml(cls, path, f"smoothvla {verb}")
        description = f"{description}\n\n{CONFIG_HELP}"
    elif verb in PRESET_FIELDS:
        path, args = pop_config_flag(args)
        if path is not None:
            default = _with_preset(cls, PRESET_FIELDS[verb], path, verb)
    return tyro.cli(cls, args=args, default=default, prog=f"smoothvla {verb}",
                    description=description)


def _with_preset(cls: type[T], name: str, path: str, verb: str) -> T:
    """`cls` with the TOML preset at `path` as its field `name` and `config` = path (tyro's
    default: the preset's checks run once the flags are applied)."""
    import typing
    from pathlib import Path

    preset = config_from_toml(typing.get_type_hints(cls)[name], path, f"smoothvla {verb} --config")
    return cls(**{name: preset, "config": Path(path)})


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
