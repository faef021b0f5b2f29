"""Plumbing shared by the RL algorithms (no math here: that is in `losses.py`).

- `ChunkBatch`: the chunks of a list of trajectories flattened into one batch, what the
  ratio of every algorithm is computed on.
- `Reference`: the frozen reference (SFT) policy, kept as a copy of the trainable
  parameters only; reference log-probs are computed by swapping those values into the
  live module for one no-grad forward. Frozen parameters (vision trunk, LoRA base weights)
  never change, so this is exactly the SFT policy at the cost of one copy of the
  trainable weights, which weight drift needs anyway.
- rollout statistics (success rate, mean jerk, reward terms, degenerate groups).
- the jerk each chunk caused, and which smoothness-credit options go together.
- `LEARNING_RANGES`: the ranges every algorithm's config checks its optimizer fields in.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Iterator

import numpy as np
import torch
from torch import nn

from smoothvla.algorithms.losses import weight_drift
from smoothvla.errors import UserError
from smoothvla.policies.base import ActionChunk, Policy
from smoothvla.trajectory import Trajectory

# Shared by GRPO, PPO and DPO. A learning rate above 1 is a typo (AdamW steps are ~lr in
# size); eps_low < 1 because a ratio cannot go below 0; max_grad_norm <= 0 means no clipping.
LEARNING_RANGES = dict(lr="(0, 1]", weight_decay=">= 0")


def trainable_parameters(policy: Policy) -> list[nn.Parameter]:
    """The parameters an algorithm may change; clear errors for a policy that does not
    implement `Policy` or has no trainable parameters."""
    if not isinstance(policy, Policy):
        raise ValueError(
            f"RL algorithms need a smoothvla.policies.Policy (an nn.Module), got "
            f"{type(policy).__name__} (docs/policy-contract.md)"
        )
    params = [p for p in policy.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the policy has no trainable parameters (all requires_grad=False)")
    return params


def require_chunks(trajectories: list[Trajectory]) -> None:
    """Every trajectory must carry what log-prob recomputation needs, and a reward."""
    if not trajectories:
        raise ValueError("update needs at least one trajectory")
    for i, t in enumerate(trajectories):
        if t.chunks is None or t.chunk_obs is None:
            raise ValueError(
                f"trajectory {i} has no recorded chunks; collect it with rollout.Collector"
            )
        if t.reward is None or not np.isfinite(t.reward):
            raise ValueError(
                f"trajectory {i} has no finite reward; score it before update (trainer does)"
            )


@dataclass
class ChunkBatch:
    """N chunks from a list of trajectories.

    Attributes:
        obs: N observations the chunks were sampled from.
        chunk: `ActionChunk` of N chunks (actions (N, k, A), log_prob (N,) at sampling).
        traj_index: (N,) index of each chunk's trajectory in the list given.
        chunk_index: (N,) position of the chunk within its trajectory.
        is_last: (N,) bool, last chunk of its trajectory.
    """

    obs: list[dict[str, Any]]
    chunk: ActionChunk
    traj_index: torch.Tensor
    chunk_index: torch.Tensor
    is_last: torch.Tensor

    @staticmethod
    def from_trajectories(trajectories: list[Trajectory]) -> "ChunkBatch":
        obs: list[dict[str, Any]] = []
        traj_index, chunk_index, is_last = [], [], []
        for i, t in enumerate(trajectories):
            c = len(t.chunks)
            obs.extend(t.chunk_obs)
            traj_index += [i] * c
            chunk_index += list(range(c))
            is_last += [False] * (c - 1) + [True]
        return ChunkBatch(
            obs,
            ActionChunk.cat([t.chunks for t in trajectories]),
            torch.tensor(traj_index),
            torch.tensor(chunk_index),
            torch.tensor(is_last),
        )

    def __len__(self) -> int:
        return len(self.obs)

    @property
    def logp_old(self) -> torch.Tensor:
        return self.chunk.log_prob.detach().float()

    def select(self, index: torch.Tensor) -> tuple[list[dict[str, Any]], ActionChunk]:
        """Observations and chunks of a minibatch (index: (M,) long)."""
        return [self.obs[i] for i in index.tolist()], self.chunk.select(index)


def minibatches(n: int, size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """A random partition of range(n) into index tensors of at most `size` elements."""
    order = torch.randperm(n, generator=generator)
    return list(order.split(size))


def batched_log_prob(policy: Policy, batch: ChunkBatch, size: int, terms: bool = False) -> torch.Tensor:
    """(N,) log-probs of all chunks of a batch without gradient, `size` chunks at a time;
    with `terms`, their (N, T) factors (`chunk_log_prob_terms`)."""
    fn = chunk_log_prob_terms if terms else chunk_log_prob
    out = []
    with torch.no_grad():
        for index in torch.arange(len(batch)).split(size):
            obs, chunk = batch.select(index)
            out.append(fn(policy, obs, chunk).detach())
    return torch.cat(out)


def chunk_log_prob(policy: Policy, obs: list[dict[str, Any]], chunk: ActionChunk) -> torch.Tensor:
    """(B,) float32 `policy.log_prob` on the CPU, with its gradient. The policy may run on a
    GPU; its per-chunk outputs (a few hundred floats) come to the CPU, where the losses meet
    the advantages and old log-probs, and the backward pass goes back to the device."""
    return policy.log_prob(obs, chunk).float().cpu()


def chunk_log_prob_terms(policy: Policy, obs: list[dict[str, Any]], chunk: ActionChunk) -> torch.Tensor:
    """(B, T) float32 factors of `chunk_log_prob` on the CPU, with their gradient (one per
    action token for the token head; see `Policy.log_prob_terms`, which raises a UserError
    for a policy that does not factor its log-probability)."""
    return policy.log_prob_terms(obs, chunk).float().cpu()


def policy_value(policy: Policy, obs: list[dict[str, Any]], chunk: ActionChunk) -> torch.Tensor:
    """(B,) float32 `policy.value` on the CPU (as `chunk_log_prob`), given the chunks' extras
    (cached features a policy may use instead of re-encoding the observations)."""
    return policy.value(obs, extras=chunk.extras).float().cpu()


class Reference:
    """The frozen reference policy as a snapshot of the trainable parameters."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params = params
        self.values = [p.detach().clone() for p in params]

    @contextmanager
    def active(self) -> Iterator[None]:
        """Within the block, the policy computes with the reference weights (no grad)."""
        live = [p.data for p in self.params]
        try:
            with torch.no_grad():
                for p, v in zip(self.params, self.values):
                    p.data = v
                yield
        finally:
            for p, v in zip(self.params, live):
                p.data = v

    def log_prob(self, policy: Policy, batch: ChunkBatch, size: int, terms: bool = False) -> torch.Tensor:
        """(N,) reference log-probs of a batch's chunks ((N, T) factors with `terms`)."""
        with self.active():
            return batched_log_prob(policy, batch, size, terms)

    def drift(self) -> float:
        """`losses.weight_drift` of the live trainable parameters from the reference."""
        return weight_drift(self.params, self.values)

    def state_dict(self) -> list[torch.Tensor]:
        return [v.clone() for v in self.values]

    def load_state_dict(self, values: list[torch.Tensor]) -> None:
        if len(values) != len(self.values):
            raise ValueError(f"reference has {len(self.values)} tensors, checkpoint {len(values)}")
        self.values = [v.to(p.device, p.dtype) for v, p in zip(values, self.params)]


def group_indices(trajectories: list[Trajectory]) -> dict[Any, list[int]]:
    """Trajectory indices per group: by `group_id` when set, else by (task, init, seed)."""
    groups: dict[Any, list[int]] = {}
    for i, t in enumerate(trajectories):
        key = t.group_id if t.group_id >= 0 else (t.task_id, t.init_id, t.seed)
        groups.setdefault(key, []).append(i)
    return groups


def rollout_stats(trajectories: list[Trajectory]) -> dict[str, float]:
    """Success rate, reward and its terms, mean jerk, episode length, degenerate groups; first
    `require_chunks` (what every update needs of its trajectories)."""
    from smoothvla.metrics import mean_jerk

    require_chunks(trajectories)

    rewards = np.array([t.reward for t in trajectories], dtype=np.float64)
    stats = {
        "success_rate": float(np.mean([t.success for t in trajectories])),
        "reward_mean": float(rewards.mean()),
        "reward_std": float(rewards.std()),
        "episode_steps": float(np.mean([t.num_steps for t in trajectories])),
        "mean_jerk": float(
            np.mean(
                [mean_jerk(t.ee_pos, t.control_dt) for t in trajectories if len(t.ee_pos) >= 4]
                or [np.nan]
            )
        ),
        "trajectories": float(len(trajectories)),
    }
    successes = [t for t in trajectories if t.success and len(t.ee_pos) >= 4]
    if successes:
        stats["mean_jerk_success"] = float(
            np.mean([mean_jerk(t.ee_pos, t.control_dt) for t in successes])
        )
    for name in sorted({k for t in trajectories for k in t.reward_terms}):
        stats[f"reward/{name}"] = float(
            np.mean([t.reward_terms.get(name, np.nan) for t in trajectories])
        )
    groups = list(group_indices(trajectories).values())
    all_fail = [not any(trajectories[i].success for i in g) for g in groups]
    all_success = [all(trajectories[i].success for i in g) for g in groups]
    no_spread = [np.ptp(rewards[g]) <= 1e-8 for g in groups]
    stats.update(
        groups=float(len(groups)),
        frac_all_fail=float(np.mean(all_fail)),
        frac_all_success=float(np.mean(all_success)),
        frac_no_reward_spread=float(np.mean(no_spread)),
    )
    return stats


def gradient_step(optimizer: torch.optim.Optimizer, params: list[nn.Parameter],
                  loss: torch.Tensor, max_grad_norm: float) -> float:
    """Backpropagate `loss` from zeroed gradients, clip them to `max_grad_norm` (<= 0: no
    clipping), step; returns the pre-clip gradient norm."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    limit = max_grad_norm if max_grad_norm > 0 else float("inf")
    norm = torch.nn.utils.clip_grad_norm_(params, limit)
    optimizer.step()
    return float(norm)


def record(log: dict[str, list[float]], **values: Any) -> None:
    """Append each named value (a number or a one-element tensor) to its list in `log`."""
    for name, value in values.items():
        log[name].append(float(value.detach() if isinstance(value, torch.Tensor) else value))


def mean_of(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


class Algorithm:
    """What GRPO, PPO and DPO share, and all the trainer calls: `update(trajectories) ->
    stats`, and `state_dict` / `load_state_dict`, which save and restore everything a resumed
    run needs (policy with any value head, optimizer, reference, minibatch generator, update
    count, config) under the algorithm's `name`. A subclass builds `params`, `optimizer`,
    `reference` and `generator` in its `__init__` and implements `update`."""

    name: ClassVar[str]
    policy: Policy
    cfg: Any
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    reference: Reference
    generator: torch.Generator
    updates: int = 0

    def update(self, trajectories: list[Trajectory]) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {
            "algorithm": self.name,
            "config": asdict(self.cfg),
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "reference": self.reference.state_dict(),
            "generator": self.generator.get_state(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`; a checkpoint of another algorithm is a clear error."""
        if state.get("algorithm") != self.name:
            raise UserError(f"checkpoint is for {state.get('algorithm')!r}, not {self.name}")
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.reference.load_state_dict(state["reference"])
        self.generator.set_state(state["generator"])
        self.updates = int(state["updates"])


class WholePolicyAlgorithm(Algorithm):
    """An algorithm that trains the whole policy at one learning rate (GRPO, DPO): AdamW over
    the trainable parameters (`cfg.lr`, `cfg.weight_decay`), the frozen reference a copy of
    them, the minibatch generator seeded with `cfg.seed`."""

    def __init__(self, policy: Policy, cfg: Any) -> None:
        self.policy = policy
        self.cfg = cfg
        self.params = trainable_parameters(policy)
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.reference = Reference(self.params)
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.updates = 0


# -- smoothness credit ---------------------------------------------------------------------
SMOOTH_REWARD = "smooth"


def chunk_jerk_of(traj: Trajectory) -> tuple[np.ndarray, np.ndarray]:
    """(jerk_sum (C,), windows (C,)) of a trajectory's chunks (`metrics.attribution.chunk_jerk`
    on its ee_pos at its control_dt); zeros for a path too short to have a jerk window."""
    from smoothvla.metrics.attribution import chunk_jerk

    if traj.chunk_starts is None:
        raise ValueError("smoothness credit per chunk needs trajectories with chunk_starts "
                         "(collect them with rollout.Collector)")
    if len(traj.ee_pos) < 4:
        return np.zeros(traj.num_chunks), np.zeros(traj.num_chunks, dtype=np.int64)
    return chunk_jerk(traj.ee_pos, traj.control_dt, traj.chunk_starts)


def chunk_mean_jerk(traj: Trajectory) -> np.ndarray:
    """(C,) mean jerk of the windows each chunk owns; NaN for a chunk that owns none."""
    sums, windows = chunk_jerk_of(traj)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(windows > 0, sums / np.maximum(windows, 1), np.nan)


def trajectory_mean_jerk(traj: Trajectory) -> float:
    """The path's mean jerk (`metrics.mean_jerk`); NaN for a path of fewer than 4 samples."""
    from smoothvla.metrics import mean_jerk

    return mean_jerk(traj.ee_pos, traj.control_dt) if len(traj.ee_pos) >= 4 else float("nan")


def reward_has_jerk(traj: Trajectory) -> bool:
    """Whether the trajectory was scored by the smooth reward (eq. 5), whose terms carry
    the jerk penalty."""
    return "penalty" in traj.reward_terms and "mean_jerk" in traj.reward_terms


def check_smoothness_credit(
    algorithm: str, reward_name: str, advantage: str, dense_jerk_weight: float
) -> None:
    """Refuse combinations of the smoothness-credit options that make no sense (UserError).

    `grpo.advantage` decoupled/chunk and `ppo.dense_jerk_weight` > 0 replace eq. 5: they
    take smoothness from the path and the task term from the reward, so with the smooth
    reward jerk would count twice (and lam would act through the task term). Each option
    belongs to its own algorithm. Binary, staged and random rewards combine with both.
    """
    if advantage != "standard":
        if algorithm != "grpo":
            raise UserError(f"--grpo.advantage {advantage} applies to --algorithm grpo only, "
                            f"not {algorithm}")
        if reward_name == SMOOTH_REWARD:
            raise UserError(f"--grpo.advantage {advantage} replaces the smooth reward's jerk "
                            "term (it would count jerk twice): use --reward.name binary")
    if dense_jerk_weight > 0:
        if algorithm != "ppo":
            raise UserError("--ppo.dense-jerk-weight applies to --algorithm ppo only, "
                            f"not {algorithm}")
        if reward_name == SMOOTH_REWARD:
            raise UserError("--ppo.dense-jerk-weight replaces the smooth reward's jerk term "
                            "(it would count jerk twice): use --reward.name binary")
