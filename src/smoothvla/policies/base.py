"""The `Policy` contract (DESIGN.md, STYLE.md #4 and #12): what rollouts, RL, SFT and
evaluation may call on a policy, small enough to implement in an afternoon.

A policy maps a batch of observations to a chunk of k actions. Everything the policy needs
to recompute the log-probability of a chunk it sampled (a flow head's denoising path,
cached encoder features) travels in `ActionChunk.extras`, one tensor per key with the
batch as leading dimension, so collectors can slice and re-batch chunks freely.

`Policy` is an abstract base class (an `nn.Module`): a subclass that misses an abstract
method cannot be instantiated. Callers never reach around it (no `hasattr`): optional
capabilities (a value head, per-token log-prob factors, prefix conditioning) are methods
whose default raises a `UserError` naming the policy. Device placement, precision and LoRA
are not part of it (`policies/device.py`, `VLAConfig.lora_rank`). docs/policy-contract.md
describes it for people who bring their own VLA.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from smoothvla.errors import UserError
from smoothvla.types import Observation


@dataclass
class ActionChunk:
    """Output of `Policy.act`.

    Attributes:
        actions: (B, k, 7) actions in env units ([-1, 1]), ready to execute in order.
        log_prob: (B,) log-probability of the whole chunk under the policy that sampled it
            (sum over the k steps and 7 dimensions; for the flow head, over the denoising
            path); zeros when acting greedily.
        extras: {name: (B, ...) tensor} what `log_prob` needs besides obs and actions.
    """

    actions: torch.Tensor
    log_prob: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.actions.shape[0]

    def select(self, index: int | slice | torch.Tensor) -> "ActionChunk":
        """A sub-batch (keeps the leading dimension for int indices too)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return ActionChunk(
            self.actions[index],
            self.log_prob[index],
            {k: v[index] for k, v in self.extras.items()},
        )

    @staticmethod
    def cat(chunks: list["ActionChunk"]) -> "ActionChunk":
        """Concatenate chunks along the batch dimension."""
        keys = chunks[0].extras.keys()
        return ActionChunk(
            torch.cat([c.actions for c in chunks]),
            torch.cat([c.log_prob for c in chunks]),
            {k: torch.cat([c.extras[k] for c in chunks]) for k in keys},
        )


@dataclass
class DemoBatch:
    """A batch of B demonstration samples for `Policy.sft_loss`.

    Attributes:
        actions: (B, k, A) target chunks in env units: the k actions that followed each
            sample's observation in its demonstration.
        mask: (B, k) 1.0 on real steps, 0.0 on steps padded past the episode end (they must
            not count in the loss); None = all real.
        obs: B observations as an env returns them (`envs.base.Observation`: rgb, proprio,
            instruction, prev_actions). None when `features` carry them instead.
        features: {name: (B, ...) tensor} inputs the policy computed ahead of time from its
            own frozen encoders (the compact VLA's cached vision features: `CompactVLA.encode`),
            or None. Only a policy that defines such features receives them.
    """

    actions: torch.Tensor
    mask: torch.Tensor | None = None
    obs: list[Observation] | None = None
    features: dict[str, torch.Tensor] | None = None

    def __post_init__(self) -> None:
        if self.obs is None and self.features is None:
            raise ValueError("a DemoBatch needs observations (obs) or precomputed features")

    def __len__(self) -> int:
        return self.actions.shape[0]


@dataclass
class SFTOutput:
    """What `Policy.sft_loss` returns.

    Attributes:
        loss: scalar tensor with its gradient: the supervised loss of the batch.
        metrics: named floats to log (e.g. {"loss": ..., "token_accuracy": ...}).
        predicted: (B, k, A) the policy's predicted chunk in env units, with its gradient
            (SFT's optional smoothness term penalizes its jerk); None when the policy has
            no single prediction (SFT then refuses `smooth_weight` > 0).
    """

    loss: torch.Tensor
    metrics: dict[str, float]
    predicted: torch.Tensor | None = None


class Policy(nn.Module, abc.ABC):
    """The contract between a VLA and smoothvla's rollouts, RL, SFT and evaluation.

    Observations are `envs.base.Observation` dicts: `rgb` {camera: uint8 (H, W, 3)},
    `proprio` float32 (P,) (ee position, ee axis-angle, two gripper fingers), `instruction`
    str, `prev_actions` float32 (H, 7) the last executed actions (zeros at reset). Actions
    are 7-D end-effector deltas in [-1, 1] (env units); a chunk is (k, 7).

    Abstract (every policy implements them):

    - `chunk_size` -> int: k, actions per chunk.
    - `cameras` -> tuple[str, ...]: the cameras it reads from obs['rgb'] (() for none).
    - `reset()`: forget per-episode state.
    - `act(obs, *, sample, prefix=None) -> ActionChunk`: a chunk per observation
      (rollouts, evaluation).
    - `log_prob(obs, chunk) -> (B,)`: differentiable log-probability of stored chunks (RL).
    - `sft_loss(batch: DemoBatch) -> SFTOutput`: supervised loss on demonstrations (SFT).
    - `save(directory)` / classmethod `load(directory) -> Policy`: a checkpoint folder.

    Optional, with a default (override what the policy supports):

    - `image_size` -> int | None: the square image side it wants from the env (None: the
      env's default).
    - `log_prob_terms(obs, chunk) -> (B, T)`: the factors of `log_prob` (GRPO's per-token
      ratios); default: UserError.
    - `has_value_head` -> bool, `attach_value_head()`, `value(obs, extras=None) -> (B,)`
      (PPO's critic); defaults: False, UserError, UserError.
    - `fit_statistics(actions, proprio, chunks)`: take statistics from the SFT data before
      the first step (normalizer, bin ranges); default: nothing.
    - `device` -> torch.device: where its parameters are (CPU without parameters).
    - `lerobot_rtc` -> bool and `act(..., leftover, rtc)`: LeRobot's real-time chunking (the
      evaluation-only 'rtc' execution scheme; the LeRobot SmolVLA adapter only); default:
      absent, and the collector refuses 'rtc' before any episode.

    From `nn.Module`: `parameters()` / `named_parameters()` (what algorithms optimize:
    those with `requires_grad`), `state_dict()` / `load_state_dict()` (resume),
    `train()` / `eval()` (SFT trains in train mode; rollouts, RL and evaluation run in eval
    mode so sampled and recomputed log-probs agree), `to(device)`.

    Who calls what:

    - rollouts (`rollout/collector.py`, `eval/runner.py`, `eval/sampling.py`): `chunk_size`,
      `reset`, `act` (`prefix` only under the 'prefix' execution scheme, `leftover` and `rtc`
      only under 'rtc').
    - RL (`algorithms/common.py`, `grpo.py`, `ppo.py`, `dpo.py`, `distributed.py`,
      `trainer.py`): `parameters`, `named_parameters` (PPO's parameter groups),
      `state_dict` / `load_state_dict`, `log_prob`, `log_prob_terms` (GRPO with
      `ratio_level='token'`), `has_value_head` / `attach_value_head` / `value` (PPO), `save`.
    - SFT (`algorithms/sft.py`): `fit_statistics`, `sft_loss`, `train` / `eval`, `act`
      (evaluation rollouts), `cameras` / `image_size`, `chunk_size`, `parameters`, `save` /
      `load` (resume). The compact VLA also gets its feature cache (`policies/features.py`).
    - evaluation and the commands: `eval`, `act`, `cameras` / `image_size`; `place`
      (`policies/device.py`) for device and precision.
    """

    # -- what rollouts need ------------------------------------------------------------------
    @property
    @abc.abstractmethod
    def chunk_size(self) -> int:
        """k: actions per chunk that `act` returns."""

    @property
    @abc.abstractmethod
    def cameras(self) -> tuple[str, ...]:
        """Camera names the policy reads from obs['rgb'] (and SFT loads from the demos);
        () for a policy that reads proprio and instruction only (the env then renders none)."""

    @property
    def image_size(self) -> int | None:
        """Square image side the policy wants rendered; None: the env's default."""
        return None

    @abc.abstractmethod
    def reset(self) -> None:
        """Forget per-episode state (called before a batch of episodes starts)."""

    @abc.abstractmethod
    def act(self, obs: list[Observation], *, sample: bool,
            prefix: np.ndarray | None = None) -> ActionChunk:
        """A chunk per observation, without gradient.

        Args:
            obs: B observations.
            sample: True samples from the policy's distribution (RL rollouts); False acts
                greedily (evaluation).
            prefix: (B, n, 7) env units with NaN rows for none: the first n actions of each
                chunk are given, not sampled (the 'prefix' execution scheme). A policy without
                prefix conditioning raises UserError when it is not None.

        Returns:
            `ActionChunk`: actions (B, k, 7) in [-1, 1] on the CPU, log_prob (B,) of the sampled
            chunk (zeros when greedy), extras {name: (B, ...)} whatever `log_prob` needs to
            recompute that log-probability exactly (noise, cached features).
        """

    # -- what RL needs -----------------------------------------------------------------------
    @abc.abstractmethod
    def log_prob(self, obs: list[Observation] | None, chunk: ActionChunk) -> torch.Tensor:
        """(B,) log-probability of `chunk.actions` (B, k, 7) given the observations, with its
        gradient, under the current weights; equal to `chunk.log_prob` for a chunk this policy
        just sampled. `obs` may be None when `chunk.extras` carry all the policy needs."""

    def log_prob_terms(self, obs: list[Observation] | None, chunk: ActionChunk) -> torch.Tensor:
        """(B, T) the factors whose sum over T is `log_prob` (e.g. one per action token), for
        GRPO's per-token ratios (`--grpo.ratio-level token`). Default: UserError."""
        raise UserError(f"{type(self).__name__} does not factor its log-probability "
                        "(log_prob_terms): per-token ratios (ratio_level='token') need a "
                        "policy that does; use ratio_level='chunk'")

    @property
    def has_value_head(self) -> bool:
        """Whether `value` works now (PPO attaches a head when it does not). Default: False."""
        return False

    def attach_value_head(self) -> None:
        """Add a fresh value head (PPO's critic on the policy's backbone); it is saved with the
        policy. Default: UserError."""
        raise UserError(f"{type(self).__name__} has no value head and cannot attach one: PPO "
                        "needs a policy that implements attach_value_head() and value()")

    def value(self, obs: list[Observation] | None,
              extras: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """(B,) state value V(s) with its gradient. `extras`: the `ActionChunk.extras` of chunks
        sampled from these observations, which a policy may use instead of re-encoding `obs`
        (then `obs` may be None). Default: UserError."""
        raise UserError(f"{type(self).__name__} has no value head: PPO needs a policy that "
                        "implements value()")

    # -- what SFT needs ----------------------------------------------------------------------
    def fit_statistics(self, actions: np.ndarray, proprio: np.ndarray, chunks: np.ndarray) -> None:
        """Take what the policy learns from the training data before the first SFT step:
        actions (N, 7) and proprio (N, P) of every demo frame, chunks (N, k, 7) the target
        chunk of every frame (env units). Called at the start of every SFT run, resumed ones
        too: a policy that has its statistics keeps them. Default: nothing."""

    @abc.abstractmethod
    def sft_loss(self, batch: DemoBatch) -> SFTOutput:
        """The supervised loss of a batch of demonstrations (behaviour cloning of chunks),
        with its gradient; `batch.mask` removes padded steps. Called in train mode."""

    # -- checkpoints and placement -----------------------------------------------------------
    @abc.abstractmethod
    def save(self, directory: str | Path) -> None:
        """Write a checkpoint folder (weights, config, normalizer statistics) that `load`
        reads back into a policy that acts identically."""

    @classmethod
    @abc.abstractmethod
    def load(cls, directory: str | Path) -> "Policy":
        """The policy saved in `directory` by `save`; UserError for a missing or corrupt one."""

    @property
    def device(self) -> torch.device:
        """Where the parameters are (the CPU for a policy without parameters)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")
