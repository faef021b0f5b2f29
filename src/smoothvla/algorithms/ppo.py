"""PPO with a value head on the policy's shared backbone (RL4VLA §4.2, App. A.1).

The MDP is taken at the chunk level: a state is the observation a chunk was sampled from,
an action is the whole chunk (its log-prob is summed over k steps and 7 dimensions, as
RL4VLA's product over action tokens), the trajectory's reward arrives with its last
chunk, and the episode ends there (no bootstrap: the reward is of the whole trajectory).
With `dense_jerk_weight` > 0, every chunk of a success also gets a penalty for the jerk
it caused (`losses.dense_jerk_rewards`), so GAE credits jerk where it happened.

One `update(trajectories)` reads top to bottom:

1. rollout statistics;
2. old values V(s_c) of every chunk with the current critic (no grad);
3. per-chunk rewards (the trajectory's reward on its last chunk, plus any dense jerk
   penalty), GAE(gamma, lambda) per trajectory -> advantages and returns; ORZ (RL4VLA
   §4.1) is gamma = lambda = 1 (`PPOConfig.orz()`), i.e. advantage = R - V(s_c); the
   advantage of the smoothness rewards alone (GAE is linear in the rewards) is logged as
   its share;
4. `epochs` (default 1, RL4VLA §4.2) passes of minibatches: clipped surrogate + vf_coef *
   clipped value loss, one AdamW step each (value head at its own learning rate);
5. diagnostics as GRPO's, plus value loss and explained variance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from smoothvla.algorithms.common import (
    LEARNING_RANGES,
    Algorithm,
    ChunkBatch,
    Reference,
    chunk_jerk_of,
    chunk_log_prob,
    gradient_step,
    mean_of,
    minibatches,
    policy_value,
    record,
    reward_has_jerk,
    rollout_stats,
    trainable_parameters,
)
from smoothvla.algorithms.losses import (
    advantage_split_stats,
    approx_kl,
    clipped_surrogate,
    compute_gae,
    dense_jerk_rewards,
    value_loss,
)
from smoothvla.errors import UserError, check_fields
from smoothvla.policies.base import Policy
from smoothvla.trajectory import Trajectory

VALUE_HEAD_PREFIX = "value_head."


@dataclass
class PPOConfig:
    """PPO hyperparameters."""

    lr: float = 2e-5
    """AdamW learning rate of the policy (backbone and action head)."""
    value_lr: float = 1e-4
    """Learning rate of the value head's own parameters (it starts from scratch)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    gamma: float = 0.99
    """Discount per chunk."""
    lam: float = 0.95
    """GAE lambda."""
    eps_low: float = 0.2
    """Lower clip range of the ratio."""
    eps_high: float = 0.2
    """Upper clip range of the ratio."""
    vf_coef: float = 0.5
    """Weight of the value loss in the total loss."""
    value_clip: float | None = 0.2
    """Clip range of the value update around the old value; None disables value clipping."""
    normalize_advantages: bool = True
    """Normalize advantages over the batch (zero mean, unit std)."""
    epochs: int = 1
    """Passes over each batch (RL4VLA §4.2: more than one costs time, gains nothing)."""
    minibatch_chunks: int = 64
    """Chunks per gradient step."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (<= 0: no clipping)."""
    seed: int = 0
    """Seed of the minibatch shuffling."""
    dense_jerk_weight: float = 0.0
    """w of the dense jerk penalty (docs/rl.md, "Smoothness credit"): each chunk of a
    successful trajectory gets reward -w * (jerk it caused) / (its windows in the whole
    path * jerk_scale), so the penalties of a success add up to w * mean jerk / jerk_scale
    (eq. 5's with lam = w), paid chunk by chunk. 0: off. Replaces eq. 5: use it with
    --reward.name binary; jerk_scale is the reward config's."""

    def __post_init__(self) -> None:
        check_fields(self, **LEARNING_RANGES, value_lr="(0, 1]", gamma="[0, 1]", lam="[0, 1]",
                     eps_low="(0, 1)", eps_high="(0, 10]", vf_coef=">= 0", value_clip="> 0",
                     minibatch_chunks=">= 1", epochs=">= 1", dense_jerk_weight=">= 0")

    @classmethod
    def orz(cls, **overrides: Any) -> "PPOConfig":
        """The Open-Reasoner-Zero variant of RL4VLA: gamma = lambda = 1."""
        return replace(cls(**overrides), gamma=1.0, lam=1.0)


class PPO(Algorithm):
    """Owns the optimizer (policy + value head) and the drift reference. `jerk_scale`
    (m/s^3 that count as 1, `RewardConfig.jerk_scale`) scales the dense jerk penalty; a
    trainer that measures it later sets the attribute."""

    name = "ppo"
    cfg: PPOConfig

    def __init__(self, policy: Policy, cfg: PPOConfig, jerk_scale: float = 1.0) -> None:
        if not (np.isfinite(jerk_scale) and jerk_scale > 0):
            raise UserError(f"jerk_scale must be a positive number, got {jerk_scale}")
        self.jerk_scale = float(jerk_scale)
        trainable_parameters(policy)  # a clear error for what is not a Policy, before its use
        if not policy.has_value_head:
            policy.attach_value_head()  # a policy that cannot says so (UserError)
        self.policy = policy
        self.cfg = cfg
        self.params = trainable_parameters(policy)
        named = [(n, p) for n, p in policy.named_parameters() if p.requires_grad]
        critic = [p for n, p in named if n.startswith(VALUE_HEAD_PREFIX)]
        actor = [p for n, p in named if not n.startswith(VALUE_HEAD_PREFIX)]
        groups = [{"params": actor, "lr": cfg.lr}]
        if critic:
            groups.append({"params": critic, "lr": cfg.value_lr})
        self.optimizer = torch.optim.AdamW(groups, weight_decay=cfg.weight_decay)
        self.reference = Reference(actor)  # drift of the actor only
        self.generator = torch.Generator().manual_seed(cfg.seed)
        self.updates = 0

    def update(self, trajectories: list[Trajectory]) -> dict[str, float]:
        cfg = self.cfg
        stats = rollout_stats(trajectories)
        if cfg.dense_jerk_weight > 0 and any(reward_has_jerk(t) for t in trajectories):
            raise UserError("dense_jerk_weight replaces the smooth reward's jerk term (it "
                            "would count jerk twice): score with the binary reward")
        batch = ChunkBatch.from_trajectories(trajectories)

        # -- old values, then GAE per trajectory at the chunk level ----------------------
        with torch.no_grad():
            values_old = torch.cat(
                [
                    policy_value(self.policy, *batch.select(index))
                    for index in torch.arange(len(batch)).split(cfg.minibatch_chunks)
                ]
            )
        advantages = torch.zeros(len(batch))
        returns = torch.zeros(len(batch))
        smooth_adv = torch.zeros(len(batch))
        dense_returns = []
        for i, t in enumerate(trajectories):
            rows = torch.nonzero(batch.traj_index == i).squeeze(1)
            dense = self._dense_rewards(t, len(rows))
            dense_returns.append(float(dense.sum()))
            smooth_rewards = dense.clone()
            if reward_has_jerk(t):  # eq. 5's jerk term, R - 1[success], on the last chunk
                smooth_rewards[-1] += float(t.reward) - float(t.success)
            rewards = dense.clone()
            rewards[-1] += float(t.reward)
            dones = torch.zeros(len(rows))
            dones[-1] = 1.0
            values = torch.cat([values_old[rows], torch.zeros(1)])
            advantages[rows], returns[rows] = compute_gae(
                rewards, values, dones, cfg.gamma, cfg.lam
            )
            # GAE is linear in (rewards, values): this is the smoothness rewards' share of A
            smooth_adv[rows], _ = compute_gae(
                smooth_rewards, torch.zeros(len(rows) + 1), dones, cfg.gamma, cfg.lam
            )
        adv_raw = advantages.clone()
        stats.update(advantage_split_stats(adv_raw - smooth_adv, smooth_adv))
        stats["dense_jerk_return"] = float(np.mean(dense_returns))
        if cfg.normalize_advantages and len(advantages) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        logp_old = batch.logp_old

        # -- clipped policy loss + clipped value loss over minibatches -------------------
        log: dict[str, list[float]] = {
            k: [] for k in ("loss", "pg_loss", "value_loss", "clip_frac", "approx_kl", "grad_norm")
        }
        for _ in range(cfg.epochs):
            for index in minibatches(len(batch), cfg.minibatch_chunks, self.generator):
                obs, chunk = batch.select(index)
                logp = chunk_log_prob(self.policy, obs, chunk)
                values = policy_value(self.policy, obs, chunk)
                pg_loss, clip_frac = clipped_surrogate(
                    logp, logp_old[index], advantages[index], cfg.eps_low, cfg.eps_high
                )
                v_loss = value_loss(values, values_old[index], returns[index], cfg.value_clip)
                loss = pg_loss + cfg.vf_coef * v_loss
                grad_norm = gradient_step(self.optimizer, self.params, loss, cfg.max_grad_norm)
                record(log, grad_norm=grad_norm, loss=loss, pg_loss=pg_loss, value_loss=v_loss,
                       clip_frac=clip_frac, approx_kl=approx_kl(logp.detach(), logp_old[index]))
        self.updates += 1

        # -- diagnostics ---------------------------------------------------------------
        var_returns = float(returns.var()) if len(returns) > 1 else 0.0
        stats.update({k: mean_of(v) for k, v in log.items()})
        stats.update(
            grad_norm_max=float(np.max(log["grad_norm"])),
            chunks=float(len(batch)),
            adv_mean=float(adv_raw.mean()),
            value_mean=float(values_old.mean()),
            explained_variance=(1.0 - float((returns - values_old).var()) / var_returns)
            if var_returns > 0
            else float("nan"),
            logp_mean=float(logp_old.mean()),
            entropy_est=float(-logp_old.mean()),
            weight_drift=self.reference.drift(),
            updates=float(self.updates),
            lr=cfg.lr,
        )
        return stats

    def _dense_rewards(self, traj: Trajectory, num_chunks: int) -> torch.Tensor:
        """(C,) the dense jerk penalty of each chunk; zeros when off or for a failure (as
        eq. 5, only successes are paid for smoothness: a failure that moved is not worse
        than one that stood still)."""
        if self.cfg.dense_jerk_weight == 0 or not traj.success:
            return torch.zeros(num_chunks)
        sums, windows = chunk_jerk_of(traj)
        if len(sums) != num_chunks:
            raise ValueError(f"trajectory has {num_chunks} chunks but chunk_starts marks "
                             f"{len(sums)}")
        return dense_jerk_rewards(torch.from_numpy(sums), torch.from_numpy(windows),
                                  self.cfg.dense_jerk_weight, self.jerk_scale)
