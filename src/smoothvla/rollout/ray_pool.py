"""Environments on Ray actors: the `EnvPool` protocol across machines (DESIGN.md, "Scale").

`RayPool` is the pool core `WorkerPool` with Ray actors in place of local processes
(`RayTransport`): actor w hosts envs [w * per_worker, (w + 1) * per_worker), runs the same
`_Slot` code as a local worker
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
from typing import Any, Unpack

from smoothvla.rollout.pool import (
    EnvFactory,
    EnvResult,
    Failure,
    PoolOptions,
    _resolve_factory,
    _serve,
    _Slot,
    make_pool,  # noqa: F401  (re-exported: it builds RayPool for backend "ray")
)
from smoothvla.rollout.pool import pool_options
from smoothvla.rollout.workers import WorkerPool, check_pool_sizes


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


class RayTransport:
    """Workers as Ray actors; an actor queues the calls it is sent and runs them in order.
    Owns the Ray session when it started it (`owns_ray`)."""

    noun = "actor"
    renewed = "replaced"
    queues_calls = True

    def __init__(self, ray: Any, owns_ray: bool, env_factory: EnvFactory | None,
                 env_options: dict[str, Any], cpus_per_worker: float) -> None:
        self._ray = ray
        self.owns_ray = owns_ray
        self._factory = env_factory
        self._options = dict(env_options)
        self._actor_cls = ray.remote(EnvActor).options(num_cpus=cpus_per_worker, max_restarts=0)

    def spawn(self, envs: list[int]) -> Any:
        return self._actor_cls.remote(len(envs), self._factory, self._options)

    def ready(self, actor: Any, timeout_s: float) -> int:
        ray = self._ray
        ref = actor.pid.remote()
        ready, _ = ray.wait([ref], timeout=timeout_s)
        if not ready:
            ray.kill(actor, no_restart=True)
            raise RuntimeError(
                f"env actor did not start within {timeout_s:.0f} s "
                "(does the cluster have a free CPU for it? see cpus_per_worker)"
            )
        try:
            return int(ray.get(ref))
        except ray.exceptions.RayError as err:
            raise RuntimeError(
                f"env actor failed to start: {_first_line(err)}; is the env factory importable "
                "on every node (a module-level function of an installed package)?"
            ) from err

    def send(self, actor: Any, w: int, op: str, payload: dict[int, Any]) -> Any:
        return actor.call.remote(op, payload)

    def wait(self, calls: dict[int, tuple[Any, Any]], timeout_s: float) -> list[int]:
        # a dead actor's call is "ready" (with an error) as soon as Ray notices the death
        refs = {ref: w for w, (_, ref) in calls.items()}
        ready, _ = self._ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        return [refs[ref] for ref in ready]

    def receive(self, actor: Any, w: int, ref: Any) -> dict[int, EnvResult | Failure] | Failure:
        ray = self._ray
        try:
            return pickle.loads(ray.get(ref))
        except ray.exceptions.RayActorError as err:
            return Failure("crash", f"actor {w} died: {type(err).__name__}: {_first_line(err)}")
        except ray.exceptions.RayError as err:
            return Failure("error", f"actor {w} call failed: {type(err).__name__}: {_first_line(err)}")

    def kill(self, actor: Any) -> None:
        self._ray.kill(actor, no_restart=True)

    def close(self, actors: list[Any]) -> None:
        """Kill every actor; shut Ray down if this transport started it."""
        ray = self._ray
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except (ValueError, ray.exceptions.RayError):  # an actor already gone
                pass
        if self.owns_ray and ray.is_initialized():
            ray.shutdown()


class RayPool(WorkerPool):
    """Envs on `num_workers` Ray actors; dead or hung actors are replaced (see `WorkerPool`).

    Ray is started here when it is not running yet: locally with `num_cpus` CPUs, or
    attached to a cluster at `address` ("auto", "ray://head:10001", "10.0.0.1:6379"). The
    pool then owns that Ray session and shuts it down in `close`; a session started by the
    caller is left running.

    Args:
        num_envs: envs in the pool (the collector's batch).
        options: the pool options (`pool.PoolOptions`: num_workers, env_factory, env_options,
            timeout_s, start_timeout_s); the env factory must be importable on every node
            (a module-level function of an installed package).
        cpus_per_worker: Ray CPU resource each actor reserves (fractions allowed); with
            1.0 the cluster places at most one actor per CPU.
        address: Ray cluster to attach to; None starts a local one.
        num_cpus: CPUs of a local Ray started here (None: all of the machine's).
    """

    def __init__(self, num_envs: int, *, cpus_per_worker: float = 1.0, address: str | None = None,
                 num_cpus: int | None = None, **options: Unpack[PoolOptions]) -> None:
        o = pool_options(options)
        num_workers, timeout_s, start_timeout_s = o["num_workers"], o["timeout_s"], o["start_timeout_s"]
        check_pool_sizes(num_envs, num_workers, timeout_s, start_timeout_s)
        if cpus_per_worker < 0:
            raise ValueError(f"cpus_per_worker must be >= 0, got {cpus_per_worker}")
        ray = _require_ray()
        owns_ray = not ray.is_initialized()
        if owns_ray:
            ray.init(
                address=address,
                num_cpus=num_cpus if address is None else None,
                include_dashboard=False,
                log_to_driver=False,
            )
        cluster_cpus = float(ray.cluster_resources().get("CPU", 0.0))
        num_workers = min(num_envs, num_workers or max(int(cluster_cpus), 1))
        if num_workers * cpus_per_worker > cluster_cpus + 1e-9:
            if owns_ray:
                ray.shutdown()
            raise ValueError(
                f"{num_workers} actors x {cpus_per_worker} CPUs exceed the cluster's {cluster_cpus:g} "
                "CPUs: lower num_workers or cpus_per_worker (fractions are allowed)"
            )
        transport = RayTransport(ray, owns_ray, o["env_factory"], o["env_options"] or {},
                                 cpus_per_worker)
        super().__init__(transport, num_envs, num_workers, timeout_s=timeout_s,
                         start_timeout_s=start_timeout_s)

    @property
    def owns_ray(self) -> bool:
        """Whether this pool started the Ray session (and shuts it down in `close`)."""
        return self.transport.owns_ray

    @property
    def actors(self) -> list[Any]:
        """Actor handles, one per worker (a replaced actor gets a new handle)."""
        return list(self._workers)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
