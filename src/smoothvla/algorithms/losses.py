"""The math shared by GRPO, PPO and DPO: pure functions on tensors, shapes in the docstrings.

Conventions: a log-probability is that of a whole action chunk (sum over its k steps and
7 dimensions, `Policy.log_prob`); losses are to be minimised; every function is
differentiable where a gradient makes sense and has a hand-computed test.
"""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F

# exp() of a log-ratio beyond this overflows float32 ratios into inf; clamping only changes
# samples that are clipped anyway (any |log-ratio| > 0.7 is outside any sensible clip range).
MAX_LOG_RATIO = 20.0


def group_advantages(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Group-relative advantages, SmoothVLA eq. 1 / the SmolVLA GRPO report eq. 1.

    rewards (G,) -> (G,): (R_i - mean R) / (std R + eps), with the population standard
    deviation (ddof = 0, so a group of two gives exactly +-1 when eps is 0). A group whose
    rewards are all equal (all-fail, or all-success under a binary reward) gets zeros:
    no signal, the SmolVLA GRPO report §7.3.
    """
    if rewards.ndim != 1 or len(rewards) < 2:
        raise ValueError(
            f"group_advantages needs rewards of shape (G,) with G >= 2, got {tuple(rewards.shape)}"
        )
    centered = rewards - rewards.mean()
    return centered / (rewards.std(unbiased=False) + eps)


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2015; RL4VLA App. A.1 eq. 2).

    rewards (T,), values (T+1,) with values[T] the bootstrap value after the last step,
    dones (T,) with dones[t] = 1 when the episode ended after step t (no bootstrapping
    across it) -> advantages (T,), returns (T,) = advantages + values[:T].

        delta_t = r_t + gamma * V_{t+1} * (1 - done_t) - V_t
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1}

    gamma = lam = 1 is the ORZ variant (RL4VLA §4.1): A_t = (sum of future rewards) - V_t.
    """
    T = len(rewards)
    if values.shape != (T + 1,) or dones.shape != (T,):
        raise ValueError(
            f"compute_gae needs rewards (T,), values (T+1,), dones (T,); got "
            f"{tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(dones.shape)}"
        )
    not_done = 1.0 - dones.to(values.dtype)
    advantages = torch.zeros_like(rewards, dtype=values.dtype)
    running = torch.zeros((), dtype=values.dtype)
    for t in reversed(range(T)):
        delta = rewards[t] + gamma * values[t + 1] * not_done[t] - values[t]
        running = delta + gamma * lam * not_done[t] * running
        advantages[t] = running
    return advantages, advantages + values[:T]


def clipped_surrogate(
    logp_new: torch.Tensor,
    logp_old: torch.Tensor,
    advantages: torch.Tensor,
    eps_low: float,
    eps_high: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO/GRPO clipped policy loss with separate lower and upper clip ranges (DAPO's
    "clip-higher"; eps_low = eps_high is SmoothVLA eq. 1).

    logp_new, logp_old, advantages (B,) -> loss (), clip_frac ().

        ratio = exp(logp_new - logp_old)
        loss  = -mean(min(ratio * A, clip(ratio, 1 - eps_low, 1 + eps_high) * A))

    clip_frac is the fraction of samples whose clipped term is the active one and so
    gets no gradient: ratio > 1 + eps_high with A > 0, or ratio < 1 - eps_low with A < 0.
    """
    log_ratio = (logp_new - logp_old).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    ratio = log_ratio.exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high) * advantages
    loss = -torch.minimum(unclipped, clipped).mean()
    active = ((ratio > 1.0 + eps_high) & (advantages > 0)) | (
        (ratio < 1.0 - eps_low) & (advantages < 0)
    )
    return loss, active.float().mean().detach()


def kl_k3(logp: torch.Tensor, logp_ref: torch.Tensor) -> torch.Tensor:
    """Per-sample KL(pi || pi_ref) estimate, Schulman's k3 (used by GRPO, DeepSeekMath eq. 4).

    logp, logp_ref (B,) log-probs of samples under the policy and the reference -> (B,):
    exp(logp_ref - logp) - (logp_ref - logp) - 1, which is >= 0 and unbiased for samples
    drawn from pi.
    """
    diff = (logp_ref - logp).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    return diff.exp() - diff - 1.0


def approx_kl(logp_new: torch.Tensor, logp_old: torch.Tensor) -> torch.Tensor:
    """How far an update moved the policy on its own samples, k3 estimate of KL(old || new).

    logp_new, logp_old (B,) -> (): mean((ratio - 1) - log ratio), ratio = pi_new / pi_old.
    """
    log_ratio = (logp_new - logp_old).clamp(-MAX_LOG_RATIO, MAX_LOG_RATIO)
    return ((log_ratio.exp() - 1.0) - log_ratio).mean()


def value_loss(
    values: torch.Tensor, values_old: torch.Tensor, returns: torch.Tensor, clip: float | None
) -> torch.Tensor:
    """Critic loss with optional PPO value clipping.

    values, values_old, returns (B,) -> (): 0.5 * mean(max((V - R)^2, (V_clip - R)^2)),
    V_clip = V_old + clip(V - V_old, -clip, clip); without clip, 0.5 * mean((V - R)^2).
    """
    unclipped = (values - returns).pow(2)
    if clip is None:
        return 0.5 * unclipped.mean()
    clipped_values = values_old + (values - values_old).clamp(-clip, clip)
    return 0.5 * torch.maximum(unclipped, (clipped_values - returns).pow(2)).mean()


def dpo_loss(
    logp_w: torch.Tensor,
    logp_l: torch.Tensor,
    ref_w: torch.Tensor,
    ref_l: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """DPO / TPO loss on trajectory log-probs (RL4VLA App. A.1 eq. 7).

    logp_w, logp_l (B,): log pi_theta of the preferred and rejected trajectories (sums
    over their chunks); ref_w, ref_l (B,): the same under the frozen reference ->
    loss (), margin (B,) with

        margin = beta * ((logp_w - ref_w) - (logp_l - ref_l))
        loss   = -mean(log sigmoid(margin))
    """
    margin = beta * ((logp_w - ref_w) - (logp_l - ref_l))
    return -F.logsigmoid(margin).mean(), margin


def weight_drift(params: Iterable[torch.Tensor], ref_params: Iterable[torch.Tensor]) -> float:
    """Relative weight change from a reference checkpoint (the SmolVLA GRPO report §6.2's "weight drift").

    Two matching lists of tensors -> sum |theta - theta_ref| / sum |theta_ref| over all
    elements, i.e. the mean absolute change relative to the mean absolute weight. Unlike a
    per-element percentage it stays finite for weights that start at zero (LoRA's B).
    """
    change, scale = 0.0, 0.0
    pairs = list(zip(params, ref_params, strict=True))
    for p, r in pairs:
        if p.shape != r.shape:
            raise ValueError(f"weight_drift: shape {tuple(p.shape)} != reference {tuple(r.shape)}")
        change += (p.detach().float() - r.detach().float().to(p.device)).abs().sum().item()
        scale += r.detach().float().abs().sum().item()
    return change / max(scale, 1e-12)


# -- smoothness credit (docs/rl.md, "Smoothness credit") ---------------------------------
# Eq. 5 of the SmoothVLA paper folds jerk into one reward; after group normalisation its
# jerk term moves a success's advantage by a few percent in a mixed group and, in an
# all-success group, lam cancels out of (R - mean R) / std R. The variants below keep
# success and smoothness apart (multi-reward GRPO's normalise-then-sum: TRL's
# multi_objective_aggregation="normalize_then_sum", verl's GDPO) and can credit each chunk
# with the jerk it caused.


def smoothness_advantages(jerk: torch.Tensor, eligible: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Smoothness advantage among the eligible entries of one group: lower jerk is better.

    jerk (N,), eligible (N,) bool -> (N,): -(J_i - mean J) / (std J + eps) over the eligible
    entries (population std), 0 for the others. Fewer than 2 eligible entries give zeros:
    a lone success has nothing to be compared with. Entries of `jerk` that are not eligible
    may be NaN (no jerk measured) and are never read.
    """
    if jerk.ndim != 1 or eligible.shape != jerk.shape:
        raise ValueError(
            f"smoothness_advantages needs jerk (N,) and eligible (N,); got "
            f"{tuple(jerk.shape)}, {tuple(eligible.shape)}"
        )
    out = torch.zeros_like(jerk, dtype=torch.float32)
    if int(eligible.sum()) < 2:
        return out
    j = jerk[eligible].float()
    out[eligible] = -(j - j.mean()) / (j.std(unbiased=False) + eps)
    return out


def eq5_advantage_split(
    rewards: torch.Tensor, success: torch.Tensor, jerk_in_reward: bool, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The standard GRPO advantage and how much of it the jerk term of the reward makes.

    rewards (G,), success (G,) bool -> advantage (G,), success part (G,), smooth part (G,):
    advantage = group_advantages(rewards) (the baseline, unchanged). With a reward that
    carries jerk (eq. 5), success part = group_advantages(1[success]) and smooth part =
    advantage - success part, the lam-effect; otherwise the whole advantage is the
    success part and the smooth part is 0.
    """
    advantage = group_advantages(rewards, eps)
    if not jerk_in_reward:
        return advantage, advantage, torch.zeros_like(advantage)
    success_part = group_advantages(success.float(), eps)
    return advantage, success_part, advantage - success_part


def decoupled_advantages(
    rewards: torch.Tensor,
    success: torch.Tensor,
    jerk: torch.Tensor,
    weight: float,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Success and smoothness normalised each on its own within the group, then summed.

    rewards (G,) task reward without jerk (binary: 1[success]), success (G,) bool,
    jerk (G,) mean jerk of each trajectory (NaN: not measured) ->
    advantage (G,), success part (G,), smooth part (G,):

        success part = group_advantages(rewards)
        smooth part  = weight * smoothness_advantages(jerk, success & finite jerk)
        advantage    = success part + smooth part

    Failures get no smoothness advantage; an all-success group, where the success part is
    0, still gets the smooth part. It is `chunk_smoothness_credit` with one chunk per
    trajectory.
    """
    one_chunk_each = torch.arange(len(rewards))
    return chunk_smoothness_credit(rewards, success, jerk, one_chunk_each, weight, eps)


def chunk_smoothness_credit(
    rewards: torch.Tensor,
    success: torch.Tensor,
    chunk_jerk: torch.Tensor,
    chunk_traj: torch.Tensor,
    weight: float,
    eps: float = 1e-6,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-chunk advantages: the trajectory's success advantage plus the chunk's own
    smoothness advantage.

    rewards (G,), success (G,) bool of the group's trajectories; chunk_jerk (N,) mean jerk
    of the windows each chunk owns (`metrics.attribution.chunk_jerk` sum / windows; NaN for
    a chunk that owns none); chunk_traj (N,) long, the trajectory of each chunk ->
    advantage (N,), success part (N,), smooth part (N,):

        success part = group_advantages(rewards)[chunk_traj]
        smooth part  = weight * smoothness_advantages(chunk_jerk, eligible)
        eligible     = success[chunk_traj] & finite chunk_jerk

    i.e. a chunk's jerk is compared with all chunks of the group's successes.
    """
    success_part = group_advantages(rewards, eps)[chunk_traj]
    eligible = success.bool()[chunk_traj] & torch.isfinite(chunk_jerk)
    smooth_part = weight * smoothness_advantages(chunk_jerk, eligible, eps)
    return success_part + smooth_part, success_part, smooth_part


def dense_jerk_rewards(
    jerk_sum: torch.Tensor, windows: torch.Tensor, weight: float, jerk_scale: float
) -> torch.Tensor:
    """PPO's dense jerk penalty of one trajectory, one reward per chunk.

    jerk_sum (C,) sum of ||jerk|| over the windows each chunk owns, windows (C,) their
    count (`metrics.attribution.chunk_jerk`) -> (C,):

        r_c = -weight * jerk_sum_c / (sum_c windows_c * jerk_scale)

    so the chunks' penalties add up to weight * mean jerk / jerk_scale, eq. 5's penalty
    with lam = weight, whatever the episode's length; each chunk pays its share of the
    jerk windows it caused. A path with no window gives zeros.
    """
    total = float(windows.sum())
    if total == 0:
        return torch.zeros(len(jerk_sum))
    return -weight * jerk_sum.float() / (total * jerk_scale)


def advantage_split_stats(success_part: torch.Tensor, smooth_part: torch.Tensor) -> dict[str, float]:
    """How much of the advantage smoothness contributes (logged every update).

    success_part, smooth_part (N,) the two parts of the advantage of N chunks ->
    adv_success_abs_mean = mean |success part|, adv_smooth_abs_mean = mean |smooth part|,
    adv_smooth_share = adv_smooth_abs_mean / (adv_success_abs_mean + adv_smooth_abs_mean)
    (NaN when both are 0).
    """
    success_abs = float(success_part.abs().mean()) if len(success_part) else 0.0
    smooth_abs = float(smooth_part.abs().mean()) if len(smooth_part) else 0.0
    total = success_abs + smooth_abs
    return {
        "adv_success_abs_mean": success_abs,
        "adv_smooth_abs_mean": smooth_abs,
        "adv_smooth_share": smooth_abs / total if total > 0 else float("nan"),
    }
