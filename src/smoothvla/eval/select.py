"""Which tasks an RL study trains on, from an evaluation of its starting policy:
`task_success(rows)` -> `select_tasks(rates)`, and from a shell
`python -m smoothvla.eval.select --results RESULTS.jsonl` (one task id per line on stdout,
every task's success on stderr; configs/libero-object.sh passes them to `--study.tasks`).

RL learns from the spread of rewards within a group: on a task the policy always solves or
never solves, binary-reward GRPO gets no signal. The chosen tasks are those where the policy
succeeds sometimes but not always (success strictly between `low` and `high`), nearest 50%
first, where a group of G rollouts is most likely to hold both outcomes (the variance of
one success is p (1 - p)). When no task is in that band, the weakest tasks that succeed at
all are taken instead (success > 0, lowest first): the smooth reward of the SmoothVLA paper
still separates successes by their jerk there; a task never solved has no signal at all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from smoothvla.errors import UserError, check_fields
from smoothvla.eval.results import EpisodeResult, read_results
from smoothvla.eval.summary import IND


@dataclass(frozen=True)
class TaskRate:
    """In-distribution success of one policy on one task."""

    task_id: str
    successes: int
    episodes: int

    @property
    def rate(self) -> float:
        return self.successes / self.episodes


def task_success(rows: Iterable[EpisodeResult], policy: str = "") -> list[TaskRate]:
    """Success per task of the in-distribution episodes of `policy` (all training seeds and
    init states pooled), tasks in the order they first appear. With `policy` empty the rows
    must hold one policy label; UserError when they hold several or none."""
    rows = [r for r in rows if r.perturbation == IND]
    labels = sorted({r.policy for r in rows})
    if not policy:
        if len(labels) != 1:
            held = "no in-distribution episode" if not labels else "policies " + ", ".join(labels)
            raise UserError(f"the results hold {held}; name the policy to select tasks for "
                            "(--policy)")
        policy = labels[0]
    elif policy not in labels:
        raise UserError(f"no in-distribution episode of policy {policy!r} in the results "
                        f"(policies: {', '.join(labels) or 'none'})")
    counts: dict[str, list[int]] = {}
    for r in rows:
        if r.policy == policy:
            k_n = counts.setdefault(r.task_id, [0, 0])
            k_n[0] += bool(r.success)
            k_n[1] += 1
    return [TaskRate(task, k, n) for task, (k, n) in counts.items()]


def select_tasks(rates: list[TaskRate], low: float = 0.1, high: float = 0.9,
                 max_tasks: int = 0) -> list[str]:
    """Task ids to train on (module docstring): those with `low` < success < `high`, nearest
    50% first; if there are none, those with success > 0, lowest first; at most `max_tasks`
    of them (0: all), returned in the order of `rates`. Ties keep the order of `rates`.
    UserError for bounds outside 0 <= low < high <= 1 and when no task succeeds at all."""
    if not 0 <= low < high <= 1:
        raise UserError(f"the success band needs 0 <= low < high <= 1, got low={low}, high={high}")
    if max_tasks < 0:
        raise UserError(f"max_tasks must be >= 0 (0: no cap), got {max_tasks}")
    order = {r.task_id: i for i, r in enumerate(rates)}
    band = [r for r in rates if low < r.rate < high]
    if band:
        ranked = sorted(band, key=lambda r: (abs(r.rate - 0.5), order[r.task_id]))
    else:
        ranked = sorted((r for r in rates if r.successes > 0),
                        key=lambda r: (r.rate, order[r.task_id]))
    if not ranked:
        raise UserError(f"the policy succeeds on none of the {len(rates)} task(s): RL from it "
                        "has no signal on any of them")
    chosen = {r.task_id for r in ranked[: max_tasks or None]}
    return [r.task_id for r in rates if r.task_id in chosen]


@dataclass
class Config:
    """Print the tasks an RL study should train on, from `smoothvla eval` results of its
    starting policy (smoothvla.eval.select)."""

    results: Path
    """Results JSONL of the starting policy's evaluation (`smoothvla eval --out`)."""
    policy: str = ""
    """Label of the policy in the results (empty: the only one there)."""
    low: float = 0.1
    """Tasks with success strictly above this ..."""
    high: float = 0.9
    """... and strictly below this are chosen (else the weakest that succeed at all)."""
    max_tasks: int = 0
    """At most this many tasks (0: all that qualify)."""

    def __post_init__(self) -> None:
        check_fields(self, flags=True, max_tasks=">= 0")


def main(argv: list[str] | None = None) -> int:
    """`python -m smoothvla.eval.select --results RESULTS [--policy L] [--low L] [--high H]
    [--max-tasks N]`: the chosen task ids on stdout, one per line; every task's success on
    stderr."""
    import tyro

    try:
        cfg = tyro.cli(Config, args=argv, prog="python -m smoothvla.eval.select")
        if not cfg.results.is_file():
            raise UserError(f"{cfg.results}: no such results file")
        rates = task_success(read_results([cfg.results]), cfg.policy)
        chosen = select_tasks(rates, cfg.low, cfg.high, cfg.max_tasks)
    except UserError as err:
        print(f"smoothvla.eval.select: error: {err}", file=sys.stderr)
        return 1
    for r in rates:
        mark = "*" if r.task_id in chosen else " "
        print(f"{mark} {r.successes:4d}/{r.episodes:<4d} {100 * r.rate:5.1f}%  {r.task_id}",
              file=sys.stderr)
    print("\n".join(chosen))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
