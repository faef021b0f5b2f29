"""Environments on Ray actors: the `EnvPool` protocol across machines (DESIGN.md, "Scale").

`RayPool` is `ProcessPool` with Ray actors in place of local processes: actor w hosts
envs [w * per_worker, (w + 1) * per_worker), runs the same `_Slot` code as a local worker
(one round trip per action chunk, not per control step; the SmolVLA GRPO report §4.3), and the policy
stays batched in the caller, so the collector, the trajectories and their determinism are
those of the local pools (tests/scale/test_ray_pool.py compares them with `ProcessPool`).

Why inference stays in the caller (the learner): one batched `policy.act` over every env
of the pool per round is what a GPU is good at, the weights never leave the learner (no
weight broadcast to inference actors after each update), and what crosses the network per
chunk is an observation one way and k x 7 floats the other. Inference actors would pay
off only when observations are much larger than the model, which is not the case for the
compact VLA (docs/scaling.md has the measured split of policy vs simulation time).

`submit`/`result` send a call and collect it later, so the collector's lanes can act on one
block of envs while another simulates; `reset`/`run` are submit + result.

Faults: an actor that dies (`ray.kill`, a SIGKILL, its node lost) fails the pending call
with `RayActorError`; one that does not answer within `timeout_s` is killed. Either way it
is replaced by a fresh actor and the episodes it hosted come back as `Failure`s ("crash" or
"timeout"), which the collector drops and counts; collection goes on.

Replies travel as pickled bytes, as through `ProcessPool`'s pipes: Ray hands out numpy
arrays of large objects zero-copy and read-only, and a policy that writes into an
observation array (or `torch.from_numpy` on it) must not see a difference between backends.
"""

from __future__ import annotations

import os
import pickle
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from smoothvla.rollout.pool import (
    CallStats,
    EnvFactory,
    EnvPool,
    EnvResult,
    Failure,
    InProcessPool,
    ProcessPool,
    ResetRequest,
    _check_indices,
    _render_total,
    _resolve_factory,
    _serve,
    _Slot,
)

BACKENDS = ("local", "inprocess", "process", "ray")


def _require_ray() -> Any:
    try:
        import ray
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "the ray backend needs Ray: pip install 'smoothvla[ray]' (ray>=2.30)"
        ) from err
    return ray


class EnvActor:
    """A Ray actor body hosting `num_slots` envs; the same code as a `ProcessPool` worker."""

    def __init__(self, num_slots: int, factory: EnvFactory | None, options: dict[str, Any]) -> None:
        # before anything imports mujoco or torch in this worker process
        os.environ.setdefault("MUJOCO_GL", "egl")
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        self.slots = [_Slot(_resolve_factory(factory), options) for _ in range(num_slots)]

    def pid(self) -> int:
        return os.getpid()

    def call(self, op: str, payload: dict[int, Any]) -> bytes:
        return pickle.dumps(_serve(self.slots, op, payload), protocol=pickle.HIGHEST_PROTOCOL)

    def close(self) -> None:
        for slot in self.slots:
            slot.discard()


@dataclass
class _Ticket:
    """A submitted call: when, which actor got which envs, and the pending object refs."""

    start: float
    by_worker: dict[int, dict[int, Any]] = field(default_factory=dict)
    actors: dict[int, Any] = field(default_factory=dict)
    refs: dict[Any, int] = field(default_factory=dict)
    early: dict[int, Failure] = field(default_factory=dict)


class RayPool:
    """Envs on `num_workers` Ray actors; dead or hung actors are replaced.

    Ray is started here when it is not running yet: locally with `num_cpus` CPUs, or
    attached to a cluster at `address` ("auto", "ray://head:10001", "10.0.0.1:6379"). The
    pool then owns that Ray session and shuts it down in `close`; a session started by the
    caller is left running.

    Args:
        num_envs: envs in the pool (the collector's batch).
        num_workers: actors; env i lives on actor i // ceil(num_envs / num_workers).
        env_factory: `factory(task_id, **env_options) -> TaskEnv`; must be importable on
            every node (a module-level function); `smoothvla.envs.make` by default.
        timeout_s: bound on one call (every env of an actor, in sequence on that actor).
        start_timeout_s: bound on an actor's start (scheduling, imports).
        cpus_per_worker: Ray CPU resource each actor reserves (fractions allowed); with
            1.0 the cluster places at most one actor per CPU.
        address: Ray cluster to attach to; None starts a local one.
        num_cpus: CPUs of a local Ray started here (None: all of the machine's).
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
        cpus_per_worker: float = 1.0,
        address: str | None = None,
        num_cpus: int | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if num_workers is not None and num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if timeout_s <= 0 or start_timeout_s <= 0:
            raise ValueError("timeout_s and start_timeout_s must be positive")
        if cpus_per_worker < 0:
            raise ValueError(f"cpus_per_worker must be >= 0, got {cpus_per_worker}")
        ray = _require_ray()
        self._ray = ray
        self.owns_ray = not ray.is_initialized()
        if self.owns_ray:
            ray.init(
                address=address,
                num_cpus=num_cpus if address is None else None,
                include_dashboard=False,
                log_to_driver=False,
            )
        cluster_cpus = float(ray.cluster_resources().get("CPU", 0.0))
        num_workers = min(num_envs, num_workers or max(int(cluster_cpus), 1))
        if num_workers * cpus_per_worker > cluster_cpus + 1e-9:
            if self.owns_ray:
                ray.shutdown()
            raise ValueError(
                f"{num_workers} actors x {cpus_per_worker} CPUs exceed the cluster's {cluster_cpus:g} "
                "CPUs: lower num_workers or cpus_per_worker (fractions are allowed)"
            )
        self.num_envs = num_envs
        self.timeout_s = timeout_s
        self.start_timeout_s = start_timeout_s
        self.last_call = CallStats()
        self.failures: Counter = Counter()
        self.restarts = 0
        self._options = dict(env_options or {})
        self._factory = env_factory
        self._actor_cls = ray.remote(EnvActor).options(num_cpus=cpus_per_worker, max_restarts=0)
        per_worker = -(-num_envs // num_workers)
        self._groups = [list(range(s, min(s + per_worker, num_envs))) for s in range(0, num_envs, per_worker)]
        self._owner = {env: w for w, envs in enumerate(self._groups) for env in envs}
        self._lost: set[int] = set()
        self._tickets: dict[int, _Ticket] = {}
        self._next_ticket = 0
        self._actors: list[Any] = [self._spawn(envs) for envs in self._groups]
        try:
            self._pids: list[int] = [self._await_ready(a) for a in self._actors]
        except BaseException:
            self.close()  # no actor (or Ray session of ours) outlives a failed start
            raise

    @property
    def actors(self) -> list[Any]:
        """Actor handles, one per worker (a replaced actor gets a new handle)."""
        return list(self._actors)

    @property
    def worker_pids(self) -> list[int]:
        """Process id of each actor (on its node; changes when an actor is replaced)."""
        return list(self._pids)

    def reset(self, requests: dict[int, ResetRequest]) -> dict[int, EnvResult | Failure]:
        return self._call("reset", requests)

    def run(self, actions: dict[int, np.ndarray]) -> dict[int, EnvResult | Failure]:
        return self._call("run", actions)

    def _call(self, op: str, payload: dict[int, Any]) -> dict[int, EnvResult | Failure]:
        return self.result(self.submit(op, payload))

    def submit(self, op: str, payload: dict[int, Any]) -> int:
        """Send a call ("reset" or "run") to the actors and return at once with a ticket for
        `result` (the collector's lanes overlap acting with simulating this way). Calls to
        one actor run in submission order; `timeout_s` counts from the submission."""
        _check_indices(payload, self.num_envs)
        ticket = _Ticket(time.perf_counter())
        for env, arg in payload.items():
            if op == "reset":
                self._lost.discard(env)
            elif env in self._lost:
                ticket.early[env] = Failure("crash", "its actor was replaced during an earlier call")
                continue
            w = self._owner[env]
            ticket.by_worker.setdefault(w, {})[self._groups[w].index(env)] = arg
        for w, local in ticket.by_worker.items():
            ticket.actors[w] = self._actors[w]
            ticket.refs[self._actors[w].call.remote(op, local)] = w
        self._next_ticket += 1
        self._tickets[self._next_ticket] = ticket
        return self._next_ticket

    def result(self, ticket_id: int) -> dict[int, EnvResult | Failure]:
        """Wait for the replies of a submitted call; actors that died or did not answer
        within `timeout_s` are replaced and their envs' episodes fail."""
        ray = self._ray
        ticket = self._tickets.pop(ticket_id)
        refs = ticket.refs
        results: dict[int, EnvResult | Failure] = dict(ticket.early)
        replies: dict[int, dict[int, EnvResult | Failure]] = {}
        broken: dict[int, Failure] = {}
        pending = list(refs)
        deadline = ticket.start + self.timeout_s
        while pending:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            # a dead actor's call is "ready" (with an error) as soon as Ray notices the death
            ready, pending = ray.wait(pending, num_returns=len(pending), timeout=remaining)
            for ref in ready:
                w = refs[ref]
                try:
                    replies[w] = pickle.loads(ray.get(ref))
                except ray.exceptions.RayActorError as err:
                    broken[w] = Failure("crash", f"actor {w} died: {type(err).__name__}: {_first_line(err)}")
                except ray.exceptions.RayError as err:
                    broken[w] = Failure("error", f"actor {w} call failed: {type(err).__name__}: {_first_line(err)}")
        for ref in pending:
            w = refs[ref]
            broken[w] = Failure("timeout", f"actor {w} did not answer within {self.timeout_s:.1f} s")

        critical = 0.0
        for w, local_payload in ticket.by_worker.items():
            if w in broken:
                for local in local_payload:
                    results[self._groups[w][local]] = broken[w]
                if self._actors[w] is ticket.actors[w]:  # not replaced already by another call
                    self._replace(w)
                continue
            critical = max(critical, sum(r.sim_s for r in replies[w].values() if isinstance(r, EnvResult)))
            for local, reply in replies[w].items():
                results[self._groups[w][local]] = reply
        sim = sum(r.sim_s for r in results.values() if isinstance(r, EnvResult))
        self.last_call = CallStats(time.perf_counter() - ticket.start, sim, critical,
                                   _render_total(results))
        self.failures.update(r.kind for r in results.values() if isinstance(r, Failure))
        return results

    def _spawn(self, envs: list[int]) -> Any:
        return self._actor_cls.remote(len(envs), self._factory, self._options)

    def _await_ready(self, actor: Any) -> int:
        ray = self._ray
        ref = actor.pid.remote()
        ready, _ = ray.wait([ref], timeout=self.start_timeout_s)
        if not ready:
            ray.kill(actor, no_restart=True)
            raise RuntimeError(
                f"env actor did not start within {self.start_timeout_s:.0f} s "
                "(does the cluster have a free CPU for it? see cpus_per_worker)"
            )
        try:
            return int(ray.get(ref))
        except ray.exceptions.RayError as err:
            raise RuntimeError(
                f"env actor failed to start: {_first_line(err)}; is the env factory importable "
                "on every node (a module-level function of an installed package)?"
            ) from err

    def _replace(self, w: int) -> None:
        self._ray.kill(self._actors[w], no_restart=True)
        self._lost.update(self._groups[w])
        self.restarts += 1
        self._actors[w] = self._spawn(self._groups[w])
        self._pids[w] = self._await_ready(self._actors[w])

    def close(self) -> None:
        """Kill every actor; shut Ray down if this pool started it."""
        ray = self._ray
        for actor in self._actors:
            try:
                ray.kill(actor, no_restart=True)
            except (ValueError, ray.exceptions.RayError):  # an actor already gone
                pass
        self._actors = []
        if self.owns_ray and ray.is_initialized():
            ray.shutdown()

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def make_pool(
    backend: str,
    num_envs: int,
    *,
    num_workers: int | None = None,
    env_factory: EnvFactory | None = None,
    env_options: dict[str, Any] | None = None,
    timeout_s: float = 120.0,
    ray_address: str | None = None,
    ray_num_cpus: int | None = None,
) -> EnvPool:
    """A pool by backend: "local" (= "inprocess", envs in this process), "process" (local
    worker processes) or "ray" (Ray actors, on a local Ray or the cluster at `ray_address`)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown pool backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if ray_address is not None and backend != "ray":
        raise ValueError(f"ray_address is only used by the ray backend, not {backend!r}")
    if backend in ("local", "inprocess"):
        return InProcessPool(num_envs, env_factory=env_factory, env_options=env_options)
    if backend == "process":
        return ProcessPool(
            num_envs, num_workers=num_workers, env_factory=env_factory,
            env_options=env_options, timeout_s=timeout_s,
        )
    return RayPool(
        num_envs, num_workers=num_workers, env_factory=env_factory, env_options=env_options,
        timeout_s=timeout_s, address=ray_address, num_cpus=ray_num_cpus,
    )
