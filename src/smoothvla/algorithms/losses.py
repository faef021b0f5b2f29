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
    """Group-relative advantages, seed 000 eq. 1 / seed 004 eq. 1.

    rewards (G,) -> (G,): (R_i - mean R) / (std R + eps), with the population standard
    deviation (ddof = 0, so a group of two gives exactly +-1 when eps is 0). A group whose
    rewards are all equal (all-fail, or all-success under a binary reward) gets zeros:
    no signal, seed 004 §7.3.
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
    """Generalised advantage estimation (Schulman et al. 2015; seed 003 App. A.1 eq. 2).

    rewards (T,), values (T+1,) with values[T] the bootstrap value after the last step,
    dones (T,) with dones[t] = 1 when the episode ended after step t (no bootstrapping
    across it) -> advantages (T,), returns (T,) = advantages + values[:T].

        delta_t = r_t + gamma * V_{t+1} * (1 - done_t) - V_t
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1}

    gamma = lam = 1 is the ORZ variant (seed 003 §4.1): A_t = (sum of future rewards) - V_t.
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
    "clip-higher"; eps_low = eps_high is seed 000 eq. 1).

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
    """DPO / TPO loss on trajectory log-probs (seed 003 App. A.1 eq. 7).

    logp_w, logp_l (B,): log pi_theta of the preferred and rejected trajectories (sums
    over their chunks); ref_w, ref_l (B,): the same under the frozen reference ->
    loss (), margin (B,) with

        margin = beta * ((logp_w - ref_w) - (logp_l - ref_l))
        loss   = -mean(log sigmoid(margin))
    """
    margin = beta * ((logp_w - ref_w) - (logp_l - ref_l))
    return -F.logsigmoid(margin).mean(), margin


def weight_drift(params: Iterable[torch.Tensor], ref_params: Iterable[torch.Tensor]) -> float:
    """Relative weight change from a reference checkpoint (seed 004 §6.2's "weight drift").

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
