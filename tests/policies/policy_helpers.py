"""Tiny policies (random 'tiny' CNN, 'hash' text embeddings, 32-px images) for logic tests."""

import numpy as np
import torch

from smoothvla.policies import CompactVLA, Normalizer, VLAConfig

torch.set_num_threads(1)

TINY = dict(vision_encoder="tiny", text_encoder="hash", image_size=32, d_model=32, n_layers=1,
            n_heads=2, ff_dim=64, flow_layers=1, flow_steps=4, chunk_size=4, n_bins=16)


def make_obs(n: int, seed: int = 0, size: int = 32) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"rgb": {cam: rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                     for cam in ("agentview", "eye_in_hand")},
             "proprio": rng.normal(size=8).astype(np.float32),
             "instruction": ("put the bowl on the plate", "open the drawer")[i % 2]}
            for i in range(n)]


def make_normalizer(seed: int = 0) -> Normalizer:
    rng = np.random.default_rng(seed)
    return Normalizer.from_arrays(rng.uniform(-0.8, 0.8, (200, 7)), rng.normal(size=(200, 8)))


def tiny_policy(**overrides) -> CompactVLA:
    return CompactVLA(VLAConfig(**{**TINY, **overrides}), make_normalizer())


