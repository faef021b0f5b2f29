"""The batched rollout collector: groups of G episodes that share a task and initial state.

Every env of the pool runs one episode at a time. The collector works in rounds:

1. free envs start the next pending episode (`pool.reset`),
2. ONE `policy.act` call for all live envs (they all need a new chunk: episodes advance in
   lockstep, one chunk per round),
3. each env executes the actions its `ActionPlan` derives from the chunks under the execution
   scheme (rollout/execution.py: whole chunks by default; receding horizon, blending,
   temporal ensembling, prefix conditioning); finished episodes become `Trajectory`s, whose
   `actions` are the executed actions and whose `chunks` the sampled ones.

Videos: a request with `video_camera` gets that camera's image of every state back from the
env (`EnvResult.frames`); its trajectories carry them as `extras["frames"]` (T, H, W, 3)
uint8, `extras["frame_success"]` (T,) bool and `extras["camera"]`. Other requests move no
frames.

An episode lost to a crashed, hung or failing env is dropped and counted; the rest of its
group is kept (GRPO needs >= 2 members per group and skips smaller ones).

Determinism: the collector seeds torch's RNG with `seed` at the start of `collect`, and the
order of everything is fixed, so the same policy weights, requests, seed and `num_envs`
give the same trajectories with either pool backend.

Task affinity (rollout/affinity.py): the collector schedules episodes on `num_envs` places
in the policy's batch, as if place i were env i, and maps each place to a free env of its
lane when its episode starts, preferring an env that already holds the episode's task (a
LIBERO env rebuilds, about 10 s, when its task changes). Which episodes run together and
where they sit in the batch stay as without affinity, so the trajectories are bit for bit
the same; only fewer envs are rebuilt (`stats["env_builds"]`). With `any_order` a free env
may also start a later pending episode of its own task first.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from smoothvla.errors import UserError
from smoothvla.policies.base import ActionChunk, Policy
from smoothvla.rollout.affinity import assign_episodes
from smoothvla.rollout.execution import ActionPlan, ExecutionConfig
from smoothvla.rollout.pool import EnvPool, EnvResult, Failure, ResetRequest
from smoothvla.trajectory import Trajectory
from smoothvla.types import ACTION_DIM


@dataclass(frozen=True)
class GroupRequest:
    """G rollouts of one task from one initial state (GRPO(s) of RL4VLA §4.1).

    All members reset with the same env `seed` and `init_id`, so their initial states are
    identical; they differ only through the policy's sampling.
    """

    task_id: str
    init_id: int
    seed: int
    size: int
    video_camera: str | None = None
    """Record every member's frames from this camera (`Trajectory.extras["frames"]`); None:
    no frames are kept or sent back, the default."""

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError(f"group size must be >= 1, got {self.size}")


@dataclass
class CollectResult:
    """Trajectories of one `collect` call and how the time went.

    Attributes:
        trajectories: finished episodes, ordered by (group, member); `group_id` is the
            index of the request in the `groups` list given to `collect`.
        stats: counts (episodes, env steps, chunks, dropped episodes in total and by
            kind: dropped_crash, dropped_timeout, dropped_error; worker_restarts) and seconds
            (policy_s: inside `policy.act`; sim_s: inside envs, summed over envs;
            sim_critical_s: env time on the critical path, the slowest worker of each
            call; transfer_s: pool wall time minus that critical path, i.e. pickling,
            pipes and scheduling; wall_s: the whole call); env_builds: resets that build an
            env, because its env held no task or another one (as the collector knows it: a
            restarted worker's other envs are not counted again).
        errors: messages of the first few failures, for the log.
    """

    trajectories: list[Trajectory]
    stats: dict[str, float]
    errors: list[str] = field(default_factory=list)


@dataclass
class _Episode:
    group_id: int
    member: int
    request: GroupRequest
    obs: dict[str, Any]
    records: list[dict[str, Any]]
    actions: list[np.ndarray] = field(default_factory=list)
    chunk_starts: list[bool] = field(default_factory=list)
    chunk_obs: list[dict[str, Any]] = field(default_factory=list)
    chunks: list[ActionChunk] = field(default_factory=list)
    env_rewards: list[float] = field(default_factory=list)
    plan: ActionPlan | None = None
    frames: list[np.ndarray] = field(default_factory=list)


class Collector:
    """Runs groups of rollouts of `policy` on the envs of `pool`. Of the `Policy` contract it
    calls `chunk_size`, `reset` and `act` only, so a wrapper that offers those three (e.g.
    `eval.sampling.EpisodeSeededPolicy`) is enough."""

    def __init__(
        self,
        policy: Policy,
        pool: EnvPool,
        *,
        sample: bool = True,
        max_steps: int | None = None,
        lanes: int = 1,
        max_errors: int = 5,
        execution: ExecutionConfig | None = None,
        affinity: bool = True,
        any_order: bool = False,
    ) -> None:
        """`sample=False` acts greedily; `max_steps` truncates episodes below the env's
        limit; `lanes` > 1 splits the envs into that many contiguous blocks that take turns,
        so the policy computes one block's chunks while the others simulate.
        `execution` chooses which actions of the chunks run (default: whole chunks).
        `affinity` sends an episode to a free env holding its task (False: env i takes the
        episode of batch place i, for comparison; same trajectories). `any_order` lets free
        envs start pending episodes of their own task out of order: only for a policy whose
        chunks for an episode do not depend on the other episodes of its batch
        (`eval.sampling.EpisodeSeededPolicy`); with batched sampling the order decides each
        episode's noise."""
        if max_steps is not None and max_steps < 1:
            raise ValueError(f"max_steps must be >= 1 or None, got {max_steps}")
        self.execution = execution or ExecutionConfig()
        self.execution.steps_for(policy.chunk_size)  # a scheme that cannot fit fails here
        if self.execution.scheme == "rtc" and not getattr(policy, "lerobot_rtc", False):
            raise UserError("execution scheme 'rtc' is LeRobot's real-time chunking, which only "
                            "the LeRobot SmolVLA adapter runs; this policy has none: use "
                            "'prefix' (prefix conditioning, flow head) instead")
        if not 1 <= lanes <= pool.num_envs:
            raise ValueError(f"lanes must be in [1, num_envs={pool.num_envs}], got {lanes}")
        self.policy = policy
        self.pool = pool
        self.sample = sample
        self.max_steps = max_steps
        self.lanes = [
            list(range(i * pool.num_envs // lanes, (i + 1) * pool.num_envs // lanes))
            for i in range(lanes)
        ]
        self.max_errors = max_errors
        self.affinity = affinity
        self.any_order = any_order
        self._held: dict[int, str | None] = {}
        """Task of the env each pool slot holds, as far as this collector's resets tell
        (kept across `collect` calls: the pool keeps its envs)."""

    def collect(self, groups: list[GroupRequest], seed: int) -> CollectResult:
        """Run every group to completion; returns trajectories and timing statistics."""
        if not groups:
            raise ValueError("collect needs at least one GroupRequest")
        wall_start = time.perf_counter()
        torch.manual_seed(seed)
        self.policy.reset()
        pending = [
            (g, m, request) for g, request in enumerate(groups) for m in range(request.size)
        ]
        live: dict[int, _Episode] = {}  # by batch place
        slot: dict[int, int] = {}  # batch place of a live episode -> the env that runs it
        in_flight: dict[int, tuple[Any, list[int], ActionChunk, np.ndarray]] = {}
        done: list[Trajectory] = []
        stats: Counter = Counter(
            {k: 0 for k in ("dropped", "dropped_crash", "dropped_timeout", "dropped_error",
                            "env_builds")}
        )
        errors: list[str] = []
        restarts_before = getattr(self.pool, "restarts", 0)

        def drop(episode: _Episode | None, failure: Failure) -> None:
            stats[f"dropped_{failure.kind}"] += 1
            stats["dropped"] += 1
            if len(errors) < self.max_errors:
                where = (
                    ""
                    if episode is None
                    else f" ({episode.request.task_id}, group {episode.group_id})"
                )
                errors.append(f"{failure.kind}{where}: {failure.message}")

        def account_pool_call() -> None:
            call = self.pool.last_call
            stats["pool_s"] += call.wall_s
            stats["sim_s"] += call.sim_s
            stats["sim_critical_s"] += call.critical_sim_s
            stats["render_s"] += call.render_s

        while pending or live:
            for lane, lane_envs in enumerate(self.lanes):
                # 1. the chunks this lane sent last turn: record them, finish episodes
                if lane in in_flight:
                    ticket, envs, chunk, actions = in_flight.pop(lane)
                    wait_start = time.perf_counter()
                    replies = self._result(ticket)
                    stats["wait_s"] += time.perf_counter() - wait_start
                    account_pool_call()
                    for i, env in enumerate(envs):
                        episode, reply = live[env], replies[slot[env]]
                        if isinstance(reply, Failure):
                            drop(episode, reply)
                            if reply.kind != "error":  # its worker restarted without envs
                                self._held[slot[env]] = None
                            del slot[env]
                            del live[env]
                            continue
                        executed = len(reply.records)
                        episode.chunk_obs.append(episode.obs)
                        episode.chunks.append(chunk.select(i))
                        episode.actions.extend(actions[i, :executed])
                        episode.chunk_starts.extend([True] + [False] * (executed - 1))
                        episode.records.extend(reply.records)
                        episode.env_rewards.extend(reply.rewards)
                        episode.frames.extend(reply.frames)
                        episode.obs = reply.obs
                        stats["env_steps"] += executed
                        stats["chunks"] += 1
                        if reply.terminated or reply.truncated:
                            done.append(_to_trajectory(episode, reply))
                            del live[env], slot[env]

                # 2. free places of this lane start pending episodes, each on a free env of
                # the lane (rollout/affinity.py)
                places = [e for e in lane_envs if e not in live]
                starting: dict[int, tuple[int, tuple[int, int, GroupRequest]]] = {}
                if pending and places:
                    busy = {slot[e] for e in lane_envs if e in live}
                    pairs = assign_episodes(
                        [req.task_id for _, _, req in pending],
                        [e for e in lane_envs if e not in busy], self._held,
                        reorder=self.any_order, affinity=self.affinity)
                    starting = {place: (env, pending[i]) for place, (i, env) in zip(places, pairs)}
                    taken = {i for i, _ in pairs}
                    pending = [p for i, p in enumerate(pending) if i not in taken]
                if starting:
                    requests = {
                        env: ResetRequest(req.task_id, req.seed, req.init_id, self.max_steps,
                                          req.video_camera)
                        for env, (_, _, req) in starting.values()
                    }
                    stats["env_builds"] += sum(self._held.get(env) != r.task_id
                                               for env, r in requests.items())
                    replies = self.pool.reset(requests)
                    account_pool_call()
                    for place, (env, (g, m, req)) in starting.items():
                        reply = replies[env]
                        if isinstance(reply, Failure):
                            self._held[env] = None
                            drop(None, reply)
                            continue
                        self._held[env] = req.task_id
                        live[place], slot[place] = _Episode(
                            g, m, req, reply.obs, list(reply.records), frames=list(reply.frames)
                        ), env

                # 3. one batched act for the lane's live envs, chunks sent off without waiting
                envs = [e for e in lane_envs if e in live]
                if not envs:
                    continue
                act_start = time.perf_counter()
                with torch.no_grad():
                    chunk = self._act([live[e] for e in envs])
                stats["policy_s"] += time.perf_counter() - act_start
                stats["policy_calls"] += 1
                _check_chunk(chunk, len(envs))
                predicted = chunk.actions.detach().cpu().numpy().astype(np.float64)
                actions = np.stack([self._plan(live[e], predicted[i]) for i, e in enumerate(envs)])
                ticket = self._submit({slot[e]: actions[i] for i, e in enumerate(envs)})
                in_flight[lane] = (ticket, envs, chunk, actions)

        done.sort(key=lambda t: (t.group_id, t.extras["member"]))
        stats["episodes"] = len(done)
        stats["worker_restarts"] = getattr(self.pool, "restarts", 0) - restarts_before
        stats["wall_s"] = time.perf_counter() - wall_start
        stats["transfer_s"] = max(stats["pool_s"] - stats["sim_critical_s"], 0.0)
        return CollectResult(done, {k: float(v) for k, v in stats.items()}, errors)

    def _act(self, episodes: list[_Episode]) -> ActionChunk:
        """One batched `policy.act`; under the prefix scheme with each episode's current plan
        for the next `prefix_steps` steps (NaN rows where an episode has no plan yet); under
        rtc with each episode's leftover, its plan's not-yet-executed k - steps actions, and
        LeRobot's RTC settings (every chunk of the episode, its first too, then comes from the
        same sampler)."""
        obs = [ep.obs for ep in episodes]
        if self.execution.scheme == "rtc":
            k = self.policy.chunk_size
            leftover = self._planned(episodes, k - self.execution.steps_for(k))
            return self.policy.act(obs, sample=self.sample, leftover=leftover,
                                   rtc=self.execution.rtc_settings())
        if self.execution.scheme != "prefix":
            return self.policy.act(obs, sample=self.sample)
        prefix = self._planned(episodes, self.execution.prefix_steps)
        if np.isnan(prefix).all():  # no episode has a plan yet
            return self.policy.act(obs, sample=self.sample)
        return self.policy.act(obs, sample=self.sample, prefix=prefix)

    @staticmethod
    def _planned(episodes: list[_Episode], n: int) -> np.ndarray:
        """(B, n, A): each episode's current plan for its next n steps, NaN rows where an
        episode has none."""
        plans = [None if ep.plan is None else ep.plan.prefix(len(ep.actions), n) for ep in episodes]
        known = [p for p in plans if p is not None]
        out = np.full((len(episodes), n, known[0].shape[1] if known else ACTION_DIM), np.nan)
        for i, plan in enumerate(plans):
            if plan is not None:
                out[i] = plan
        return out

    def _plan(self, episode: _Episode, chunk: np.ndarray) -> np.ndarray:
        """Record a new chunk (k, A) in the episode's plan; the actions to run now."""
        if episode.plan is None:
            episode.plan = ActionPlan(self.execution, chunk.shape[0])
        t = len(episode.actions)
        episode.plan.add(t, chunk)
        return episode.plan.actions(t, episode.plan.steps)

    def _submit(self, actions: dict[int, np.ndarray]) -> Any:
        """Send chunks off; pools without `submit` (e.g. RayPool) run them right away."""
        if hasattr(self.pool, "submit"):
            return self.pool.submit("run", actions)
        return self.pool.run(actions)

    def _result(self, ticket: Any) -> dict[int, EnvResult | Failure]:
        if hasattr(self.pool, "submit"):
            return self.pool.result(ticket)
        return ticket


def _check_chunk(chunk: ActionChunk, batch: int) -> None:
    if chunk.actions.ndim != 3 or chunk.actions.shape[0] != batch:
        raise ValueError(
            f"policy.act returned actions of shape {tuple(chunk.actions.shape)}, "
            f"expected ({batch}, k, 7)"
        )
    if chunk.log_prob.shape != (batch,):
        raise ValueError(
            f"policy.act returned log_prob of shape {tuple(chunk.log_prob.shape)}, "
            f"expected ({batch},)"
        )


def _to_trajectory(episode: _Episode, last: EnvResult) -> Trajectory:
    rec = episode.records
    chunks = ActionChunk.cat(episode.chunks)
    req = episode.request
    video = {}
    if episode.frames:  # one frame per state, and the success predicate at each
        video = {"frames": np.stack(episode.frames), "camera": req.video_camera,
                 "frame_success": np.array([bool(r["success"]) for r in rec])}
    return Trajectory(
        ee_pos=np.array([r["ee_pos"] for r in rec], dtype=np.float64),
        actions=np.array(episode.actions, dtype=np.float64),
        control_dt=float(last.control_dt),
        success=bool(rec[-1]["success"]),
        joint_pos=np.array([r["joint_pos"] for r in rec], dtype=np.float64),
        ee_quat=np.array([r["ee_quat"] for r in rec], dtype=np.float64),
        gripper=np.array([float(np.sum(r["gripper"])) for r in rec]),
        is_grasping=np.array([bool(r["is_grasping"]) for r in rec]),
        chunk_starts=np.array(episode.chunk_starts, dtype=bool),
        log_probs=chunks.log_prob.detach().cpu().numpy().astype(np.float64),
        task_id=req.task_id,
        init_id=req.init_id,
        seed=req.seed,
        extras={
            "member": episode.member,
            "instruction": episode.chunk_obs[0].get("instruction", ""),
            "env_return": float(np.sum(episode.env_rewards)),
            "terminated": last.terminated,
            "truncated": last.truncated,
            **video,
        },
        group_id=episode.group_id,
        chunk_obs=episode.chunk_obs,
        chunks=chunks,
    )
