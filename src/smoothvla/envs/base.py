"""The `TaskEnv` interface every suite implements, and the task-id registry.

Observation (`smoothvla.types`, DESIGN.md): a dict with
    rgb:         {camera name: uint8 (H, W, 3)}, upright images
    proprio:     float32 (8,): ee position (3), ee orientation as axis-angle (3), gripper (2)
    instruction: str
    prev_actions: float32 (H, 7): the last H executed actions (clipped to [-1, 1]), oldest
                 first, zeros before the episode start (added by `ActionHistory`, which
                 `make` wraps around every env; H = ACTION_HISTORY unless `make` is given
                 action_history=H)
Action: float (7,) in [-1, 1]: ee position delta (3), rotation delta (3), gripper (1;
-1 open, +1 close), as LIBERO's OSC_POSE delta control.
Per-step `info`: ee_pos (3,), ee_quat (4, w x y z), joint_pos (n,), gripper (float, opening
in metres), is_grasping (bool, the task's target object is held), success (bool),
control_dt (float).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from smoothvla.errors import UserError
from smoothvla.types import ACTION_DIM, Observation

ACTION_HISTORY = 16
"""Executed actions an observation carries by default (obs['prev_actions'])."""


@dataclass(frozen=True)
class TaskSpec:
    """A task: a versioned id such as ``tabletop-object/pick-ketchup-place-basket-v1``."""

    task_id: str
    suite: str
    name: str
    instruction: str
    max_steps: int
    num_init_states: int
    """Fixed initial states, init ids 0 .. num_init_states - 1."""
    samples_init_states: bool = False
    """Whether init ids from `num_init_states` on are accepted: layouts the suite samples
    from (seed, init_id) (LIBERO's own placement), for demonstrations kept apart from the
    fixed states."""


@runtime_checkable
class TaskEnv(Protocol):
    """Gymnasium-style environment for one language-conditioned task."""

    task: TaskSpec
    control_dt: float
    max_steps: int

    def reset(self, seed: int | None = None, init_id: int = 0) -> tuple[Observation, dict]: ...

    def step(self, action: np.ndarray, render: bool = True
             ) -> tuple[Observation, float, bool, bool, dict]:
        """One control step. `render=False`: the caller will not read this observation's
        images (a step inside an action chunk), so the env may leave them out
        (`obs["rgb"] == {}`); it must not change anything else, and an env whose image noise
        draws from a stream that other things share keeps rendering."""
        ...

    def close(self) -> None: ...


def check_action(action: Any) -> np.ndarray:
    """Validate one action: shape (7,), finite. Values are clipped to [-1, 1] by the env."""
    arr = np.asarray(action, dtype=np.float64)
    if arr.shape != (ACTION_DIM,):
        raise ValueError(f"action must have shape ({ACTION_DIM},), got {arr.shape}")
    if not np.isfinite(arr).all():  # the method: np.all's wrapper costs more than the check
        raise ValueError(f"action contains NaN or inf: {arr.tolist()}")
    return arr


class ActionHistory:
    """Wraps a `TaskEnv` so that every observation also carries the last `length` executed
    actions, obs['prev_actions'] (length, 7) float32, oldest first: zeros at reset (the
    robot was at rest), then each action as the env executes it (validated and clipped to
    [-1, 1]). Shared by every suite through `make`, so rollouts, evaluation and SFT's own
    evaluation see the same observation. Everything else is the wrapped env's."""

    def __init__(self, env: TaskEnv, length: int = ACTION_HISTORY):
        if length < 1:
            raise ValueError(f"action_history must be >= 1, got {length}")
        self.env = env
        self.history = np.zeros((length, ACTION_DIM), np.float32)

    def _observe(self, obs: Observation) -> Observation:
        return {**obs, "prev_actions": self.history.copy()}

    def reset(self, *args: Any, **kwargs: Any) -> tuple[Observation, dict]:
        obs, info = self.env.reset(*args, **kwargs)
        self.history[:] = 0.0
        return self._observe(obs), info

    def step(self, action: np.ndarray, render: bool = True
             ) -> tuple[Observation, float, bool, bool, dict]:
        executed = np.clip(check_action(action), -1.0, 1.0)
        obs, reward, terminated, truncated, info = self.env.step(action, render=render)
        self.history = np.roll(self.history, -1, axis=0)
        self.history[-1] = executed
        return self._observe(obs), reward, terminated, truncated, info

    def close(self) -> None:
        self.env.close()

    @property
    def unwrapped(self) -> TaskEnv:
        return self.env

    def __getattr__(self, name: str) -> Any:
        if name == "env":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.env, name)


@dataclass(frozen=True)
class Suite:
    """A registered suite: how to list its tasks and build an env for one of them."""

    name: str
    list_tasks: Callable[[], list[TaskSpec]]
    make: Callable[..., TaskEnv]


_SUITES: dict[str, Suite] = {}
# Suites live in optional modules, imported the first time one of their ids is asked for.
_SUITE_MODULES = {
    "tabletop-": "smoothvla.envs.tabletop",
    "libero-": "smoothvla.envs.libero",
}


def register_suite(suite: Suite) -> None:
    """Add a suite to the registry (called by the suite's module on import)."""
    _SUITES[suite.name] = suite


def _load_suite(name: str) -> Suite:
    if name not in _SUITES:
        for prefix, module in _SUITE_MODULES.items():
            if name.startswith(prefix):
                importlib.import_module(module)
                break
    if name not in _SUITES:
        raise UserError(f"unknown suite {name!r}; known suites: {', '.join(list_suites())}")
    return _SUITES[name]


def list_suites() -> list[str]:
    """Names of the suites that can be loaded here."""
    names = set(_SUITES)
    for module in _SUITE_MODULES.values():
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        names |= set(_SUITES)
    return sorted(names)


def list_tasks(suite: str | None = None) -> list[TaskSpec]:
    """Tasks of one suite, or of every loadable suite."""
    suites = [suite] if suite else list_suites()
    return [spec for name in suites for spec in _load_suite(name).list_tasks()]


def get_task(task_id: str) -> TaskSpec:
    """The TaskSpec of a task id; a clear error for unknown ids."""
    suite_name, _, _ = task_id.partition("/")
    for spec in _load_suite(suite_name).list_tasks():
        if spec.task_id == task_id:
            return spec
    known = ", ".join(spec.task_id for spec in _load_suite(suite_name).list_tasks()[:5])
    raise UserError(f"unknown task id {task_id!r} in suite {suite_name!r} (e.g. {known}, ...)")


def make(task_id: str, action_history: int = ACTION_HISTORY, **options: Any) -> TaskEnv:
    """Build the environment of one task, wrapped in `ActionHistory(env, action_history)`;
    options are suite-specific (cameras, perturbations)."""
    spec = get_task(task_id)
    return ActionHistory(_load_suite(spec.suite).make(spec, **options), action_history)
