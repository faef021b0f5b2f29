"""Environment pools: where the simulators run while the policy runs batched in the caller.

Two backends with one interface (`EnvPool`):

- `ProcessPool`: environments in worker processes (multiprocessing, spawn context, one pipe
  per worker; a worker owns one or more envs). A worker that dies (crash, OOM kill) or does
  not answer within `timeout_s` is killed and restarted; the episodes it hosted are returned
  as `Failure`s (the collector drops and counts them) and collection goes on.
- `InProcessPool`: the same envs in the calling process, for tests and debugging.

A call hands each env either a reset request or a whole action chunk: the worker executes
the chunk's actions until the episode ends and sends back the last observation plus the
per-step physics (`info`) of every executed step, so there is one round trip per chunk,
not per control step (the SmolVLA GRPO report §4.3: simulation throughput decides what RL can do).

Env-side exceptions (a bad task id, a simulator error) are `Failure(kind="error")` for that
env only; the worker keeps running.
"""

from __future__ import annotations

import multiprocessing as mp
import multiprocessing.connection
import os
import pickle
import sys
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

import numpy as np

EnvFactory = Callable[..., Any]
"""`factory(task_id, **options) -> TaskEnv`; `smoothvla.envs.make` by default."""

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
        obs: the last observation (after reset, or after the last executed action).
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
    """What the collector needs from a pool."""

    num_envs: int
    last_call: CallStats
    failures: Counter

    def reset(self, requests: dict[int, ResetRequest]) -> dict[int, EnvResult | Failure]: ...

    def run(self, actions: dict[int, np.ndarray]) -> dict[int, EnvResult | Failure]: ...

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
        for action in actions:
            obs, reward, terminated, truncated, info = self.env.step(action)
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


def die_with_parent() -> None:
    """Call first thing in a worker process: on Linux the kernel then SIGKILLs it when the
    process that started it dies, even by SIGKILL (prctl PR_SET_PDEATHSIG), so a killed run
    leaves no workers behind. A worker whose parent already died exits at once. The kernel
    ties this to the thread that started the worker, so start pools from a thread that
    outlives them (every caller here uses the main thread). Elsewhere a no-op
    (ProcessPool workers still leave on EOF of their pipe)."""
    if sys.platform != "linux":
        return
    import ctypes
    import signal

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    parent = mp.parent_process()
    if parent is not None and os.getppid() != parent.pid:  # died before prctl took effect
        os._exit(1)


def _worker_main(
    conn: mp.connection.Connection, num_slots: int, factory_bytes: bytes, options: dict
) -> None:
    die_with_parent()
    # Set before anything imports torch or mujoco: one thread per worker on shared CPUs, and
    # offscreen rendering for MuJoCo suites.
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    factory = _resolve_factory(pickle.loads(factory_bytes))
    slots = [_Slot(factory, options) for _ in range(num_slots)]
    conn.send(("ready", os.getpid()))
    while True:
        try:
            op, payload = conn.recv()
        except (EOFError, KeyboardInterrupt):
            break
        if op == "close":
            break
        conn.send(_serve(slots, op, payload))
    for slot in slots:
        slot.discard()


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


@dataclass
class _Ticket:
    """A call in flight: what was sent to which worker, and what came back."""

    op: str
    start: float
    by_worker: dict[int, dict[int, Any]] = field(default_factory=dict)
    early: dict[int, Failure] = field(default_factory=dict)
    replies: dict[int, dict[int, EnvResult | Failure]] = field(default_factory=dict)
    broken: dict[int, Failure] = field(default_factory=dict)


@dataclass
class _Worker:
    process: Any
    conn: mp.connection.Connection
    envs: list[int]
    pid: int = -1


class ProcessPool:
    """Envs in `num_workers` spawned processes; dead or hung workers are restarted.

    Env i lives in worker i // envs_per_worker. `timeout_s` bounds one call (one reset or
    one chunk for every env of a worker, run in sequence inside that worker);
    `start_timeout_s` bounds a worker's start (imports) separately.
    """

    def __init__(
        self,
        num_envs: int,
        *,
        num_workers: int | None = None,
        env_factory: EnvFactory | None = None,
        env_options: dict[str, Any] | None = None,
        timeout_s: float = 120.0,
        start_timeout_s: float = 300.0,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        num_workers = min(num_envs, num_workers or os.cpu_count() or 1)
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if timeout_s <= 0 or start_timeout_s <= 0:
            raise ValueError("timeout_s and start_timeout_s must be positive")
        self.num_envs = num_envs
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.last_call = CallStats()
        self.failures: Counter = Counter()
        self.restarts = 0
        self._ctx = mp.get_context("spawn")
        try:
            self._factory_bytes = pickle.dumps(env_factory)
        except (pickle.PicklingError, AttributeError, TypeError) as err:
            raise ValueError(
                "ProcessPool's env_factory must be picklable (a module-level function or "
                f"class, not a lambda or closure): {err}"
            ) from err
        self._options = dict(env_options or {})
        per_worker = -(-num_envs // num_workers)
        groups = [
            list(range(s, min(s + per_worker, num_envs))) for s in range(0, num_envs, per_worker)
        ]
        self._owner = {env: w for w, envs in enumerate(groups) for env in envs}
        self._lost: set[int] = set()
        self._tickets: dict[int, _Ticket] = {}
        self._inflight: dict[int, int | None] = {}
        self._next_ticket = 0
        self._workers: list[_Worker] = [self._spawn(envs) for envs in groups]
        for worker in self._workers:
            self._await_ready(worker)

    @property
    def worker_pids(self) -> list[int]:
        """Process id of each worker (changes when a worker is restarted)."""
        return [w.pid for w in self._workers]

    def reset(self, requests: dict[int, ResetRequest]) -> dict[int, EnvResult | Failure]:
        return self._call("reset", requests)

    def run(self, actions: dict[int, np.ndarray]) -> dict[int, EnvResult | Failure]:
        return self._call("run", actions)

    def submit(self, op: str, payload: dict[int, Any]) -> int:
        """Send a call ("reset" or "run") to the workers and return at once with a ticket
        for `result`. A worker has at most one call in flight: submitting to a busy worker
        first waits for (and keeps) its earlier reply."""
        _check_indices(payload, self.num_envs)
        ticket = _Ticket(op, time.perf_counter())
        for env, arg in payload.items():
            if op == "reset":
                self._lost.discard(env)
            elif env in self._lost:
                ticket.early[env] = Failure(
                    "crash", "its worker was restarted during an earlier call"
                )
                continue
            w = self._owner[env]
            ticket.by_worker.setdefault(w, {})[self._workers[w].envs.index(env)] = arg
        ticket_id = self._next_ticket
        self._next_ticket += 1
        self._tickets[ticket_id] = ticket
        for w, local_payload in ticket.by_worker.items():
            if self._inflight.get(w) is not None:
                self._settle(w)
            try:
                self._workers[w].conn.send((op, local_payload))
                self._inflight[w] = ticket_id
            except (BrokenPipeError, ConnectionResetError, OSError) as err:
                self._break(ticket, w, Failure("crash", f"worker {w} pipe broken on send: {err}"))
        return ticket_id

    def result(self, ticket_id: int) -> dict[int, EnvResult | Failure]:
        """Wait for the replies of a submitted call; workers that die or do not answer
        within `timeout_s` of the submission are restarted and their envs fail."""
        ticket = self._tickets.pop(ticket_id)
        deadline = ticket.start + self.timeout_s
        pending = {
            w for w in ticket.by_worker if w not in ticket.replies and w not in ticket.broken
        }
        while pending:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            conns = {self._workers[w].conn: w for w in pending}
            for conn in mp.connection.wait(list(conns), timeout=remaining):
                w = conns[conn]
                pending.discard(w)
                self._receive(ticket, w)
        for w in pending:
            self._break(
                ticket,
                w,
                Failure("timeout", f"worker {w} did not answer within {self.timeout_s:.1f} s"),
            )

        results: dict[int, EnvResult | Failure] = dict(ticket.early)
        critical = 0.0
        for w, local_payload in ticket.by_worker.items():
            envs = self._workers[w].envs
            if w in ticket.broken:
                results.update({envs[local]: ticket.broken[w] for local in local_payload})
                continue
            replies = ticket.replies[w]
            critical = max(
                critical, sum(r.sim_s for r in replies.values() if isinstance(r, EnvResult))
            )
            results.update({envs[local]: reply for local, reply in replies.items()})
        sim = sum(r.sim_s for r in results.values() if isinstance(r, EnvResult))
        self.last_call = CallStats(time.perf_counter() - ticket.start, sim, critical,
                                   _render_total(results))
        self.failures.update(r.kind for r in results.values() if isinstance(r, Failure))
        return results

    def _call(self, op: str, payload: dict[int, Any]) -> dict[int, EnvResult | Failure]:
        return self.result(self.submit(op, payload))

    def _receive(self, ticket: "_Ticket", w: int) -> None:
        """Read worker w's reply to its call in flight (which belongs to `ticket`)."""
        try:
            ticket.replies[w] = self._workers[w].conn.recv()
            self._inflight[w] = None
        except (EOFError, ConnectionResetError, OSError):
            code = self._workers[w].process.exitcode
            self._break(ticket, w, Failure("crash", f"worker {w} died (exit code {code})"))

    def _settle(self, w: int) -> None:
        """Wait for worker w's reply to an earlier call and keep it for that call's `result`."""
        ticket = self._tickets[self._inflight[w]]
        remaining = ticket.start + self.timeout_s - time.perf_counter()
        if self._workers[w].conn.poll(max(remaining, 0.0)):
            self._receive(ticket, w)
        else:
            self._break(
                ticket,
                w,
                Failure("timeout", f"worker {w} did not answer within {self.timeout_s:.1f} s"),
            )

    def _break(self, ticket: "_Ticket", w: int, failure: Failure) -> None:
        """Worker w failed `ticket`'s call: record the failure and restart the worker."""
        ticket.broken[w] = failure
        self._inflight[w] = None
        self._restart(w)

    def _spawn(self, envs: list[int]) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=_worker_main,
            args=(child_conn, len(envs), self._factory_bytes, self._options),
            daemon=True,
            name=f"smoothvla-env-worker-{envs[0]}",
        )
        process.start()
        child_conn.close()  # so that the worker's death shows up as EOF on our end
        return _Worker(process, parent_conn, envs)

    def _await_ready(self, worker: _Worker) -> None:
        if not worker.conn.poll(self.start_timeout_s):
            self._kill(worker)
            raise RuntimeError(f"env worker did not start within {self.start_timeout_s:.0f} s")
        try:
            tag, pid = worker.conn.recv()
        except EOFError as err:
            raise RuntimeError(
                f"env worker died while starting (exit code {worker.process.exitcode}); "
                "is the env factory importable and picklable?"
            ) from err
        assert tag == "ready"
        worker.pid = pid

    def _restart(self, w: int) -> None:
        old = self._workers[w]
        self._kill(old)
        self._lost.update(old.envs)
        self.restarts += 1
        self._workers[w] = self._spawn(old.envs)
        self._await_ready(self._workers[w])

    @staticmethod
    def _kill(worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=10)
        worker.conn.close()

    def close(self) -> None:
        """Stop every worker (politely, then by force)."""
        for worker in self._workers:
            try:
                worker.conn.send(("close", None))
            except (BrokenPipeError, ConnectionResetError, OSError):
                pass
        for worker in self._workers:
            worker.process.join(timeout=5)
            self._kill(worker)
        self._workers = []

    def __enter__(self) -> "ProcessPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_indices(payload: dict[int, Any], num_envs: int) -> None:
    bad = [i for i in payload if not 0 <= i < num_envs]
    if bad:
        raise ValueError(f"env indices {bad} out of range for a pool of {num_envs} envs")


def make_pool(
    num_envs: int,
    *,
    backend: str = "process",
    num_workers: int | None = None,
    env_factory: EnvFactory | None = None,
    env_options: dict[str, Any] | None = None,
    timeout_s: float = 120.0,
) -> EnvPool:
    """A pool by backend name: "process" (workers) or "inprocess"."""
    if backend == "process":
        return ProcessPool(
            num_envs,
            num_workers=num_workers,
            env_factory=env_factory,
            env_options=env_options,
            timeout_s=timeout_s,
        )
    if backend == "inprocess":
        return InProcessPool(num_envs, env_factory=env_factory, env_options=env_options)
    raise ValueError(f"unknown pool backend {backend!r}; expected 'process' or 'inprocess'")
