"""`smoothvla <verb>`: one entry point. Each verb lives in `smoothvla.commands.<verb>` as a
typed dataclass `Config` (its fields become the flags, through tyro) and a `run(cfg)`.

Verb modules are imported only when their verb is called, so `smoothvla jerk` does not
pay for importing torch or MuJoCo. Bad input (`smoothvla.errors.UserError`) prints one line,
`smoothvla VERB: error: MESSAGE`, and exits 1; any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import importlib
import sys

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


def _usage() -> str:
    width = max(len(v) for v in VERBS)
    lines = ["usage: smoothvla <verb> [--help] [flags]", "", "verbs:"]
    lines += [f"  {verb:<{width}}  {text}" for verb, text in VERBS.items()]
    lines += ["", "Run `smoothvla <verb> --help` for the flags of one verb."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a verb; returns the process exit code."""
    import tyro

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
        cfg = tyro.cli(module.Config, args=rest, prog=f"smoothvla {verb}", description=VERBS[verb])
        result = module.run(cfg)
    except UserError as err:  # anything else is a bug: it keeps its traceback
        print(f"smoothvla {verb}: error: {err}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
