"""Environment pools: where the simulators run while the policy runs batched in the caller.

One interface (`EnvPool`), built by `make_pool(backend, num_envs, ...)`:

- `WorkerPool` (`rollout/workers.py`): the one pool core (calls, tickets, timeouts,
  restarts) with a `Transport` behind it: `ProcessPool` = worker processes (multiprocessing, spawn context, one pipe per
  worker; a worker owns one or more envs), `ray_pool.RayPool` = Ray actors across
  machines. A worker that dies (crash, OOM kill) or does not answer within `timeout_s` is
  killed and restarted; the episodes it hosted are returned as `Failure`s (the collector
  drops and counts them) and collection goes on.
- `InProcessPool`: the same envs in the calling process, for tests and debugging.

A call hands each env either a reset request or a whole action chunk (or, op "call", a
function to run in the worker: `_Slot.call`): the worker executes
the chunk's actions until the episode ends and sends back the last observation plus the
per-step physics (`info`) of every executed step, so there is one round trip per chunk,
not per control step (the SmolVLA GRPO report §4.3: simulation throughput decides what RL can do).

Env-side exceptions (a bad task id, a simulator error) are `Failure(kind="error")` for that
env only; the worker keeps running.
"""

from __future__ import annotations

import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, TypedDict, Unpack

import numpy as np

EnvFactory = Callable[..., Any]
"""`factory(task_id, **options) -> TaskEnv`; `smoothvla.envs.make` by default."""


class PoolOptions(TypedDict, total=False):
    """The keyword arguments of every worker pool (`workers.ProcessPool`, `ray_pool.RayPool`)
    and of `make_pool`; `pool_options` fills in the defaults."""

    num_workers: int | None
    """Workers; env i lives on worker i // ceil(num_envs / num_workers). None: one per CPU
    (of the machine, or of the Ray cluster), at most one per env."""
    env_factory: EnvFactory | None
    """`factory(task_id, **env_options) -> TaskEnv`, picklable (a module-level function);
    None: `smoothvla.envs.make`."""
    env_options: dict[str, Any] | None
    """Options of every env (cameras, image size, perturbation)."""
    timeout_s: float
    """Bound on one call (every env of a worker, in sequence on that worker): 120 s."""
    start_timeout_s: float
    """Bound on a worker's start (imports, scheduling): 300 s."""


POOL_DEFAULTS: PoolOptions = {"num_workers": None, "env_factory": None, "env_options": None,
                              "timeout_s": 120.0, "start_timeout_s": 300.0}


def pool_options(options: PoolOptions) -> PoolOptions:
    """`options` with `POOL_DEFAULTS` for what it leaves out; TypeError for unknown names."""
    unknown = sorted(set(options) - set(POOL_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown pool options {unknown}; known: {', '.join(POOL_DEFAULTS)}")
    return {**POOL_DEFAULTS, **options}  # type: ignore[typeddict-item]

RECORD_KEYS = ("ee_pos", "ee_quat", "joint_pos", "gripper", "is_grasping", "success")


@dataclass(frozen=True)
class ResetRequest:
    """Start an episode: which task, env seed and initial state; `max_steps` caps the
    episode below the env's own limit (None: the env's limit)."""

    task_id: str
    seed: int
    init_id: int
    max_steps: int | None = None
    video_camera: str | None = None
    """Keep this camera's image of every state of the episode (`EnvResult.frames`); None:
    keep none, the default (frames cost a copy and the pipe only when asked for)."""


@dataclass
class EnvResult:
    """What one env sends back after a reset or after executing (part of) a chunk.

    Attributes:
        obs: the last observation (after reset, or after the last executed action). An
            episode that ends before its chunk does ends on a step whose images were not
            rendered (`obs["rgb"] == {}`): nothing acts on a final observation.
        records: per-step physics, one dict with `RECORD_KEYS` per state: the reset state
            for a reset, one per executed action for a chunk.
        rewards: env reward of each executed action (empty for a reset).
        terminated, truncated: Gymnasium flags after the last executed action.
        sim_s: seconds spent inside the env (simulation + rendering + env construction).
        control_dt: the env's seconds per control step.
        render_s: the part of sim_s spent rendering camera images (envs that count it in a
            `render_s` attribute; 0 otherwise).
        frames: uint8 (H, W, 3) image of the episode's video camera for each of `records`,
            when its reset asked for one (`ResetRequest.video_camera`); empty otherwise.
    """

    obs: dict[str, Any]
    records: list[dict[str, Any]]
    rewards: list[float] = field(default_factory=list)
    terminated: bool = False
    truncated: bool = False
    sim_s: float = 0.0
    control_dt: float = 0.0
    render_s: float = 0.0
    frames: list[np.ndarray] = field(default_factory=list)


@dataclass(frozen=True)
class Failure:
    """An env whose episode is lost: kind is "crash", "timeout" or "error"."""

    kind: str
    message: str


@dataclass
class CallStats:
    """Timing of the last pool call: wall time, total env time, env time on the critical path,
    total rendering time (part of the env time)."""

    wall_s: float = 0.0
    sim_s: float = 0.0
    critical_sim_s: float = 0.0
    render_s: float = 0.0


class EnvPool(Protocol):
    """What the collector needs from a pool (`InProcessPool`, `WorkerPool`)."""

    num_envs: int
    last_call: CallStats
    failures: Counter
    restarts: int

    def reset(self, requests: dict[int, ResetRequest]) -> dict[int, EnvResult | Failure]: ...

    def run(self, actions: dict[int, np.ndarray]) -> dict[int, EnvResult | Failure]: ...

    def submit(self, op: str, payload: dict[int, Any]) -> int: ...

    def result(self, ticket: int) -> dict[int, EnvResult | Failure]: ...

    def close(self) -> None: ...


def _render_total(replies: dict[int, Any]) -> float:
    return sum(r.render_s for r in replies.values() if isinstance(r, EnvResult))


def _record(info: dict[str, Any]) -> dict[str, Any]:
    missing = [k for k in RECORD_KEYS if k not in info]
    if missing:
        raise KeyError(f"env info lacks {missing}; TaskEnv info must carry {list(RECORD_KEYS)}")
    return {k: info[k] for k in RECORD_KEYS}


def _frame(obs: dict[str, Any], camera: str) -> np.ndarray:
    """A copy of `camera`'s image in `obs` (envs may reuse their image buffers)."""
    images = obs.get("rgb") or {}
    if camera not in images:
        raise ValueError(f"cannot record video from camera {camera!r}: the env renders "
                         f"{sorted(images) or 'no camera'}")
    return np.array(images[camera], dtype=np.uint8, copy=True)


class _Slot:
    """One env and its episode, as hosted by a worker (or by `InProcessPool`)."""

    def __init__(self, factory: EnvFactory, options: dict[str, Any]) -> None:
        self.factory = factory
        self.options = options
        self.env: Any = None
        self.task_id: str | None = None
        self.steps = 0
        self.limit = 0
        self.in_episode = False
        self.video_camera: str | None = None

    def reset(self, request: ResetRequest) -> EnvResult:
        start = time.perf_counter()
        if self.env is None or self.task_id != request.task_id:
            self.discard()
            self.env = self.factory(request.task_id, **self.options)
            self.task_id = request.task_id
        rendered = self._render_s()
        obs, info = self.env.reset(seed=request.seed, init_id=request.init_id)
        self.steps = 0
        self.limit = min(self.env.max_steps, request.max_steps or self.env.max_steps)
        self.in_episode = True
        self.video_camera = request.video_camera
        frames = [_frame(obs, self.video_camera)] if self.video_camera else []
        return EnvResult(
            obs, [_record(info)], sim_s=time.perf_counter() - start, control_dt=self.env.control_dt,
            render_s=self._render_s() - rendered, frames=frames,
        )

    def _render_s(self) -> float:
        return float(getattr(self.env, "render_s", 0.0))

    def run(self, actions: np.ndarray) -> EnvResult:
        if not self.in_episode:
            raise RuntimeError("no episode in progress on this env (reset it first)")
        start = time.perf_counter()
        rendered = self._render_s()
        records, rewards, frames = [], [], []
        obs, terminated, truncated = None, False, False
        last = len(actions) - 1
        for i, action in enumerate(actions):
            # Images only where they are read: the chunk's last state (the policy's next
            # observation) and, for a video, every state. Inside a chunk nothing reads them.
            render = i == last or self.video_camera is not None
            obs, reward, terminated, truncated, info = self.env.step(action, render=render)
            self.steps += 1
            records.append(_record(info))
            rewards.append(float(reward))
            if self.video_camera:
                frames.append(_frame(obs, self.video_camera))
            # enforce the step limit here too, so a lenient env cannot run forever
            truncated = bool(truncated or (self.steps >= self.limit and not terminated))
            if terminated or truncated:
                self.in_episode = False
                break
        return EnvResult(
            obs,
            records,
            rewards,
            bool(terminated),
            truncated,
            time.perf_counter() - start,
            self.env.control_dt,
            self._render_s() - rendered,
            frames,
        )

    def call(self, request: tuple[Callable[..., Any], tuple]) -> Any:
        """Run `fn(*args)` here, `request` = (fn, args), fn a module-level function: work
        that drives an env on its own inside the worker, such as a whole scripted-expert
        episode (`experts.collect`). The slot's env is not involved."""
        fn, args = request
        return fn(*args)

    def discard(self) -> None:
        if self.env is not None:
            try:
                self.env.close()
            finally:
                self.env, self.task_id, self.in_episode = None, None, False


def _resolve_factory(factory: EnvFactory | None) -> EnvFactory:
    if factory is not None:
        return factory
    from smoothvla.envs import make

    return make


def _serve(slots: list[_Slot], op: str, payload: dict[int, Any]) -> dict[int, EnvResult | Failure]:
    replies: dict[int, EnvResult | Failure] = {}
    for local, arg in payload.items():
        try:
            replies[local] = getattr(slots[local], op)(arg)
        except Exception as err:  # an env error loses this episode only
            slots[local].in_episode = False
            detail = traceback.format_exc(limit=3)
            replies[local] = Failure("error", f"{type(err).__name__}: {err}\n{detail}")
    return replies


class InProcessPool:
    """The envs in this process, stepped one after another; same interface as `ProcessPool`."""

    def __init__(
        self,
        num_envs: int,
        *,
        env_factory: EnvFactory | None = None,
        env_options: dict[str, Any] | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        factory = _resolve_factory(env_factory)
        self._slots = [_Slot(factory, dict(env_options or {})) for _ in range(num_envs)]
        self._done: dict[int, tuple[dict[int, EnvResult | Failure], CallStats]] = {}
        self._next_ticket = 0
        self.last_call = CallStats()
        self.failures: Counter = Counter()
        self.restarts = 0

    def reset(self, requests: dict[int, ResetRequest]) -> dict[int, EnvResult | Failure]:
        return self._call("reset", requests)

    def run(self, actions: dict[int, np.ndarray]) -> dict[int, EnvResult | Failure]:
        return self._call("run", actions)

    def submit(self, op: str, payload: dict[int, Any]) -> int:
        """Run the call now (there is nothing to overlap with); `result` hands it back."""
        self._done[self._next_ticket] = (self._call(op, payload), self.last_call)
        self._next_ticket += 1
        return self._next_ticket - 1

    def result(self, ticket: int) -> dict[int, EnvResult | Failure]:
        replies, self.last_call = self._done.pop(ticket)
        return replies

    def _call(self, op: str, payload: dict[int, Any]) -> dict[int, EnvResult | Failure]:
        _check_indices(payload, self.num_envs)
        start = time.perf_counter()
        replies = _serve(self._slots, op, payload)
        sim = sum(r.sim_s for r in replies.values() if isinstance(r, EnvResult))
        self.last_call = CallStats(time.perf_counter() - start, sim, sim, _render_total(replies))
        self.failures.update(r.kind for r in replies.values() if isinstance(r, Failure))
        return replies

    def close(self) -> None:
        for slot in self._slots:
            slot.discard()

    def __enter__(self) -> "InProcessPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_indices(payload: dict[int, Any], num_envs: int) -> None:
    bad = [i for i in payload if not 0 <= i < num_envs]
    if bad:
        raise ValueError(f"env indices {bad} out of range for a pool of {num_envs} envs")


BACKENDS = ("inprocess", "local", "process", "ray")
"""`make_pool` backends; "local" is another name for "inprocess"."""


def make_pool(backend: str, num_envs: int, *, ray_address: str | None = None,
              ray_num_cpus: int | None = None, **options: Unpack[PoolOptions]) -> EnvPool:
    """A pool by backend: "inprocess" (or "local": envs in this process; it uses only the
    env factory and options), "process" (local worker processes) or "ray" (Ray actors, on a
    local Ray or the cluster at `ray_address`). The one place pools are built (training,
    evaluation, benchmarks)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown pool backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if (ray_address is not None or ray_num_cpus is not None) and backend != "ray":
        raise ValueError(f"ray_address and ray_num_cpus are only used by the ray backend, "
                         f"not {backend!r}")
    if backend in ("inprocess", "local"):
        resolved = pool_options(options)
        return InProcessPool(num_envs, env_factory=resolved["env_factory"],
                             env_options=resolved["env_options"])
    if backend == "process":
        from smoothvla.rollout.workers import ProcessPool

        return ProcessPool(num_envs, **options)
    from smoothvla.rollout.ray_pool import RayPool

    return RayPool(num_envs, address=ray_address, num_cpus=ray_num_cpus, **options)


def __getattr__(name: str) -> Any:
    """`ProcessPool`, `WorkerPool` and `die_with_parent` live in `rollout.workers` (which
    imports this module); they are still importable from here."""
    if name in ("ProcessPool", "WorkerPool", "die_with_parent"):
        from smoothvla.rollout import workers

        return getattr(workers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
