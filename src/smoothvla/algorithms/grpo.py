"""GRPO for chunked VLA policies (SmoothVLA §3.2 eq. 1; the SmolVLA GRPO report; DeepSeekMath).

One `update(trajectories)` reads top to bottom:

1. rewards and rollout statistics (success, jerk, reward terms, degenerate groups);
2. group-relative advantages over the G rollouts that share a task and initial state, one
   per chunk, by `advantage` (docs/rl.md, "Smoothness credit"): 'standard' is
   A_i = (R_i - mean R) / (std R + eps) applied to every chunk of trajectory i (SmoothVLA
   eq. 1); 'decoupled' adds w * the smoothness advantage of trajectory i among the group's
   successes; 'chunk' adds w * the smoothness advantage of each chunk's own jerk among all
   chunks of the group's successes. With `dynamic_sampling`, groups without signal are
   dropped first: their advantages are all zero, so they only dilute the loss (the SmolVLA GRPO report
   §7.3: all-fail groups under a binary reward). Signal is reward spread, and for the
   decoupled/chunk variants also a nonzero smoothness term (an all-success group);
3. the chunks of the kept trajectories become one batch; reference log-probs (if beta > 0);
4. `epochs` passes of minibatches over chunks: ratio = pi_theta(chunk) / pi_old(chunk),
   clipped surrogate with separate eps_low / eps_high, + beta * k3-KL to the reference,
   gradient clipping, an AdamW step; with `ratio_level="token"` the ratio and its clip are
   per action token (as LLM GRPO and SimpleVLA-RL do) and the surrogate is their mean;
5. diagnostics: clip fraction, approx KL, log-prob stats, grad norm, weight drift from
   the reference (the SmolVLA GRPO report §6.2: drift went with lost success there, so watch it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np
import torch

from smoothvla.algorithms.common import (
    LEARNING_RANGES,
    ChunkBatch,
    WholePolicyAlgorithm,
    batched_log_prob,
    chunk_log_prob,
    chunk_log_prob_terms,
    chunk_mean_jerk,
    gradient_step,
    group_indices,
    mean_of,
    minibatches,
    record,
    reward_has_jerk,
    rollout_stats,
    trajectory_mean_jerk,
)
from smoothvla.algorithms.losses import (
    advantage_split_stats,
    approx_kl,
    chunk_smoothness_credit,
    clipped_surrogate,
    decoupled_advantages,
    eq5_advantage_split,
    kl_k3,
)
from smoothvla.errors import UserError, check_fields
from smoothvla.trajectory import Trajectory

ADVANTAGES = ("standard", "decoupled", "chunk")


@dataclass
class GRPOConfig:
    """GRPO hyperparameters."""

    lr: float = 2e-5
    """AdamW learning rate (SmoothVLA §4.1 uses 2e-5 for its preference stage; the SmolVLA GRPO report
    §5.1 saw 1e-4/1e-3 destroy the policy in one update)."""
    weight_decay: float = 0.0
    """AdamW weight decay (0: do not pull weights to zero, which is drift of its own)."""
    eps_low: float = 0.2
    """Lower clip range: ratios below 1 - eps_low stop getting gradient when A < 0."""
    eps_high: float = 0.28
    """Upper clip range (DAPO's clip-higher, 0.28): ratios above 1 + eps_high stop getting
    gradient when A > 0. Set equal to eps_low for SmoothVLA's symmetric eq. 1."""
    beta: float = 0.0
    """Weight of the k3 KL penalty to the frozen reference policy, per chunk or, with
    ratio_level='token', per token (averaged like the surrogate); 0 disables it (the SmolVLA GRPO report
    §5.4 found it changed nothing; it then costs no extra forward pass)."""
    adv_eps: float = 1e-6
    """eps in the advantage denominator std(R) + eps."""
    dynamic_sampling: bool = True
    """Drop groups whose rewards are all equal (no signal) before the update, and report them."""
    epochs: int = 1
    """Passes over the batch per update (RL4VLA §4.2: more than 1 did not help)."""
    minibatch_chunks: int = 64
    """Chunks per gradient step."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (<= 0: no clipping)."""
    seed: int = 0
    """Seed of the minibatch shuffling."""
    ratio_level: str = "chunk"
    """'chunk': one ratio per action chunk (the product over its k x 7 tokens, SmoothVLA eq. 1
    read per chunk); 'token': one ratio and clip per factor of the chunk's log-probability
    (per action token for the token head), the surrogate averaged over them. A chunk ratio
    multiplies 56 token ratios, so it leaves the clip range after small per-token changes."""
    advantage: Literal["standard", "decoupled", "chunk"] = "standard"
    """How smoothness enters the advantage (docs/rl.md, "Smoothness credit"). 'standard':
    the group-normalised reward, eq. 5 of the SmoothVLA paper with --reward.name smooth.
    'decoupled': the reward's and the jerk's advantages normalised each within the group
    (jerk among the group's successes), summed with weight smooth_weight. 'chunk': as
    decoupled, but each chunk's smoothness advantage comes from the jerk it caused. Both
    replace eq. 5: use them with --reward.name binary (or staged, random)."""
    smooth_weight: float = 0.5
    """w in A = A_success + w * A_smooth ('decoupled', 'chunk'). 0.5 keeps every success of
    a group above every failure whatever its jerk, for groups of up to 28 rollouts (a
    success's smoothness z-score among n successes is at most sqrt(n - 1); 'decoupled'),
    while an all-success group learns from the smoothness term alone."""

    def __post_init__(self) -> None:
        if self.ratio_level not in ("chunk", "token"):
            raise UserError(f"ratio_level must be 'chunk' or 'token', got {self.ratio_level!r}")
        if self.advantage not in ADVANTAGES:
            raise UserError(f"advantage must be one of {', '.join(ADVANTAGES)}, "
                            f"got {self.advantage!r}")
        check_fields(self, **LEARNING_RANGES, eps_low="(0, 1)", eps_high="(0, 10]",
                     beta=">= 0", adv_eps="> 0", minibatch_chunks=">= 1", epochs=">= 1",
                     smooth_weight=">= 0")


# -- advantage variants: (group, rewards (G,), cfg) -> advantage, success part, smooth part,
# each (N,) over the group's chunks, trajectory by trajectory --------------------------
GroupAdvantage = Callable[
    [list[Trajectory], torch.Tensor, GRPOConfig], tuple[torch.Tensor, torch.Tensor, torch.Tensor]
]


def per_chunk(group: list[Trajectory], values: torch.Tensor) -> torch.Tensor:
    """(G,) one value per trajectory -> (N,) that value on each of its chunks."""
    return values.repeat_interleave(torch.tensor([len(t.chunks) for t in group]))


def _success(group: list[Trajectory]) -> torch.Tensor:
    return torch.tensor([t.success for t in group], dtype=torch.bool)


def standard_advantage(
    group: list[Trajectory], rewards: torch.Tensor, cfg: GRPOConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """SmoothVLA eq. 1 on the configured reward; the smooth part is what eq. 5's jerk term
    changes against the binary success (`losses.eq5_advantage_split`)."""
    jerk_in_reward = all(reward_has_jerk(t) for t in group)
    split = eq5_advantage_split(rewards, _success(group), jerk_in_reward, cfg.adv_eps)
    return tuple(per_chunk(group, x) for x in split)  # type: ignore[return-value]


def decoupled_advantage(
    group: list[Trajectory], rewards: torch.Tensor, cfg: GRPOConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`losses.decoupled_advantages` with each trajectory's mean jerk from its path."""
    jerk = torch.tensor([trajectory_mean_jerk(t) for t in group], dtype=torch.float32)
    split = decoupled_advantages(rewards, _success(group), jerk, cfg.smooth_weight, cfg.adv_eps)
    return tuple(per_chunk(group, x) for x in split)  # type: ignore[return-value]


def chunk_advantage(
    group: list[Trajectory], rewards: torch.Tensor, cfg: GRPOConfig
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`losses.chunk_smoothness_credit` with each chunk's mean jerk from
    `metrics.attribution.chunk_jerk`."""
    jerks = [chunk_mean_jerk(t) for t in group]
    chunk_jerk = torch.tensor(np.concatenate(jerks), dtype=torch.float32)
    chunk_traj = torch.repeat_interleave(torch.tensor([len(j) for j in jerks]))
    return chunk_smoothness_credit(
        rewards, _success(group), chunk_jerk, chunk_traj, cfg.smooth_weight, cfg.adv_eps
    )


GROUP_ADVANTAGES: dict[str, GroupAdvantage] = {
    "standard": standard_advantage,
    "decoupled": decoupled_advantage,
    "chunk": chunk_advantage,
}


class GRPO(WholePolicyAlgorithm):
    """Owns the optimizer and the reference; `update(trajectories) -> stats`."""

    name = "grpo"
    cfg: GRPOConfig

    def update(self, trajectories: list[Trajectory]) -> dict[str, float]:
        cfg = self.cfg
        stats = rollout_stats(trajectories)

        if cfg.advantage != "standard" and any(reward_has_jerk(t) for t in trajectories):
            raise UserError(f"advantage {cfg.advantage!r} replaces the smooth reward's jerk "
                            "term (it would count jerk twice): score with the binary reward")

        # -- group-relative advantages, one per chunk, and their smoothness part ---------
        rewards = torch.tensor([t.reward for t in trajectories], dtype=torch.float32)
        group_advantage = GROUP_ADVANTAGES[cfg.advantage]
        kept: list[int] = []
        parts: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        too_small = no_signal = smooth_only = 0
        for members in group_indices(trajectories).values():
            if len(members) < 2:  # a group that lost members to crashed workers
                too_small += 1
                continue
            group_rewards = rewards[members]
            advantage, success_part, smooth_part = group_advantage(
                [trajectories[i] for i in members], group_rewards, cfg
            )
            reward_spread = float(group_rewards.max() - group_rewards.min()) > 1e-8
            # eq. 5's smooth part is a share of its reward spread; the variants' is signal
            # of its own (an all-success group), which dynamic sampling must keep
            smooth_spread = cfg.advantage != "standard" and bool(smooth_part.abs().max() > 0)
            if cfg.dynamic_sampling and not (reward_spread or smooth_spread):
                no_signal += 1
                continue
            smooth_only += int(smooth_spread and not reward_spread)
            parts.append((advantage, success_part, smooth_part))
            kept.extend(members)
        stats.update(groups_too_small=float(too_small), groups_dropped=float(no_signal),
                     groups_smooth_only=float(smooth_only))
        stats["trajectories_used"] = float(len(kept))
        if not kept:
            stats.update(self._weight_stats(), skipped=1.0)
            return stats

        # -- the chunks of the kept trajectories -----------------------------------------
        kept_trajs = [trajectories[i] for i in kept]
        batch = ChunkBatch.from_trajectories(kept_trajs)
        # groups were kept in order and each lists its chunks trajectory by trajectory,
        # as ChunkBatch does
        chunk_adv, success_part, smooth_part = (torch.cat(p) for p in zip(*parts))
        if len(chunk_adv) != len(batch):
            raise ValueError(f"{len(chunk_adv)} advantages for {len(batch)} chunks: "
                             "a trajectory's chunk_starts disagree with its chunks")
        stats.update(advantage_split_stats(success_part, smooth_part))
        logp_old = batch.logp_old
        by_token = cfg.ratio_level == "token"
        if by_token:
            # the sampling policy's factors: the weights have not moved since the rollouts
            terms_old = batched_log_prob(self.policy, batch, cfg.minibatch_chunks, terms=True)
            stats["logp_old_gap"] = float((terms_old.sum(-1) - logp_old).abs().max())
        # reference log-probs at the ratio's level: a chunk's k3 estimate exponentiates a
        # sum of 56 token log-ratios and explodes once the policy has moved a little
        logp_ref = (
            self.reference.log_prob(self.policy, batch, cfg.minibatch_chunks, terms=by_token)
            if cfg.beta > 0
            else None
        )

        # -- clipped-ratio steps over minibatches of chunks -------------------------------
        log: dict[str, list[float]] = {
            k: [] for k in ("loss", "pg_loss", "kl_ref", "clip_frac", "approx_kl", "grad_norm")
        }
        logp_seen: list[torch.Tensor] = []
        for _ in range(cfg.epochs):
            for index in minibatches(len(batch), cfg.minibatch_chunks, self.generator):
                obs, chunk = batch.select(index)
                # the ratio's factors: the chunk's tokens (N, T), or the chunk itself (N,)
                if by_token:
                    own = chunk_log_prob_terms(self.policy, obs, chunk)
                    logp, own_old, adv = own.sum(-1), terms_old[index], chunk_adv[index, None]
                else:
                    own = logp = chunk_log_prob(self.policy, obs, chunk)
                    own_old, adv = logp_old[index], chunk_adv[index]
                pg_loss, clip_frac = clipped_surrogate(own, own_old, adv, cfg.eps_low, cfg.eps_high)
                kl_ref = (
                    kl_k3(own, logp_ref[index]).mean() if logp_ref is not None else torch.zeros(())
                )
                loss = pg_loss + cfg.beta * kl_ref
                grad_norm = gradient_step(self.optimizer, self.params, loss, cfg.max_grad_norm)
                record(log, grad_norm=grad_norm, loss=loss, pg_loss=pg_loss, kl_ref=kl_ref,
                       clip_frac=clip_frac, approx_kl=approx_kl(logp.detach(), logp_old[index]))
                logp_seen.append(logp.detach())
        self.updates += 1

        # -- diagnostics ---------------------------------------------------------------
        logp_all = torch.cat(logp_seen)
        stats.update({k: mean_of(v) for k, v in log.items()})
        stats.update(
            grad_norm_max=float(np.max(log["grad_norm"])),
            chunks=float(len(batch)),
            adv_abs_mean=float(chunk_adv.abs().mean()),
            logp_mean=float(logp_all.mean()),
            logp_std=float(logp_all.std()) if len(logp_all) > 1 else 0.0,
            # -E[log pi] over the policy's own samples: a Monte-Carlo entropy estimate per chunk
            entropy_est=float(-logp_old.mean()),
            **self._weight_stats(),
        )
        return stats

    def _weight_stats(self) -> dict[str, float]:
        return {
            "weight_drift": self.reference.drift(),
            "updates": float(self.updates),
            "lr": self.cfg.lr,
        }
