"""`smoothvla bench [NAME]`: the throughput benchmarks of `benchmarks/`.

Without NAME it lists them, each with its purpose and the command that runs it with its
own flags (each script's docstring lists them). With NAME it runs that benchmark with its defaults in this process
(`smoothvla bench metrics`: the jerk metrics' speed, a few seconds). The scripts live in the
source repository's `benchmarks/` folder, next to `src/`; their numbers go into
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import ast
import runpy
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from smoothvla.errors import UserError

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


@dataclass
class Config:
    name: Annotated[str, tyro.conf.Positional] = "list"
    """Benchmark to run with its defaults (e.g. metrics, rollout, envs), or 'list'."""


def available() -> dict[str, Path]:
    """Benchmark name -> script: benchmarks/bench_NAME.py as NAME, other scripts by stem."""
    if not BENCHMARKS.is_dir():
        raise UserError("the benchmarks ship with the source repository (its benchmarks/ "
                        "folder), not with this installation; clone it to run them")
    scripts = sorted(BENCHMARKS.glob("*.py"))
    return {p.stem.removeprefix("bench_"): p for p in scripts}


def _summary(script: Path) -> str:
    doc = ast.get_docstring(ast.parse(script.read_text(encoding="utf-8"))) or ""
    return doc.split("\n\n")[0].replace("\n", " ")


def run(cfg: Config) -> int:
    scripts = available()
    if cfg.name == "list":
        for name, script in scripts.items():
            print(f"{name}\n    {_summary(script)}\n    python benchmarks/{script.name}")
        print("\nRun one with its defaults: smoothvla bench NAME (docs/BENCHMARKS.md)")
        return 0
    if cfg.name not in scripts:
        raise UserError(f"unknown benchmark {cfg.name!r}; choose one of {', '.join(scripts)}")
    argv = sys.argv
    sys.argv = [str(scripts[cfg.name])]
    try:
        runpy.run_path(str(scripts[cfg.name]), run_name="__main__")
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0 if done.code is None else 1
    finally:
        sys.argv = argv
    return 0
