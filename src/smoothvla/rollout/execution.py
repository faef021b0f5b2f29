"""How a policy's action chunks become the actions an episode executes.

The policy predicts a chunk of k actions per call. An execution scheme decides how many of
them run before the next call (`steps`) and which action runs at each control step when
several chunks cover it:

- `chunk`: all k actions of each chunk, then a new chunk (what RL has always done);
- `receding`: the first `steps` actions of each chunk, then a new one (receding horizon);
- `blend`: receding horizon whose first `blend_steps` actions cross-fade from the previous
  chunk's plan into the new chunk, with linear weights (j + 1) / (blend_steps + 1) on the new
  chunk at its step j;
- `ensemble`: temporal ensembling (ACT, Zhao et al. 2023, "Learning Fine-Grained Bimanual
  Manipulation with Low-Cost Hardware"): a new chunk every `steps` (default 1) control steps;
  the action at time t is the weighted mean of every chunk's prediction for t, with weight
  exp(-decay * i) for the i-th oldest of them (ACT's m = 0.01: nearly uniform);
- `prefix`: real-time-chunking-style prefix conditioning, flow head only: the first
  `prefix_steps` actions of each new chunk are inpainted with the previous chunk's plan for
  those steps (not re-sampled), the rest of the chunk is generated conditioned on them, and
  the first `steps` actions run. The joint between two plans then lies inside one denoised
  chunk.
- `rtc`: LeRobot's real-time chunking (`lerobot.policies.rtc`), LeRobot SmolVLA adapter only:
  a new chunk every `steps` control steps, whose denoiser is guided towards the previous
  chunk's k - `steps` not-yet-executed actions (LeRobot's `RTCProcessor`: a soft inpainting,
  with weights 1 on the first `rtc_delay` of them, then LeRobot's schedule down to 0 at the
  end of the leftover); the first `steps` actions run.

Log-probabilities for RL: under `chunk`, `receding` and `prefix` every executed action is an
action the policy sampled, once, in the chunk whose log-probability the ratio uses (a chunk's
unexecuted tail is part of the sampled chunk; under `prefix` the inpainted steps are excluded
from the new chunk's density, since they were sampled in the chunk before). `blend` and
`ensemble` execute averages of several chunks, which no chunk's log-probability describes:
they are for evaluation only (`ExecutionConfig.check_for_rl` refuses them). So is `rtc`: its
guided velocity adds a vector-Jacobian product through the denoiser towards the previous chunk,
which is not the Flow-SDE whose density the policy's log-probability computes (`prefix` is the
exact alternative for RL).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMES = ("chunk", "receding", "blend", "ensemble", "prefix", "rtc")
RTC_SCHEDULES = ("ZEROS", "ONES", "LINEAR", "EXP")  # LeRobot's RTCAttentionSchedule
RL_SCHEMES = ("chunk", "receding", "prefix")


@dataclass(frozen=True)
class ExecutionConfig:
    """Which actions of the policy's chunks an episode executes (rollout/execution.py)."""

    scheme: str = "chunk"
    """chunk | receding | blend | ensemble | prefix | rtc (see docs/rl.md, "Executing chunks");
    blend, ensemble and rtc are for evaluation only (rtc: LeRobot's real-time chunking, whose
    guided denoiser has no density that RL's log-probabilities could use; RL: prefix)."""
    steps: int = 0
    """Actions executed per policy call; 0: the scheme's default (chunk: k; receding, blend,
    prefix, rtc: k / 2; ensemble: 1)."""
    blend_steps: int = 0
    """blend: steps over which the previous plan fades into the new chunk; 0: k - steps (the
    whole overlap)."""
    ensemble_decay: float = 0.01
    """ensemble: weight exp(-decay * i) on the i-th oldest prediction of an action (ACT's m;
    > 0 trusts the oldest prediction most, < 0 the newest)."""
    prefix_steps: int = 1
    """prefix: how many steps of each new chunk are inpainted from the previous plan."""
    rtc_delay: int = 0
    """rtc: LeRobot's `inference_delay`: how many leading actions of the previous chunk's
    leftover guide the new chunk with full weight (rollouts here are synchronous: no action
    runs while the policy computes)."""
    rtc_max_guidance_weight: float = 10.0
    """rtc: LeRobot's `RTCConfig.max_guidance_weight` (the clamp on the guidance weight)."""
    rtc_schedule: str = "LINEAR"
    """rtc: LeRobot's `RTCConfig.prefix_attention_schedule` (ZEROS, ONES, LINEAR, EXP): how
    the guidance weights fall from 1 after the delay to 0 at the end of the leftover."""

    def __post_init__(self) -> None:
        from smoothvla.errors import UserError

        if self.scheme not in SCHEMES:
            raise UserError(f"unknown execution scheme {self.scheme!r}; choose one of {', '.join(SCHEMES)}")
        if self.steps < 0 or self.blend_steps < 0 or self.prefix_steps < 1:
            raise UserError("execution steps and blend_steps must be >= 0 and prefix_steps >= 1, "
                            f"got {self.steps}, {self.blend_steps}, {self.prefix_steps}")
        if not np.isfinite(self.ensemble_decay):
            raise UserError(f"ensemble_decay must be a finite number, got {self.ensemble_decay}")
        if self.rtc_delay < 0 or not self.rtc_max_guidance_weight > 0:
            raise UserError(f"rtc_delay must be >= 0 and rtc_max_guidance_weight > 0, got "
                            f"{self.rtc_delay}, {self.rtc_max_guidance_weight}")
        if self.rtc_schedule not in RTC_SCHEDULES:
            raise UserError(f"unknown rtc_schedule {self.rtc_schedule!r}; choose one of "
                            f"{', '.join(RTC_SCHEDULES)}")
        if self.scheme == "chunk" and self.steps:
            raise UserError("scheme 'chunk' executes whole chunks: give steps only with receding, "
                            "blend, ensemble, prefix or rtc")

    @classmethod
    def parse(cls, spec: str) -> "ExecutionConfig":
        """'SCHEME' or 'SCHEME:STEPS' (e.g. 'ensemble', 'receding:4'), as study configs
        name schemes; the other fields keep their defaults."""
        from smoothvla.errors import UserError

        scheme, _, steps = spec.partition(":")
        if steps and not steps.isdigit():
            raise UserError(f"bad execution {spec!r}: use SCHEME or SCHEME:STEPS, e.g. receding:4")
        return cls(scheme, int(steps or 0))

    def steps_for(self, chunk_size: int) -> int:
        """Actions executed per policy call for chunks of `chunk_size`; checks the fit."""
        from smoothvla.errors import UserError

        default = {"chunk": chunk_size, "ensemble": 1}.get(self.scheme, max(1, chunk_size // 2))
        steps = self.steps or default
        if steps > chunk_size:
            raise UserError(f"execution steps {steps} exceed the policy's chunk size {chunk_size}")
        if self.scheme == "blend" and steps == chunk_size:
            raise UserError("blend needs steps < chunk size: the overlap is what it blends")
        if self.scheme == "blend" and self.blend_steps > chunk_size - steps:
            raise UserError(f"blend_steps {self.blend_steps} exceeds the overlap "
                            f"k - steps = {chunk_size - steps}")
        if self.scheme == "prefix" and self.prefix_steps >= chunk_size - steps + 1:
            raise UserError(f"prefix_steps {self.prefix_steps} must be <= k - steps = "
                            f"{chunk_size - steps}: the previous plan must cover the prefix")
        if self.scheme == "rtc" and steps == chunk_size:
            raise UserError("rtc needs steps < chunk size: the previous chunk's unexecuted "
                            "actions are what guides the next one")
        if self.scheme == "rtc" and self.rtc_delay > chunk_size - steps:
            raise UserError(f"rtc_delay {self.rtc_delay} exceeds the previous chunk's leftover "
                            f"k - steps = {chunk_size - steps}")
        return steps

    def check_for_rl(self) -> None:
        """Refuse schemes whose executed actions no sampled chunk's log-probability describes."""
        from smoothvla.errors import UserError

        if self.scheme == "rtc":
            raise UserError("execution scheme 'rtc' (LeRobot's real-time chunking) is for "
                            "evaluation only: its denoiser is guided towards the previous chunk "
                            "by a vector-Jacobian product, which is not the Flow-SDE whose "
                            "density the RL ratio uses; for RL use 'prefix' (prefix "
                            "conditioning, exact log-probabilities)")
        if self.scheme not in RL_SCHEMES:
            raise UserError(f"execution scheme {self.scheme!r} executes averages of several chunks, "
                            "so the RL ratio's log-probabilities would not describe the executed "
                            f"actions: it is for evaluation only (RL: {', '.join(RL_SCHEMES)})")

    def settings(self) -> dict[str, object]:
        """The fields that change what runs, for result keys and logs."""
        out: dict[str, object] = {"scheme": self.scheme, "steps": self.steps}
        if self.scheme == "blend":
            out["blend_steps"] = self.blend_steps
        if self.scheme == "ensemble":
            out["ensemble_decay"] = self.ensemble_decay
        if self.scheme == "prefix":
            out["prefix_steps"] = self.prefix_steps
        if self.scheme == "rtc":
            out.update(rtc_delay=self.rtc_delay, rtc_schedule=self.rtc_schedule,
                       rtc_max_guidance_weight=self.rtc_max_guidance_weight)
        return out

    def rtc_settings(self) -> dict[str, object]:
        """LeRobot's RTC settings for `Policy.act(..., rtc=...)`: `inference_delay`,
        `max_guidance_weight`, `prefix_attention_schedule` (LeRobot's names)."""
        return {"inference_delay": self.rtc_delay,
                "max_guidance_weight": self.rtc_max_guidance_weight,
                "prefix_attention_schedule": self.rtc_schedule}


class ActionPlan:
    """One episode's chunks and the actions they imply (one object per episode).

    `add(t, chunk)` records a chunk (k, A) predicted at control step t; `actions(t, n)`
    returns the n actions to execute at steps t .. t + n - 1; `prefix(t, n)` the current
    plan's actions for those steps (for prefix conditioning), or None before the first chunk.
    """

    def __init__(self, cfg: ExecutionConfig, chunk_size: int):
        self.cfg = cfg
        self.k = chunk_size
        self.steps = cfg.steps_for(chunk_size)
        self.blend = cfg.blend_steps or chunk_size - self.steps
        self.chunks: list[tuple[int, np.ndarray]] = []  # (start step, (k, A)), oldest first

    def add(self, t: int, chunk: np.ndarray) -> None:
        if chunk.shape[0] != self.k:
            raise ValueError(f"chunk has {chunk.shape[0]} actions, the plan expects {self.k}")
        self.chunks.append((t, np.asarray(chunk, dtype=np.float64)))
        self.chunks = [(s, c) for s, c in self.chunks if s + self.k > t]  # drop expired ones

    def prefix(self, t: int, n: int) -> np.ndarray | None:
        """The newest chunk's plan for steps t .. t + n - 1 ((n, A)), or None if it has none."""
        if not self.chunks:
            return None
        start, chunk = self.chunks[-1]
        if t + n > start + self.k:
            return None
        return chunk[t - start : t - start + n]

    def actions(self, t: int, n: int) -> np.ndarray:
        """(n, A) actions for steps t .. t + n - 1 under the scheme."""
        return np.stack([self._action(t + j) for j in range(n)])

    def _action(self, t: int) -> np.ndarray:
        start, newest = self.chunks[-1]
        scheme = self.cfg.scheme
        if scheme == "ensemble":
            covering = [c[t - s] for s, c in self.chunks if s <= t < s + self.k]
            weights = np.exp(-self.cfg.ensemble_decay * np.arange(len(covering)))
            return np.average(np.stack(covering), axis=0, weights=weights)
        j = t - start
        if scheme == "blend" and len(self.chunks) > 1 and j < self.blend:
            old_start, old = self.chunks[-2]
            if t - old_start < self.k:
                w = (j + 1) / (self.blend + 1)
                return (1 - w) * old[t - old_start] + w * newest[j]
        return newest[j]
