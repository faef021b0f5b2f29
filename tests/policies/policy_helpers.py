"""Tiny policies (random 'tiny' CNN, 'hash' text embeddings, 32-px images) for logic tests."""

from dataclasses import replace

import numpy as np
import torch

from smoothvla.policies import CompactVLA, Normalizer, VLAConfig
from smoothvla.policies.head_configs import (AuxTokenConfig, DCTHeadConfig, FlowHeadConfig,
                                             GaussianHeadConfig, TokenHeadConfig)

torch.set_num_threads(1)

TINY = dict(vision_encoder="tiny", text_encoder="hash", image_size=32, d_model=32, n_layers=1,
            n_heads=2, ff_dim=64, chunk_size=4, flow=FlowHeadConfig(layers=1, steps=4))
"""The tiny policy with the default (flow) head."""
TINY_HEADS = {"token": TokenHeadConfig(bins=16), "dct": DCTHeadConfig(bins=16),
              "flow": FlowHeadConfig(layers=1, steps=4), "gaussian": GaussianHeadConfig()}
"""Each head's settings in a tiny policy (16 bins, a 1-layer flow expert of 4 steps)."""


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


def tiny_config(head: str = "flow", aux_token: dict | None = None, **overrides) -> VLAConfig:
    """A tiny policy's config: `overrides` are VLAConfig fields, the head's own settings a
    dict over its tiny ones (`tiny_config("dct", dct={"coefficients": 2})`), `aux_token` a
    dict over an auxiliary token head of 16 bins."""
    settings = replace(TINY_HEADS[head], **overrides.pop(head, {})) if head in TINY_HEADS else None
    aux = AuxTokenConfig(**{"bins": 16, **aux_token}) if aux_token else None
    base = {k: v for k, v in TINY.items() if k != "flow"}
    return VLAConfig(**{**base, **overrides}).with_head(head, settings, aux)


def tiny_policy(head: str = "flow", **overrides) -> CompactVLA:
    return CompactVLA(tiny_config(head, **overrides), make_normalizer())


OLD_FLAT_DEFAULTS = dict(n_bins=256, temperature=1.0, dct_coefficients=4, dct_gripper_steps=True,
                         flow_steps=10, flow_sde_sigma=0.5, flow_layers=2, flow_context=False,
                         aux_token_weight=0.0, insulate_backbone=False, gaussian_state_std=False,
                         gaussian_init_log_std=-1.0)
"""The head fields of the flat VLAConfig (checkpoint format version 1) and their defaults."""


def flat_config(cfg: VLAConfig) -> dict:
    """`cfg` as checkpoints written before the per-head configs hold it (format version 1):
    every head's settings at the top level, those of heads the policy lacks at their defaults."""
    from dataclasses import asdict

    from smoothvla.policies.head_configs import FLAT_FIELDS

    out = {k: v for k, v in asdict(cfg).items() if k not in FLAT_FIELDS}
    out.update(OLD_FLAT_DEFAULTS)
    for name, fields in FLAT_FIELDS.items():
        if name == cfg.head or (name == "aux_token" and cfg.aux_token.enabled):
            out.update({old: getattr(getattr(cfg, name), new) for new, old in fields.items()})
    return out
