"""Evaluation results: one JSON line per finished episode, appended as episodes finish.

A killed evaluation resumes where it stopped: `ResultsFile.done_keys()` says which
(policy, task, init state, seed, perturbation) cells already have an episode, and a
partially written last line (the process died mid-write) is ignored and overwritten.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable

from smoothvla.errors import UserError, UserFileNotFoundError

log = logging.getLogger(__name__)


@dataclass
class EpisodeResult:
    """One evaluation episode (seed 003 App. B.3 for the grasp metrics)."""

    policy: str
    """Method label of the evaluated checkpoint (e.g. sft, grpo-binary, smoothvla-grpo)."""
    task_id: str
    init_id: int
    seed: int
    perturbation: str = "none"
    """Perturbation name, 'none' in distribution."""
    strength: float = 0.0
    train_seed: int = 0
    """Training seed of the checkpoint: a method trained with 3 seeds has 3 checkpoints."""
    suite: str = ""
    success: bool = False
    grasp: bool = False
    """The target object was grasped at some step (grasp accuracy)."""
    cont_grasp: bool = False
    """Grasped and never dropped until success or the end (continuous-grasp accuracy)."""
    steps: int = 0
    mean_jerk: float = float("nan")
    ldlj: float = float("nan")
    sparc: float = float("nan")
    path_length: float = float("nan")
    chunk_jump: float = float("nan")
    ee_path: list[list[float]] | None = None
    """Optional (T, 3) end-effector path, kept for the path figures."""
    grasp_step: int = -1
    """First step at which the object was held (-1: never)."""
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple:
        return (self.policy, self.train_seed, self.task_id, self.init_id, self.seed,
                self.perturbation, self.strength)


_FIELDS = {f.name for f in fields(EpisodeResult)}


def continuous_grasp(is_grasping, success: bool) -> tuple[bool, bool, int]:
    """(grasped, held continuously from the first grasp to success or the end, first step).

    A policy that grasps, drops and re-grasps has `grasp` but not `cont_grasp`; on success
    the release at the goal is allowed."""
    held = [bool(h) for h in is_grasping]
    if not any(held):
        return False, False, -1
    first = held.index(True)
    last = len(held) - 1 - held[::-1].index(True)
    contiguous = all(held[first : last + 1])
    return True, contiguous and (success or last == len(held) - 1), first


class ResultsFile:
    """Append-only JSONL of `EpisodeResult`s."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._repair()

    def _repair(self) -> None:
        """Drop a truncated final line left by a crash mid-write."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            log.warning("%s: dropping a partially written last line (%d bytes)", self.path, len(data) - cut)
            with open(self.path, "r+b") as f:
                f.truncate(cut)

    def read(self) -> list[EpisodeResult]:
        return read_results([self.path]) if self.path.exists() else []

    def done_keys(self) -> set[tuple]:
        return {r.key for r in self.read()}

    def append(self, result: EpisodeResult) -> None:
        line = json.dumps(asdict(result), allow_nan=True) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def read_results(paths: Iterable[str | Path]) -> list[EpisodeResult]:
    """All episodes in one or more JSONL files; a clear error names a corrupt line."""
    out = []
    for path in paths:
        path = Path(path)
        if not path.exists():
            raise UserFileNotFoundError(f"{path}: no such results file")
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    unknown = set(record) - _FIELDS
                    if unknown:
                        raise ValueError(f"unknown fields {sorted(unknown)}")
                    out.append(EpisodeResult(**record))
                except (json.JSONDecodeError, TypeError, ValueError) as err:
                    raise UserError(f"{path}:{number}: not an episode result ({err})") from None
    return out
