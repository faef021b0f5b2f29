"""The `Policy` interface (DESIGN.md, STYLE.md #4): small enough to implement in an afternoon.

A policy maps a batch of observations to a chunk of k actions. Everything the policy needs
to recompute the log-probability of a chunk it sampled (a flow head's denoising path,
cached encoder features) travels in `ActionChunk.extras`, one tensor per key with the
batch as leading dimension, so collectors can slice and re-batch chunks freely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

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


@runtime_checkable
class Policy(Protocol):
    """What algorithms and collectors rely on."""

    chunk_size: int

    def reset(self) -> None:
        """Forget per-episode state (none for the compact VLA)."""

    def act(self, obs: list[Observation], *, sample: bool) -> ActionChunk:
        """A chunk of actions for each observation; `sample=False` acts greedily."""

    def log_prob(self, obs: list[Observation], chunk: ActionChunk) -> torch.Tensor:
        """(B,) differentiable log-probability of `chunk.actions` (with its extras)."""

    def forward_sft(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float]]:
        """Supervised loss on a batch of demonstration samples, and named metrics."""

    def value(self, obs: list[Observation]) -> torch.Tensor:
        """(B,) state value from the value head; raises if none is attached."""

    def save(self, directory: str | Path) -> None:
        """Write weights (safetensors), config (JSON) and normalizer statistics."""
