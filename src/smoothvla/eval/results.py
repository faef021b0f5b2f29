"""Evaluation results: one JSON line per finished episode, appended as episodes finish.

The key of an episode (`EpisodeResult.key`) is everything that decides its outcome: the
policy label and training seed, the checkpoint's content hash, the settings it was acted
with (sampling, execution scheme, policy overrides, env options: `settings`), the task, init
state, env seed, perturbation and strength. A results file holds each key at most once:

- resume: `ResultsFile.done_keys()` says which episodes already exist, so a killed
  evaluation re-run skips them; a partially written last line (the process died mid-write)
  is ignored on read and cut off by the next writer;
- concurrency: `ResultsFile.append_new` takes an exclusive `flock` on the file, re-reads
  the keys under it and writes only episodes that are still missing, so two evaluations
  writing one file at once never store an episode twice;
- reading: `read_results` type-checks every row (a clear error names file, line and field)
  and drops rows whose key it has already read (e.g. one file given twice), with a warning
  that counts them.

Rows written before `checkpoint` and `settings` were recorded read with both `None`
(unknown): they never match a new run's key, and `evaluate` refuses to add rows to their
label (see `smoothvla.eval.runner`).
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from smoothvla.errors import UserError, UserFileNotFoundError

log = logging.getLogger(__name__)


@dataclass
class EpisodeResult:
    """One evaluation episode (RL4VLA App. B.3 for the grasp metrics)."""

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
    jerk_boundary: float = float("nan")
    """Where the jerk comes from (docs/metrics.md): mean jerk of the windows whose actions
    span two chunks, of those inside one chunk, and of those near a gripper event (m/s^3);
    `_share`: their part of the summed jerk; `_windows`: their part of the windows."""
    jerk_boundary_share: float = float("nan")
    jerk_boundary_windows: float = float("nan")
    jerk_inside: float = float("nan")
    jerk_inside_share: float = float("nan")
    jerk_inside_windows: float = float("nan")
    jerk_event: float = float("nan")
    jerk_event_share: float = float("nan")
    jerk_event_windows: float = float("nan")
    chunk_start_steps: list[int] | None = None
    """Action index of each chunk's first action, kept with `ee_path`."""
    event_steps: list[int] | None = None
    """Action index of each gripper event (command change or grasp transition), kept with
    `ee_path`."""
    jerk_trace: list[float] | None = None
    """Jerk norm of each window t (m/s^3, at step t + 1.5), kept with `ee_path`."""
    ee_path: list[list[float]] | None = None
    """Optional (T, 3) end-effector path, kept for the path figures."""
    grasp_step: int = -1
    """First step at which the object was held (-1: never)."""
    extras: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    """Content hash of the checkpoint's files (`runner.checkpoint_digest`); None: unknown
    (a row written before it was recorded)."""
    settings: dict[str, Any] | None = None
    """How the episode was acted (`EvalPlan.settings()`: sampling, execution scheme, policy
    overrides, env options; settings at their default are left out); None: unknown."""

    @property
    def key(self) -> tuple:
        """Identity of the episode: a results file holds each key once."""
        return (self.policy, self.train_seed, self.checkpoint, settings_key(self.settings),
                self.task_id, self.init_id, self.seed, self.perturbation, self.strength)


def settings_key(settings: dict[str, Any] | None) -> str | None:
    """Canonical text of a settings dict (sorted keys), None for unknown settings."""
    return None if settings is None else json.dumps(settings, sort_keys=True, separators=(",", ":"))


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


# -- validation: every field of a row has the JSON type its annotation says -----------------

def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "expected a JSON bool (true/false)"


def _check_int(v: Any) -> str | None:
    return None if isinstance(v, int) and not isinstance(v, bool) else "expected an integer"


def _check_str(v: Any) -> str | None:
    return None if isinstance(v, str) else "expected a string"


def _check_dict(v: Any) -> str | None:
    return None if isinstance(v, dict) else "expected an object"


def _check_path(v: Any) -> str | None:
    ok = isinstance(v, list) and all(
        isinstance(p, list) and len(p) == 3 and all(_is_number(x) and math.isfinite(x) for x in p)
        for p in v)
    return None if ok else "expected a list of [x, y, z] finite numbers"


def _check_int_list(v: Any) -> str | None:
    ok = isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)
    return None if ok else "expected a list of integers"


def _check_float_list(v: Any) -> str | None:
    ok = isinstance(v, list) and all(_is_number(x) and not math.isinf(x) for x in v)
    return None if ok else "expected a list of numbers (finite or NaN)"


def _float_checker(nan_allowed: bool) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not _is_number(v):
            return "expected a number"
        if math.isfinite(v) or (nan_allowed and math.isnan(v)):
            return None
        return "expected a finite number or NaN" if nan_allowed else "expected a finite number"
    return check


def _optional(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    return lambda v: None if v is None else check(v)


_BASE_CHECKS = {"bool": _check_bool, "int": _check_int, "str": _check_str,
                "dict[str, Any]": _check_dict, "list[list[float]]": _check_path,
                "list[int]": _check_int_list, "list[float]": _check_float_list}


def _checker(f) -> Callable[[Any], str | None] | None:
    """The check of one field from its annotation; a float whose default is NaN (a metric
    that can be undefined) may be NaN, every other float must be finite."""
    kind = str(f.type)
    optional = kind.endswith(" | None")
    kind = kind.removesuffix(" | None")
    if kind == "float":
        default = f.default if f.default is not MISSING else 0.0
        check = _float_checker(isinstance(default, float) and math.isnan(default))
    else:
        check = _BASE_CHECKS.get(kind)
    if check is None:
        return None
    return _optional(check) if optional else check


_CHECKS = {f.name: _checker(f) for f in fields(EpisodeResult)}
_REQUIRED = {f.name for f in fields(EpisodeResult)
             if f.default is MISSING and f.default_factory is MISSING}


def _parse(record: Any) -> EpisodeResult:
    """An EpisodeResult from one decoded JSON line; ValueError says which field is wrong."""
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    unknown = set(record) - set(_CHECKS)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    missing = _REQUIRED - set(record)
    if missing:
        raise ValueError(f"missing fields {sorted(missing)}")
    for name, value in record.items():
        check = _CHECKS[name]
        problem = check(value) if check else None
        if problem:
            raise ValueError(f"field {name}: {problem}, got {json.dumps(value)[:60]}")
    return EpisodeResult(**record)


def check_result(result: EpisodeResult) -> None:
    """ValueError if a result would not read back (e.g. a non-bool `success`)."""
    _parse(json.loads(json.dumps(asdict(result), allow_nan=True)))


def check_labels(results: Iterable[EpisodeResult], labels: set[str] | None = None) -> None:
    """UserError when one label's rows were acted with different settings, or come from
    different checkpoints for one training seed (e.g. two results files that reuse a label):
    a cell would average two different policies. Unknown (older rows') settings and
    checkpoints count as one more distinct value. `labels`: check only these."""
    settings: dict[str, dict] = defaultdict(dict)
    checkpoints: dict[tuple, set] = defaultdict(set)
    for r in results:
        if labels is not None and r.policy not in labels:
            continue
        settings[r.policy].setdefault(settings_key(r.settings), r.settings)
        checkpoints[(r.policy, r.train_seed)].add(r.checkpoint)
    for policy, seen in settings.items():
        if len(seen) > 1:
            known = [s for s in seen.values() if s is not None]
            names = sorted({k for s in known for k in s
                            if len({json.dumps(t.get(k), sort_keys=True) for t in known}) > 1})
            names += ["<unknown>"] if None in seen else []
            raise UserError(
                f"results of '{policy}' were acted with {len(seen)} different settings "
                f"(differing: {', '.join(names) or 'unknown'}; '<unknown>': rows written "
                "before settings were recorded); evaluate them under separate labels")
    for (policy, seed), seen in checkpoints.items():
        if len(seen) > 1:
            names = ", ".join(sorted(c or "unknown" for c in seen))
            raise UserError(f"results of '{policy}' (training seed {seed}) come from {len(seen)} "
                            f"different checkpoints ({names}); evaluate them under separate labels")


# -- the file ------------------------------------------------------------------------------

def _complete_lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of every newline-terminated line; a last line without its
    newline is a write in progress or cut short by a crash, and is left out."""
    lines = data.split(b"\n")
    for number, line in enumerate(lines[:-1], 1):
        yield number, line


def _read_file(path: Path) -> list[EpisodeResult]:
    if not path.is_file():
        raise UserFileNotFoundError(f"{path}: no such results file")
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        log.warning("%s: ignoring a partially written last line (%d bytes)",
                    path, len(data) - data.rfind(b"\n") - 1)
    return _parse_lines(path, data)


def _parse_lines(path: Path, data: bytes) -> list[EpisodeResult]:
    out = []
    for number, line in _complete_lines(data):
        if not line.strip():
            continue
        try:
            out.append(_parse(json.loads(line)))
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
            raise UserError(f"{path}:{number}: not an episode result ({err})") from None
    return out


class ResultsFile:
    """Append-only JSONL of `EpisodeResult`s, each key at most once (see the module doc)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def read(self) -> list[EpisodeResult]:
        return read_results([self.path]) if self.path.exists() else []

    def done_keys(self) -> set[tuple]:
        return {r.key for r in self.read()}

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        """The file opened for appending under an exclusive lock (`flock`: local file
        systems; some network file systems do not honour it)."""
        with open(self.path, "a+b") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield f
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def append_new(self, results: Iterable[EpisodeResult]) -> list[EpisodeResult]:
        """Append the results whose key the file does not hold yet; returns those written.

        Under the lock: cut a last line left unfinished by a crashed writer, re-read the
        rows, refuse (UserError) rows that would mix a label's settings or checkpoints
        (`check_labels`), write the missing episodes in one write and fsync."""
        results = list(results)
        for r in results:
            check_result(r)
        with self._locked() as f:
            f.seek(0)
            data = f.read()
            if data and not data.endswith(b"\n"):
                cut = data.rfind(b"\n") + 1
                log.warning("%s: dropping a partially written last line (%d bytes)",
                            self.path, len(data) - cut)
                f.truncate(cut)
                data = data[:cut]
            stored = _parse_lines(self.path, data)
            have = {r.key for r in stored}
            new = []
            for r in results:
                if r.key not in have:
                    have.add(r.key)
                    new.append(r)
            # a concurrent evaluation of the same label acted otherwise: refuse to mix them
            check_labels(stored + new, labels={r.policy for r in new})
            if new:
                text = "".join(json.dumps(asdict(r), allow_nan=True) + "\n" for r in new)
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
        return new

    def append(self, result: EpisodeResult) -> bool:
        """Append one result unless its key is already stored; True if it was written."""
        return bool(self.append_new([result]))


def read_results(paths: Iterable[str | Path]) -> list[EpisodeResult]:
    """All episodes in one or more JSONL files, each key once (later copies are dropped
    with a warning that counts them); a clear error names a corrupt line and field."""
    out, seen, duplicates = [], set(), 0
    paths = [Path(p) for p in paths]
    for path in paths:
        for r in _read_file(path):
            if r.key in seen:
                duplicates += 1
                continue
            seen.add(r.key)
            out.append(r)
    if duplicates:
        log.warning("%d duplicate episode(s) ignored in %s: the same key (policy, checkpoint, "
                    "settings, task, init state, seed, perturbation) more than once%s",
                    duplicates, ", ".join(map(str, paths)),
                    " (a file given twice)" if len(set(p.resolve() for p in paths)) < len(paths)
                    else "")
    return out
