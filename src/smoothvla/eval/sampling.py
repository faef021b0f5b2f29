"""Sampled evaluation that does not depend on batching: each episode samples from its own
random stream, seeded by its key.

The collector seeds torch once per `collect` call and batches every live env into one
`policy.act`, so which episodes share a call (which depends on what is left to do, the
batch size and the number of envs) would decide the samples, and a resumed evaluation would
sample other episodes than an uninterrupted one. Here instead:

- `EpisodeSeededFactory` wraps the env factory: each env tags its observations with its
  episode's seed (`episode_seed`: task, init state, env seed, perturbation and the plan's
  sampling seed) and the number of steps taken so far;
- `EpisodeSeededPolicy` wraps the policy: it acts on each observation on its own after
  `torch.manual_seed(chunk_seed(episode seed, step))`, so a chunk's samples depend only on
  the episode and the step it starts at.

The price: one `act` call per env instead of one per round when sampling (the envs still
run in parallel); greedy evaluation is not wrapped.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Callable

TAG = "_eval_episode"
"""Observation key holding (episode seed, steps taken); removed before the policy sees it."""


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed from JSON-able parts, the same in every process and Python version."""
    text = json.dumps(parts, separators=(",", ":"))
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def episode_seed(task_id: str, init_id: int, seed: int, perturbation: str, strength: float,
                 sampling_seed: int) -> int:
    """Seed of one evaluation episode's samples, from its key and the sampling seed."""
    return stable_seed("episode", task_id, int(init_id), int(seed), perturbation,
                       float(strength), int(sampling_seed))


class _SeededEnv:
    """A TaskEnv whose observations carry `TAG`; everything else is the wrapped env's."""

    def __init__(self, env: Any, task_id: str, perturbation: str, strength: float,
                 sampling_seed: int) -> None:
        self._env = env
        self._id = (task_id, perturbation, strength, sampling_seed)
        self._episode = 0
        self._steps = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env, name)

    def reset(self, seed: int | None = None, init_id: int = 0):
        task_id, perturbation, strength, sampling_seed = self._id
        obs, info = self._env.reset(seed=seed, init_id=init_id)
        self._episode = episode_seed(task_id, init_id, -1 if seed is None else seed,
                                     perturbation, strength, sampling_seed)
        self._steps = 0
        return {**obs, TAG: (self._episode, 0)}, info

    def step(self, action, render: bool = True):
        obs, reward, terminated, truncated, info = self._env.step(action, render=render)
        self._steps += 1
        return {**obs, TAG: (self._episode, self._steps)}, reward, terminated, truncated, info

    def close(self) -> None:
        self._env.close()


@dataclass(frozen=True)
class EpisodeSeededFactory:
    """Env factory whose envs tag observations for `EpisodeSeededPolicy` (picklable when
    `factory` is; None: `smoothvla.envs.make`)."""

    factory: Callable[..., Any] | None
    perturbation: str
    strength: float
    sampling_seed: int

    def __call__(self, task_id: str, **options: Any) -> _SeededEnv:
        if self.factory is None:
            from smoothvla.envs import make

            env = make(task_id, **options)
        else:
            env = self.factory(task_id, **options)
        return _SeededEnv(env, task_id, self.perturbation, self.strength, self.sampling_seed)


class EpisodeSeededPolicy:
    """Acts on each tagged observation alone, seeded by its episode and step (see the
    module doc); the collector's `chunk_size`, `reset` and `act` (of `Policy`) are all it
    offers. A plain wrapper, not a `Policy`: this module imports no torch at the top, so env
    workers that unpickle `EpisodeSeededFactory` do not load it."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.chunk_size = policy.chunk_size
        self.lerobot_rtc = getattr(policy, "lerobot_rtc", False)

    def reset(self) -> None:
        self.policy.reset()

    def act(self, obs: list[dict[str, Any]], *, sample: bool, prefix: Any = None,
            leftover: Any = None, rtc: Any = None) -> Any:
        import torch  # here, so env workers that unpickle the factory do not load torch

        from smoothvla.policies.base import ActionChunk

        chunks = []
        for i, o in enumerate(obs):
            if TAG not in o:
                raise RuntimeError("observation without its episode tag: the envs must come "
                                   "from EpisodeSeededFactory")
            episode, step = o[TAG]
            torch.manual_seed(stable_seed("chunk", episode, step))
            plain = {k: v for k, v in o.items() if k != TAG}
            extra = {} if prefix is None else {"prefix": prefix[i : i + 1]}
            if leftover is not None:
                extra.update(leftover=leftover[i : i + 1], rtc=rtc)
            chunks.append(self.policy.act([plain], sample=sample, **extra))
        return ActionChunk.cat(chunks)
