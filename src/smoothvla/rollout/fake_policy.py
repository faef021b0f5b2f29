"""A tiny Gaussian chunk policy implementing `Policy`, for tests and benchmarks of algorithms.

It reads the privileged `state` of `fake_env.PointMassEnv` observations (position, goal
offset), passes it through a frozen random encoder (stands in for a frozen VLA backbone
part) and a trainable trunk, and outputs a diagonal Gaussian over a chunk of k 7-D actions
with a trainable state-independent log-std. A value head on the trunk serves PPO.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from smoothvla.errors import UserError
from smoothvla.policies.base import ActionChunk, DemoBatch, Policy, SFTOutput
from smoothvla.types import ACTION_DIM, Observation

STATE_DIM = 6


class GaussianChunkPolicy(Policy):
    """Diagonal Gaussian over (k, 7) action chunks; `encoder` is frozen, the rest trains."""

    def __init__(
        self, chunk_size: int = 4, hidden: int = 32, init_std: float = 0.5, seed: int = 0
    ) -> None:
        super().__init__()
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.config = {
            "chunk_size": chunk_size,
            "hidden": hidden,
            "init_std": init_std,
            "seed": seed,
        }
        self._chunk_size = chunk_size
        generator = torch.Generator().manual_seed(seed)
        self.encoder = nn.Linear(STATE_DIM, hidden)
        self.trunk = nn.Linear(hidden, hidden)
        self.mean_head = nn.Linear(hidden, chunk_size * ACTION_DIM)
        self.value_head = nn.Linear(hidden, 1)
        with torch.no_grad():
            for layer in (self.encoder, self.trunk, self.mean_head, self.value_head):
                layer.weight.copy_(torch.randn(layer.weight.shape, generator=generator) * 0.3)
                layer.bias.zero_()
            self.mean_head.weight.mul_(0.1)
        self.log_std = nn.Parameter(torch.full((chunk_size * ACTION_DIM,), math.log(init_std)))
        self.encoder.requires_grad_(False)

    @property
    def chunk_size(self) -> int:
        return self._chunk_size

    @property
    def cameras(self) -> tuple[str, ...]:
        return ()  # reads the privileged obs['state']

    @property
    def has_value_head(self) -> bool:
        return True

    def reset(self) -> None:
        pass

    def _features(self, obs: list[Observation]) -> torch.Tensor:
        if not obs:
            raise ValueError("empty observation batch")
        state = torch.as_tensor(np.stack([o["state"] for o in obs]), dtype=torch.float32)
        return torch.tanh(self.trunk(torch.tanh(self.encoder(state * 4.0))))

    def _distribution(self, obs: list[Observation]) -> torch.distributions.Normal:
        mean = self.mean_head(self._features(obs)).view(-1, self.chunk_size, ACTION_DIM)
        std = self.log_std.exp().view(self.chunk_size, ACTION_DIM).expand_as(mean)
        return torch.distributions.Normal(mean, std)

    def act(self, obs: list[Observation], *, sample: bool, prefix: np.ndarray | None = None) -> ActionChunk:
        if prefix is not None:
            raise UserError("GaussianChunkPolicy has no prefix conditioning")
        dist = self._distribution(obs)
        if sample:
            noise = torch.randn(dist.mean.shape)
            actions = dist.mean + dist.stddev * noise
            log_prob = dist.log_prob(actions).sum(dim=(1, 2))
        else:
            noise = torch.zeros_like(dist.mean)
            actions = dist.mean
            log_prob = torch.zeros(len(obs))
        return ActionChunk(actions.detach(), log_prob.detach(), {"noise": noise})

    def log_prob(self, obs: list[Observation], chunk: ActionChunk) -> torch.Tensor:
        return self.log_prob_terms(obs, chunk).sum(-1)

    def log_prob_terms(self, obs: list[Observation], chunk: ActionChunk) -> torch.Tensor:
        return self._distribution(obs).log_prob(chunk.actions).flatten(1)

    def value(self, obs: list[Observation] | None,
              extras: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        return self.value_head(self._features(obs)).squeeze(-1)

    def sft_loss(self, batch: DemoBatch) -> SFTOutput:
        mean = self._distribution(batch.obs).mean
        loss = (mean - torch.as_tensor(batch.actions, dtype=torch.float32)).pow(2).mean()
        return SFTOutput(loss, {"mse": float(loss)}, mean)

    def save(self, directory: str | Path) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in self.state_dict().items()},
            directory / "model.safetensors",
        )
        (directory / "config.json").write_text(json.dumps(self.config))

    @classmethod
    def load(cls, directory: str | Path) -> "GaussianChunkPolicy":
        from safetensors.torch import load_file

        directory = Path(directory)
        policy = cls(**json.loads((directory / "config.json").read_text()))
        policy.load_state_dict(load_file(directory / "model.safetensors"))
        return policy


def save_tiny_vla(path: str | Path, chunk_size: int = 8, image_size: int = 32,
                  head: str = "flow") -> Path:
    """An untrained compact VLA small enough for tests and benchmarks (tiny vision encoder,
    hashed text, d = 32, the given action head; token bins: 16), saved at `path` with a seeded
    random normalizer; returns `path`."""
    from smoothvla.policies import CompactVLA, Normalizer, VLAConfig
    from smoothvla.policies.head_configs import TokenHeadConfig

    rng = np.random.default_rng(0)
    CompactVLA(VLAConfig(vision_encoder="tiny", text_encoder="hash", image_size=image_size,
                         d_model=32, n_layers=1, n_heads=2, ff_dim=64, chunk_size=chunk_size
                         ).with_head(head, TokenHeadConfig(bins=16) if head == "token" else None),
               Normalizer.from_arrays(rng.uniform(-1, 1, (50, 7)), rng.normal(size=(50, 8)))
               ).save(path)
    return Path(path)
