"""DPO / TPO on on-policy trajectory pairs (RL4VLA App. A.1 eq. 7; Zhang et al. 2024b).

Pairs come from one group (same task and initial state): the higher-reward trajectory is
preferred. Ranking by the hybrid smooth reward gives SmoothVLA-DPO: among successes the
smoother one wins; ranking by the binary or staged reward gives RL4VLA's DPO baseline.

One `update(trajectories)` reads top to bottom:

1. rollout statistics;
2. pairs per group: every (w, l) with R_w - R_l > min_reward_gap, the largest gaps first,
   at most `max_pairs_per_group` (a group of equal rewards gives none);
3. reference log-probs of each trajectory: the sum of its chunks' log-probs under the
   frozen reference policy;
4. `epochs` passes over minibatches of pairs: log pi_theta of both trajectories (sum over
   chunks), `losses.dpo_loss`, an AdamW step;
5. diagnostics: preference accuracy (margin > 0), margin, grad norm, weight drift.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from smoothvla.algorithms.common import (
    LEARNING_RANGES,
    ChunkBatch,
    WholePolicyAlgorithm,
    chunk_log_prob,
    gradient_step,
    group_indices,
    mean_of,
    minibatches,
    record,
    rollout_stats,
)
from smoothvla.algorithms.losses import dpo_loss
from smoothvla.errors import check_fields
from smoothvla.trajectory import Trajectory


@dataclass
class DPOConfig:
    """DPO hyperparameters."""

    lr: float = 2e-5
    """AdamW learning rate (SmoothVLA §4.1: 2e-5 for the preference stage)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    beta: float = 0.1
    """Inverse temperature of the implicit reward, beta in eq. 7."""
    min_reward_gap: float = 1e-6
    """A pair needs R_w - R_l larger than this."""
    max_pairs_per_group: int = 4
    """At most this many pairs per group, the largest reward gaps first."""
    epochs: int = 1
    """Passes over the pairs per update."""
    minibatch_pairs: int = 8
    """Pairs per gradient step."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this (<= 0: no clipping)."""
    seed: int = 0
    """Seed of the minibatch shuffling."""

    def __post_init__(self) -> None:
        check_fields(self, **LEARNING_RANGES, beta="> 0", min_reward_gap=">= 0",
                     max_pairs_per_group=">= 1", epochs=">= 1", minibatch_pairs=">= 1")


def preference_pairs(
    rewards: list[float], members: list[int], min_gap: float, max_pairs: int
) -> list[tuple[int, int]]:
    """(preferred, rejected) index pairs within one group, largest reward gap first.

    rewards: reward of every trajectory; members: the group's indices into it. Ties in the
    gap are broken by index, so the pairing is deterministic.
    """
    candidates = [
        (rewards[win] - rewards[lose], win, lose)
        for win in members
        for lose in members
        if rewards[win] - rewards[lose] > min_gap
    ]
    candidates.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [(win, lose) for _, win, lose in candidates[:max_pairs]]


class DPO(WholePolicyAlgorithm):
    """Owns the optimizer and the frozen reference policy."""

    name = "dpo"
    cfg: DPOConfig

    def update(self, trajectories: list[Trajectory]) -> dict[str, float]:
        cfg = self.cfg
        stats = rollout_stats(trajectories)

        # -- preference pairs within groups --------------------------------------------
        rewards = [float(t.reward) for t in trajectories]
        pairs: list[tuple[int, int]] = []
        for members in group_indices(trajectories).values():
            pairs += preference_pairs(rewards, members, cfg.min_reward_gap, cfg.max_pairs_per_group)
        stats["pairs"] = float(len(pairs))
        if not pairs:
            stats.update(
                weight_drift=self.reference.drift(), updates=float(self.updates), skipped=1.0
            )
            return stats

        # -- reference log-probs of whole trajectories -----------------------------------
        used = sorted({i for pair in pairs for i in pair})
        batch = ChunkBatch.from_trajectories([trajectories[i] for i in used])
        ref_chunks = self.reference.log_prob(self.policy, batch, 256)
        ref_traj = torch.zeros(len(used)).index_add_(0, batch.traj_index, ref_chunks)
        ref = {i: ref_traj[k] for k, i in enumerate(used)}

        # -- DPO steps over minibatches of pairs -----------------------------------------
        log: dict[str, list[float]] = {k: [] for k in ("loss", "accuracy", "margin", "grad_norm")}
        for _ in range(cfg.epochs):
            for index in minibatches(len(pairs), cfg.minibatch_pairs, self.generator):
                mb = [pairs[i] for i in index.tolist()]
                logp = self._trajectory_log_probs(trajectories, sorted({i for p in mb for i in p}))
                logp_w = torch.stack([logp[w] for w, _ in mb])
                logp_l = torch.stack([logp[lose] for _, lose in mb])
                ref_w = torch.stack([ref[w] for w, _ in mb])
                ref_l = torch.stack([ref[lose] for _, lose in mb])
                loss, margin = dpo_loss(logp_w, logp_l, ref_w, ref_l, cfg.beta)
                grad_norm = gradient_step(self.optimizer, self.params, loss, cfg.max_grad_norm)
                record(log, grad_norm=grad_norm, loss=loss,
                       accuracy=(margin.detach() > 0).float().mean(), margin=margin.mean())
        self.updates += 1

        stats.update({k: mean_of(v) for k, v in log.items()})
        stats.update(
            grad_norm_max=float(np.max(log["grad_norm"])),
            reward_gap=float(np.mean([rewards[w] - rewards[lose] for w, lose in pairs])),
            weight_drift=self.reference.drift(),
            updates=float(self.updates),
            lr=cfg.lr,
        )
        return stats

    def _trajectory_log_probs(
        self, trajectories: list[Trajectory], which: list[int]
    ) -> dict[int, torch.Tensor]:
        """{trajectory index: log pi_theta(trajectory)} with gradient, summed over chunks."""
        batch = ChunkBatch.from_trajectories([trajectories[i] for i in which])
        chunk_logp = chunk_log_prob(self.policy, batch.obs, batch.chunk)
        sums = torch.zeros(len(which)).index_add(0, batch.traj_index, chunk_logp)
        return {i: sums[k] for k, i in enumerate(which)}
