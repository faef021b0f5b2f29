"""The compact VLA: frozen pretrained encoders, a small fusion transformer, an action head.

Tokens, in order: per camera grid*grid vision tokens (EfficientNet-Lite0 final feature map,
+ camera and position embeddings), one language token (MiniLM sentence embedding), one
proprio token, with `prev_actions` > 0 one token of the last n executed actions, then k
learned action queries. A bidirectional transformer mixes them; the
hidden states at the k query positions, h (B, k, d), feed the action head (a flow head with
`flow.context` also cross-attends to the states at every token), and h[:, 0] (the first
action position, RL4VLA §4.2) feeds the optional value head.

Frozen-encoder features ("vis_feat": the vision trunk's output, "lang_emb", raw "proprio",
raw "prev_actions" when the policy reads them)
are returned by `encode` and stored in `ActionChunk.extras` by `act`, so `log_prob` during
RL updates starts from them and never re-runs the CNN or the sentence encoder (pass the
chunk; `obs` may then be None). SFT passes the same dict, pre-computed from a disk cache,
as `DemoBatch.features`.

Devices: the module runs where its parameters are (`policy.to("cuda")`). Inputs (numpy
observations, cached features, chunks) are moved there on entry; `act` returns its chunk on
the CPU (rollout workers, trajectories and checkpoints never hold device tensors), while
`log_prob`, `value` and `sft_loss` return tensors on the device with their gradient.
`set_precision("bf16")` runs the vision encoder and the fusion transformer under bf16
autocast on CUDA; the action and value heads always compute in float32, so sampled and
recomputed log-probabilities stay float32 numbers (docs/scaling.md measures the gap).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from smoothvla.errors import UserError, UserFileNotFoundError, check_fields
from smoothvla.policies.base import ActionChunk, DemoBatch, Policy, SFTOutput
from smoothvla.policies.encoders import TextEncoder, VisionEncoder
from smoothvla.policies.head_configs import (HEAD_CONFIGS, AuxTokenConfig, DCTHeadConfig,
                                             FlowHeadConfig, GaussianHeadConfig, TokenHeadConfig,
                                             SAMPLING_OVERRIDES, nest_flat_fields)
from smoothvla.policies.heads import Block, DCTHead, FlowHead, GaussianHead, TokenHead, ValueHead
from smoothvla.policies.normalizer import MissingStatisticsError, Normalizer
from smoothvla.types import Observation

FORMAT = "smoothvla-compact-vla"
FORMAT_VERSION = 2
"""Version 2: each head's settings in its own config (`head_configs.py`). Version 1, the flat
layout (`n_bins`, `flow_steps`, ... at the top level), is read and migrated on load."""
READ_VERSIONS = (1, 2)
HEADS = tuple(HEAD_CONFIGS)
"""The action heads ('token', 'dct', 'flow', 'gaussian'); each has its config field of that name."""
FEATURE_KEYS = ("vis_feat", "lang_emb", "proprio")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
# LoRA targets: name -> regex over module names (peft full-matches it).
LORA_TARGETS = {
    "fusion": r"fusion\.\d+\.(qkv|proj|fc1|fc2)",
    "expert": r"head\.blocks\.\d+\.(qkv|proj|fc1|fc2|cross_q|cross_kv|cross_proj)",
    "vision": r"vision\.tail_net\.\d+\.(_expand_conv|_project_conv|conv)",
}


@dataclass
class VLAConfig:
    """Architecture of the compact VLA (saved as JSON next to the weights)."""

    cameras: tuple[str, ...] = ("agentview", "eye_in_hand")
    """Camera names, looked up in obs['rgb'] as NAME or NAME_rgb (HDF5: obs/NAME_rgb)."""
    image_size: int = 128
    """Images are resized to this square size before the vision encoder."""
    vision_encoder: str = "efficientnet-lite0"
    """'efficientnet-lite0' (ImageNet weights, offline) or 'tiny' (random, for tests)."""
    vision_trainable_blocks: int = 0
    """How many of the last MBConv blocks run after the cache point (tuned in full fine-tuning,
    LoRA targets with 'vision'); 0 = encoder frozen."""
    vision_grid: int = 4
    """Vision tokens per camera = grid * grid (the final feature map average-pooled)."""
    text_encoder: str = "minilm"
    """'minilm' (all-MiniLM-L6-v2, offline) or 'hash' (random embedding per string, for tests)."""
    proprio_dim: int = 8
    """Values of obs['proprio']: ee position (3), ee axis-angle (3), two gripper fingers (2)."""
    proprio_rot6d: bool = True
    """Feed the orientation (proprio[3:6], axis-angle) as the first two columns of its rotation
    matrix: axis-angle flips sign near angle pi, where a downward-pointing gripper sits."""
    action_dim: int = 7
    """Action dimensions: 3 position and 3 rotation deltas, 1 gripper (LIBERO's convention)."""
    chunk_size: int = 8
    """Actions predicted per observation (k)."""
    d_model: int = 128
    """Width of the fusion transformer (and of the flow head's blocks)."""
    n_layers: int = 3
    """Blocks of the fusion transformer."""
    n_heads: int = 4
    """Attention heads per block (fusion transformer and flow head)."""
    ff_dim: int = 256
    """Hidden width of each block's MLP."""
    head: str = "flow"
    """Action head: 'token' (bins per step and dimension), 'flow' (flow matching + Flow-SDE),
    'gaussian', 'dct' (tokens of the chunk's first DCT coefficients: smooth by construction;
    its bin ranges are fitted by SFT, see `fit_action_head`). Its settings are the field of
    the same name; those of the other heads must stay at their defaults."""
    token: TokenHeadConfig = field(default_factory=TokenHeadConfig)
    """Token head settings (head 'token')."""
    dct: DCTHeadConfig = field(default_factory=DCTHeadConfig)
    """DCT head settings (head 'dct')."""
    flow: FlowHeadConfig = field(default_factory=FlowHeadConfig)
    """Flow head settings (head 'flow')."""
    gaussian: GaussianHeadConfig = field(default_factory=GaussianHeadConfig)
    """Gaussian head settings (head 'gaussian')."""
    aux_token: AuxTokenConfig = field(default_factory=AuxTokenConfig)
    """An auxiliary token head trained beside a flow, Gaussian or DCT head (SFT co-training);
    off at weight 0."""
    prev_actions: int = 0
    """Feed the last n executed actions (obs['prev_actions'], zeros before the episode start;
    normalized with the action statistics) to the backbone as one extra token, so a new chunk
    can continue the motion it follows; 0 = off (the token sequence of older checkpoints)."""
    value_head: bool = False
    """Attach the value head (PPO)."""
    lora_rank: int = 0
    """0 = full fine-tuning of the fusion transformer; > 0 = LoRA adapters of this rank."""
    lora_alpha: float = 16.0
    """LoRA scaling: the adapters' update is multiplied by lora_alpha / lora_rank."""
    lora_targets: tuple[str, ...] = ("fusion",)
    """Where LoRA goes: any of 'fusion', 'expert' (flow head blocks), 'vision' (tail convs)."""
    seed: int = 0
    """Seed of the initial weights."""

    def __post_init__(self) -> None:
        self.cameras = tuple(self.cameras)
        self.lora_targets = tuple(self.lora_targets)
        for name, cls in {**HEAD_CONFIGS, "aux_token": AuxTokenConfig}.items():
            if isinstance(getattr(self, name), dict):  # from JSON
                setattr(self, name, cls(**getattr(self, name)))
            if not isinstance(getattr(self, name), cls):
                raise UserError(f"policy config field {name} must be a {cls.__name__}, got "
                                f"{type(getattr(self, name)).__name__}")
        check_fields(self, image_size=">= 8", vision_trainable_blocks=">= 0", vision_grid=">= 1",
                     proprio_dim=">= 1", action_dim=">= 1",
                     chunk_size=">= 1", d_model=">= 1", n_layers=">= 1", n_heads=">= 1",
                     ff_dim=">= 1", lora_rank=">= 0", lora_alpha="> 0")
        if self.head not in HEADS:
            raise UserError(f"unknown head {self.head!r}; choose one of {HEADS}")
        for name, cls in HEAD_CONFIGS.items():
            changed = _changed(getattr(self, name), cls())
            if name != self.head and changed:
                raise UserError(f"{', '.join(changed)} {'sets' if len(changed) == 1 else 'set'} "
                                f"the {name} head, but the policy's head is {self.head!r}: drop "
                                f"{'it' if len(changed) == 1 else 'them'} or choose head "
                                f"{name!r}")
        if self.aux_token.enabled and self.head == "token":
            raise UserError("aux_token adds a token head beside a flow, Gaussian or DCT head; "
                            "the token head needs none")
        if not self.cameras:
            raise UserError("need at least one camera")
        if self.proprio_rot6d and self.proprio_dim < 6:
            raise UserError("proprio_rot6d needs proprio[3:6] to be an axis-angle orientation")
        if self.head == "dct" and not 1 <= self.dct.coefficients <= self.chunk_size:
            raise UserError(f"dct.coefficients must be in [1, chunk_size={self.chunk_size}], "
                            f"got {self.dct.coefficients}")
        if not 0 <= self.prev_actions <= self.chunk_size:
            raise UserError(f"prev_actions must be in [0, chunk_size={self.chunk_size}], "
                            f"got {self.prev_actions}")
        bad = [t for t in self.lora_targets if t not in LORA_TARGETS]
        if bad:
            raise UserError(f"unknown lora_targets {bad}; choose from {list(LORA_TARGETS)}")

    @property
    def head_config(self) -> TokenHeadConfig | DCTHeadConfig | FlowHeadConfig | GaussianHeadConfig:
        """The settings of the acting head (the field named by `head`)."""
        return getattr(self, self.head)

    def with_head(self, head: str, settings: Any = None,
                  aux_token: AuxTokenConfig | None = None) -> "VLAConfig":
        """A copy with another action head: `settings` its config (default: that head's
        defaults), every other head at its defaults, the auxiliary token head `aux_token`
        (default: none); the rest of the architecture unchanged."""
        if head not in HEADS:
            raise UserError(f"unknown head {head!r}; choose one of {HEADS}")
        if settings is not None and not isinstance(settings, HEAD_CONFIGS[head]):
            raise UserError(f"the {head} head's settings are a {HEAD_CONFIGS[head].__name__}, "
                            f"got {type(settings).__name__}")
        heads = {name: cls() for name, cls in HEAD_CONFIGS.items()}
        if settings is not None:
            heads[head] = settings
        return replace(self, head=head, aux_token=aux_token or AuxTokenConfig(), **heads)

    def to_dict(self) -> dict[str, Any]:
        """The config as saved in a checkpoint: the settings of the acting head only (and of
        the auxiliary token head when it is on)."""
        d = asdict(self)
        for name in HEAD_CONFIGS:
            if name != self.head:
                del d[name]
        if not self.aux_token.enabled:
            del d["aux_token"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VLAConfig":
        """The config of a saved checkpoint (or a config file), in the nested layout or the
        flat one of checkpoints written before the per-head configs (`nest_flat_fields`).
        Fields of removed options (`RETIRED_FIELDS`) are accepted at their old default, which
        is what every shipped checkpoint holds, and refused at any other value."""
        d = dict(d)
        for name, (default, why) in RETIRED_FIELDS.items():
            if name in d:
                value = d.pop(name)
                if value != default:
                    raise UserError(f"policy config sets {name}={value!r}: that option was removed "
                                    f"({why}); this version runs only {name}={default!r}")
        d = nest_flat_fields(d)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"policy config has unknown fields {unknown} (written by a newer version?)")
        for name, sub in {**HEAD_CONFIGS, "aux_token": AuxTokenConfig}.items():
            if isinstance(d.get(name), dict):
                extra = sorted(set(d[name]) - {f.name for f in fields(sub)})
                if extra:
                    raise UserError(f"policy config has unknown fields "
                                    f"{[f'{name}.{k}' for k in extra]}")
        return cls(**d)

    def with_overrides(self, **overrides: Any) -> "VLAConfig":
        """A copy with `overrides` applied: VLAConfig fields by name, and the flat sampling
        settings of `SAMPLING_OVERRIDES` (`temperature`, `flow_steps`, `flow_sde_sigma`) on
        the acting head's config. A sampling setting the acting head does not have is left
        unused: `temperature` means nothing to a flow or Gaussian head (the commands refuse
        such flags before loading, naming the flag)."""
        top, head_fields = {}, {}
        known = {f.name for f in fields(self)}
        for key, value in overrides.items():
            if key in SAMPLING_OVERRIDES:
                target = SAMPLING_OVERRIDES[key].get(self.head)
                if target is not None:
                    head_fields[target] = value
            elif key in known:
                top[key] = value
            else:
                raise UserError(f"unknown policy override {key!r}; give a VLAConfig field or one "
                                f"of {sorted(SAMPLING_OVERRIDES)}")
        cfg = replace(self, **top)
        if head_fields:
            cfg = replace(cfg, **{cfg.head: replace(cfg.head_config, **head_fields)})
        return cfg


def _changed(cfg: Any, default: Any) -> list[str]:
    """'name.field=value' of every field of a head config that differs from its default."""
    return [f"{cfg.NAME}.{f.name}={getattr(cfg, f.name)!r}" for f in fields(cfg)
            if getattr(cfg, f.name) != getattr(default, f.name)]


RETIRED_FIELDS: dict[str, tuple[Any, str]] = {
    "vision_film": (False, "FiLM of the vision tokens by the instruction reached 14% where the "
                    "plain policy reached 38%, docs/policies.md"),
    "vision_keypoints": (0, "spatial-softmax keypoint tokens did not help, docs/policies.md"),
    "vision_stride": (32, "the stride-16 EfficientNet cut was never trained"),
}
"""Removed VLAConfig fields -> (the value every checkpoint written before their removal
holds unless it used the option, why they went). `VLAConfig.from_dict` drops them at that
value and refuses any other."""

_TEXT_ENCODERS: dict[str, TextEncoder] = {}


def _text_encoder(name: str) -> TextEncoder:
    """One instance per process: the policy, its reference copy and the critic share it."""
    if name not in _TEXT_ENCODERS:
        _TEXT_ENCODERS[name] = TextEncoder(name)
    return _TEXT_ENCODERS[name]


def camera_image(rgb: dict[str, np.ndarray], camera: str) -> np.ndarray:
    """The image of `camera` in an observation's rgb dict, accepting NAME and NAME_rgb."""
    base = camera.removesuffix("_rgb")
    for key in (camera, base, base + "_rgb"):
        if key in rgb:
            return rgb[key]
    raise ValueError(f"observation has no image for camera {camera!r} (it has {sorted(rgb)})")


class CompactVLA(Policy):
    """The compact VLA (module docstring); implements `smoothvla.policies.Policy` with every
    optional capability: per-token log-prob factors, a value head, prefix conditioning (flow
    head), statistics fitted from the SFT data (normalizer, DCT bin ranges)."""

    def __init__(self, cfg: VLAConfig, normalizer: Normalizer | None = None):
        super().__init__()
        self.cfg = cfg
        self.normalizer = normalizer
        self.autocast_dtype: torch.dtype | None = None  # runtime option, see set_precision
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            self._build(cfg)
        if cfg.lora_rank > 0:
            self._inject_lora()
        self._set_trainable()
        self.vision.train(False)  # again: adapters injected above start in training mode

    def _build(self, cfg: VLAConfig) -> None:
        d = cfg.d_model
        self.vision = VisionEncoder(cfg.vision_encoder, cfg.image_size,
                                    cfg.vision_trainable_blocks, cfg.vision_grid, cfg.seed)
        self.text = _text_encoder(cfg.text_encoder)
        n_vis = len(cfg.cameras) * cfg.vision_grid ** 2
        self.vis_proj = nn.Linear(self.vision.out_dim, d)
        self.vis_pos = nn.Parameter(torch.randn(len(cfg.cameras), cfg.vision_grid ** 2, d) * 0.02)
        self.lang_proj = nn.Linear(self.text.dim, d)
        n_prop = cfg.proprio_dim + (3 if cfg.proprio_rot6d else 0)
        self.proprio_proj = nn.Sequential(nn.Linear(n_prop, d), nn.GELU(), nn.Linear(d, d))
        self.type_embed = nn.Parameter(torch.randn(3, d) * 0.02)  # vision, language, proprio
        self.queries = nn.Parameter(torch.randn(cfg.chunk_size, d) * 0.02)
        self.fusion = nn.ModuleList(Block(d, cfg.n_heads, cfg.ff_dim) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(d)
        if cfg.prev_actions:
            self.prev_proj = nn.Sequential(nn.Linear(cfg.prev_actions * cfg.action_dim, d), nn.GELU(),
                                           nn.Linear(d, d))
            self.prev_embed = nn.Parameter(torch.randn(d) * 0.02)
        self.n_tokens = n_vis + 2 + (1 if cfg.prev_actions else 0) + cfg.chunk_size
        if cfg.head == "token":
            self.head = TokenHead(d, cfg.action_dim, cfg.token.bins, cfg.token.temperature)
        elif cfg.head == "dct":
            c = cfg.dct
            self.head = DCTHead(d, cfg.action_dim, cfg.chunk_size, c.coefficients, c.bins,
                                c.temperature, cfg.action_dim - 1 if c.gripper_steps else None)
        elif cfg.head == "flow":
            c = cfg.flow
            self.head = FlowHead(d, cfg.action_dim, cfg.n_heads, cfg.ff_dim, c.steps, c.sde_sigma,
                                 c.layers, c.context, cfg.chunk_size)
        else:
            self.head = GaussianHead(d, cfg.action_dim, cfg.gaussian.state_std,
                                     cfg.gaussian.init_log_std)
        aux = cfg.aux_token
        self.aux_head = TokenHead(d, cfg.action_dim, aux.bins) if aux.enabled else None
        self.value_head = ValueHead(d) if cfg.value_head else None

    # -- construction helpers ---------------------------------------------------------------
    def _inject_lora(self) -> None:
        from peft import LoraConfig, inject_adapter_in_model

        pattern = "|".join(f"(?:{LORA_TARGETS[t]})" for t in self.cfg.lora_targets)
        lcfg = LoraConfig(r=self.cfg.lora_rank, lora_alpha=self.cfg.lora_alpha,
                          target_modules=pattern, lora_dropout=0.0)
        inject_adapter_in_model(lcfg, self)

    def _set_trainable(self) -> None:
        """Full fine-tuning: everything but the vision trunk (and the tail unless
        vision_trainable_blocks > 0). LoRA: adapters + action heads + value head only."""
        lora = self.cfg.lora_rank > 0
        for name, p in self.named_parameters():
            if name.startswith("vision.trunk_net."):
                train = False
            elif lora:
                train = "lora_" in name or (name.startswith(("head.", "aux_head.", "value_head."))
                                            and "base_layer" not in name)
                if name.startswith("vision.tail_net.") and "lora_" not in name:
                    train = False
            elif name.startswith("vision.tail_net."):
                train = self.cfg.vision_trainable_blocks > 0
            else:
                train = True
            p.requires_grad_(train)

    @property
    def chunk_size(self) -> int:
        return self.cfg.chunk_size

    @property
    def cameras(self) -> tuple[str, ...]:
        return tuple(self.cfg.cameras)

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    @property
    def has_value_head(self) -> bool:
        return self.value_head is not None

    def attach_value_head(self) -> ValueHead:
        """Add a fresh value head (PPO); it is then saved with the policy."""
        if self.value_head is None:
            self.value_head = ValueHead(self.cfg.d_model).to(self.device)
            self.cfg.value_head = True
        return self.value_head

    def set_normalizer(self, normalizer: Normalizer) -> None:
        self.normalizer = normalizer

    @property
    def feature_keys(self) -> tuple[str, ...]:
        """The keys of `encode`'s features (and of cached features in extras)."""
        return FEATURE_KEYS + (("prev_actions",) if self.cfg.prev_actions else ())

    def action_head_needs_fit(self) -> bool:
        """True when the action head takes statistics from the training data that it does not
        have yet (the DCT head's coefficient bin ranges); SFT then calls `fit_action_head`."""
        return isinstance(self.head, DCTHead) and not self.head.fitted

    def fit_statistics(self, actions: np.ndarray, proprio: np.ndarray, chunks: np.ndarray) -> None:
        """A policy without normalizer statistics takes them from the demo frames' actions
        (N, 7) and proprio (N, 8); an action head that needs data statistics (DCT bin ranges)
        fits them on the target chunks (N, k, 7). What the policy has already is kept."""
        if self.normalizer is None:
            self.set_normalizer(Normalizer.from_arrays(actions, proprio))
        if self.action_head_needs_fit():
            self.fit_action_head(chunks)

    def fit_action_head(self, chunks: np.ndarray | torch.Tensor) -> None:
        """Give the action head its statistics from training chunks (N, k, 7) in env units (the
        SFT targets), normalized with the policy's normalizer; saved with the weights. A no-op
        for heads without data statistics."""
        if isinstance(self.head, DCTHead):
            x = torch.as_tensor(np.asarray(chunks), dtype=torch.float32).to(self.device)
            self.head.fit(self._norm().normalize_actions(x))

    def set_precision(self, precision: str) -> "CompactVLA":
        """'fp32' (default) or 'bf16': bf16 autocast for the vision encoder and the fusion
        transformer on CUDA (heads stay float32). A runtime choice, not saved with the weights."""
        if precision not in PRECISIONS:
            raise UserError(f"unknown precision {precision!r}; choose one of {list(PRECISIONS)}")
        if precision != "fp32" and self.device.type != "cuda":
            raise UserError(f"precision {precision!r} needs the policy on a CUDA device "
                            f"(it is on {self.device}); use fp32 on the CPU")
        self.autocast_dtype = PRECISIONS[precision]
        return self

    def _autocast(self):
        dtype = self.autocast_dtype
        return torch.autocast(self.device.type, dtype=dtype or torch.float32,
                              enabled=dtype is not None)

    def _to_device(self, tensors: dict[str, Any]) -> dict[str, Any]:
        device = self.device
        return {k: v.to(device) if torch.is_tensor(v) else v for k, v in tensors.items()}

    def _norm(self) -> Normalizer:
        if self.normalizer is None:
            raise MissingStatisticsError(
                "policy has no normalizer statistics: compute them from the training data "
                "(Normalizer.from_arrays) and call set_normalizer, or load a checkpoint that has them")
        return self.normalizer

    def reset(self) -> None:
        """No per-episode state."""

    # -- encoding ---------------------------------------------------------------------------
    def encode_images(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (B, n_cams, H, W, 3) -> vision trunk features (B, n_cams, *trunk_shape)."""
        b, c = images.shape[:2]
        pixels = torch.as_tensor(images).reshape(b * c, *images.shape[2:]).to(self.device)
        with self._autocast():
            feats = self.vision.trunk(pixels).float()
        return feats.view(b, c, *feats.shape[1:])

    @torch.no_grad()
    def encode(self, obs: list[Observation]) -> dict[str, torch.Tensor]:
        """Frozen features of a batch of observations: vis_feat (B, n_cams, C, h, w),
        lang_emb (B, L), proprio (B, P) raw."""
        if not obs:
            raise ValueError("empty observation batch")
        for o in obs:
            if not isinstance(o, dict):
                raise TypeError(f"an observation must be a dict (env.reset() returns (obs, info): "
                                f"pass obs), got {type(o).__name__}")
            for key in ("rgb", "proprio", "instruction"):
                if key not in o:
                    raise ValueError(f"observation lacks {key!r} (has {sorted(o)})")
        images = np.stack([np.stack([camera_image(o["rgb"], c) for c in self.cfg.cameras])
                           for o in obs])
        if images.dtype != np.uint8:
            raise ValueError(f"images must be uint8, got {images.dtype}")
        proprio = torch.as_tensor(np.stack([np.asarray(o["proprio"], np.float32) for o in obs]))
        proprio = proprio.to(self.device)
        if proprio.shape[1] != self.cfg.proprio_dim:
            raise ValueError(f"proprio must have {self.cfg.proprio_dim} values, got {proprio.shape[1]}")
        feats = {
            "vis_feat": self.encode_images(images),
            "lang_emb": self.text.encode([o["instruction"] for o in obs]).to(self.device),
            "proprio": proprio,
        }
        if self.cfg.prev_actions:
            feats["prev_actions"] = self._prev_actions(obs)
        return feats

    def _prev_actions(self, obs: list[Observation]) -> torch.Tensor:
        """The last n executed actions of each observation, (B, n, 7) env units."""
        n = self.cfg.prev_actions
        rows = []
        for o in obs:
            if "prev_actions" not in o:
                raise ValueError(f"this policy reads the last {n} executed actions "
                                 "(VLAConfig.prev_actions) but the observation has no "
                                 "'prev_actions': build envs with smoothvla.envs.make")
            prev = np.asarray(o["prev_actions"], np.float32)
            if prev.ndim != 2 or prev.shape[0] < n or prev.shape[1] != self.cfg.action_dim:
                raise ValueError(f"obs['prev_actions'] must be (>= {n}, {self.cfg.action_dim}), "
                                 f"got {prev.shape}")
            rows.append(prev[prev.shape[0] - n:])
        return torch.as_tensor(np.stack(rows)).to(self.device)

    def _features(self, obs: list[Observation] | None, extras: dict | None) -> dict:
        keys = self.feature_keys
        if extras is not None and all(k in extras for k in keys):
            return self._to_device({k: extras[k] for k in keys})
        if obs is None:
            raise ValueError(f"need observations or cached features {keys} in extras")
        return self.encode(obs)

    # -- backbone ---------------------------------------------------------------------------
    def proprio_features(self, raw: torch.Tensor) -> torch.Tensor:
        """(B, P) raw proprio -> standardized (B, P), or with proprio_rot6d (B, P + 3):
        standardized position, rot6d(orientation), standardized rest. Gripper values go
        through `canonical_proprio` first."""
        raw = canonical_proprio(raw)
        z = self._norm().normalize_proprio(raw)
        if not self.cfg.proprio_rot6d:
            return z
        return torch.cat([z[:, :3], axis_angle_to_rot6d(raw[:, 3:6]), z[:, 6:]], -1)

    def hidden_states(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features -> the fusion transformer's hidden states at every token, (B, T, d), float32
        (under bf16 autocast when `set_precision("bf16")`); the last k are the action queries."""
        with self._autocast():
            return self._backbone(feats).float()

    def backbone(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """Features -> hidden states at the action queries, (B, k, d)."""
        return self.hidden_states(feats)[:, -self.chunk_size:]

    def head_states(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """What the action head reads: the whole hidden sequence for a flow head with
        `flow.context`, else the action-query states."""
        return self._head_view(self.hidden_states(feats))

    def _head_view(self, seq: torch.Tensor) -> torch.Tensor:
        flow_context = self.cfg.head == "flow" and self.cfg.flow.context
        return seq if flow_context else seq[:, -self.chunk_size:]

    def _backbone(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        vis = feats["vis_feat"]
        b, c = vis.shape[:2]
        tokens = self.vision.tail(vis.flatten(0, 1))  # (B*c, g*g, C)
        vis = self.vis_proj(tokens).view(b, c, -1, self.cfg.d_model) + self.vis_pos
        vis = vis.flatten(1, 2) + self.type_embed[0]
        lang = self.lang_proj(feats["lang_emb"].float())[:, None] + self.type_embed[1]
        prop = self.proprio_proj(self.proprio_features(feats["proprio"].float()))[:, None]
        prop = prop + self.type_embed[2]
        context = [vis, lang, prop]
        if self.cfg.prev_actions:
            prev = self._norm().normalize_actions(feats["prev_actions"].float())
            context.append(self.prev_proj(prev.flatten(1))[:, None] + self.prev_embed)
        x = torch.cat([*context, self.queries.expand(b, -1, -1)], 1)
        for block in self.fusion:
            x = block(x)
        return self.norm(x)

    # -- Policy interface -------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: list[Observation], *, sample: bool = True,
            generator: torch.Generator | None = None,
            prefix: np.ndarray | None = None) -> ActionChunk:
        """A chunk per observation: actions (B, k, 7) in env units clipped to [-1, 1], the
        log-probability of the sampled chunk (zeros when greedy), extras = frozen features +
        what the head needs to recompute the log-probability. `prefix` (B, n, 7) env units,
        NaN rows for none: the first n actions of each chunk are given, not sampled (prefix
        conditioning, flow head only; rollout/execution.py)."""
        norm = self._norm()
        feats = self.encode(obs)
        head_kwargs = {}
        if prefix is not None:
            head_kwargs["prefix"] = self._prefix_target(prefix, norm)
        x, logp, head_extras = self.head.sample(self.head_states(feats), sample, generator,
                                                **head_kwargs)
        actions = norm.denormalize_actions(x).clamp(-1.0, 1.0)
        extras = {k: v.cpu() for k, v in {**feats, **head_extras}.items()}
        return ActionChunk(actions.cpu(), logp.cpu(), extras)

    def _prefix_target(self, prefix: np.ndarray, norm: Normalizer) -> torch.Tensor:
        """(B, n, 7) env-unit prefix -> (B, k, 7) normalised, NaN where the head samples."""
        from smoothvla.errors import UserError

        if self.cfg.head != "flow":
            raise UserError(f"prefix conditioning needs the flow head; this policy has the "
                            f"{self.cfg.head!r} head (use another execution scheme)")
        p = torch.as_tensor(prefix, dtype=torch.float32, device=self.device)
        if p.ndim != 3 or p.shape[1] > self.chunk_size or p.shape[2] != self.cfg.action_dim:
            raise ValueError(f"prefix must be (B, n <= {self.chunk_size}, {self.cfg.action_dim}), "
                             f"got {tuple(p.shape)}")
        out = torch.full((p.shape[0], self.chunk_size, p.shape[2]), float("nan"), device=self.device)
        out[:, : p.shape[1]] = norm.normalize_actions(p)  # NaN stays NaN
        return out

    def log_prob(self, obs: list[Observation] | None, chunk: ActionChunk) -> torch.Tensor:
        """(B,) differentiable log-probability of `chunk` (uses its cached features if present)."""
        return self.log_prob_terms(obs, chunk).sum(-1)

    def log_prob_terms(self, obs: list[Observation] | None, chunk: ActionChunk) -> torch.Tensor:
        """(B, T) the factors of `log_prob` (token head: one per action token; Gaussian: one
        per action element; flow: one per denoising step and element), for per-token ratios."""
        norm = self._norm()
        h = self.head_states(self._features(obs, chunk.extras))
        actions = chunk.actions.float().to(h.device)
        return self.head.log_prob_terms(h, norm.normalize_actions(actions),
                                        self._to_device(chunk.extras))

    def value(self, obs: list[Observation] | None, extras: dict | None = None) -> torch.Tensor:
        """(B,) value from the head on h at the first action position."""
        if self.value_head is None:
            raise ValueError("no value head attached (VLAConfig.value_head or attach_value_head())")
        return self.value_head(self.backbone(self._features(obs, extras))[:, 0])

    def sft_loss(self, batch: DemoBatch) -> SFTOutput:
        """The head's loss (plus the auxiliary token loss with aux_token.weight) on a batch:
        `batch.features` as `encode` returns them (SFT's feature cache) or `batch.obs`;
        `batch.actions` (B, k, 7) env units; `batch.mask` (B, k) (0 past the episode end).
        `predicted` is the head's chunk (B, k, 7) in env units (unclipped)."""
        norm = self._norm()
        feats = self._to_device(batch.features) if batch.features is not None else self.encode(batch.obs)
        actions = torch.as_tensor(batch.actions, dtype=torch.float32).to(self.device)
        if actions.ndim != 3 or actions.shape[1:] != (self.chunk_size, self.cfg.action_dim):
            raise ValueError(f"batch actions must be (B, {self.chunk_size}, {self.cfg.action_dim}), "
                             f"got {tuple(actions.shape)}")
        mask = batch.mask
        mask = (torch.ones(actions.shape[:2]) if mask is None
                else torch.as_tensor(mask, dtype=torch.float32)).to(self.device)
        seq, target = self.hidden_states(feats), norm.normalize_actions(actions)
        h = self._head_view(seq)
        loss, metrics, pred = self.head.loss(
            h.detach() if self.cfg.aux_token.insulate_backbone else h, target, mask)
        if self.aux_head is not None:
            aux, aux_metrics, _ = self.aux_head.loss(seq[:, -self.chunk_size:], target, mask)
            loss = loss + self.cfg.aux_token.weight * aux
            metrics = {**metrics, "aux_token_ce": float(aux.detach()),
                       "aux_token_accuracy": aux_metrics["token_accuracy"]}
        return SFTOutput(loss, {"loss": float(loss.detach()), **metrics},
                         norm.denormalize_actions(pred))

    # -- bookkeeping ------------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        """Parameters per component (text encoder included, though it lives outside the module)."""
        groups: dict[str, int] = {}
        for name, p in self.named_parameters():
            if name.startswith("vision."):
                key = "vision_trunk" if name.startswith("vision.trunk_net.") else "vision_tail"
            elif name.startswith(("fusion.", "norm.", "queries", "vis_", "lang_", "proprio_", "type_",
                                  "prev_")):
                key = "fusion"
            else:
                key = name.split(".")[0]
            if "lora_" in name:
                key = "lora"
            groups[key] = groups.get(key, 0) + p.numel()
        groups["text_encoder"] = self.text.num_parameters()
        groups["trainable"] = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return groups

    def pretrained_keys(self) -> set[str]:
        """State-dict keys that hold the vision encoder's frozen weights: a policy built from
        the same config has them already (from the encoder's package, or from the seed for
        'tiny'), so `save(trainable_only=True)` leaves them out."""
        trainable = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k for k in self.state_dict() if k.startswith("vision.") and k not in trainable}

    def save(self, directory: str | Path, *, trainable_only: bool = False) -> None:
        """Write model.safetensors, config.json and normalizer.json atomically (a temporary
        directory renamed into place). `trainable_only` leaves out the frozen pretrained
        vision weights (`pretrained_keys`; a few MB instead of ~15 MB for a token policy):
        `load_policy` rebuilds them from the encoder's package."""
        from safetensors.torch import save

        from smoothvla.io import atomic_path, atomic_write_bytes

        norm = self._norm()
        omit = self.pretrained_keys() if trainable_only else set()
        with atomic_path(directory, folder=True) as tmp:
            state = {k: v.detach().cpu().clone().contiguous()
                     for k, v in self.state_dict().items() if k not in omit}
            # safetensors' save_file creates the file 0600; this one follows the umask
            atomic_write_bytes(tmp / "model.safetensors", save(state))
            meta = {"format": FORMAT, "version": FORMAT_VERSION, "config": self.cfg.to_dict()}
            if trainable_only:
                meta["weights"] = "trainable-only"
            (tmp / "config.json").write_text(json.dumps(meta, indent=1))
            (tmp / "normalizer.json").write_text(norm.to_json())

    @classmethod
    def load(cls, directory: str | Path, **overrides: Any) -> "CompactVLA":
        """`load_policy`: a checkpoint written by `save`, with optional config overrides."""
        return load_policy(directory, **overrides)


def canonical_proprio(raw):
    """Proprio (..., 8) with the two gripper values (6:8) replaced by their absolute values
    (numpy or torch). LIBERO-layout `gripper_states` store the second finger with a negative
    sign (the demos: [0.04, -0.04]) while the tabletop env's proprio has both positive
    ([0.04, 0.04]) at the same state; the finger opening is what matters. The SFT data path
    and the policy both apply this, so statistics and inputs agree."""
    out = raw.clone() if isinstance(raw, torch.Tensor) else np.array(raw, copy=True)
    out[..., 6:8] = abs(out[..., 6:8])
    return out


def axis_angle_to_rot6d(r: torch.Tensor) -> torch.Tensor:
    """Axis-angle (B, 3) -> first two columns of the rotation matrix (B, 6) (Rodrigues).

    Continuous where axis-angle is not: (pi, 0, 0) and (-pi, 0, 0) give the same output.
    """
    theta = r.norm(dim=-1, keepdim=True)
    k = r / theta.clamp(min=1e-12)
    zero = torch.zeros_like(k[:, 0])
    skew = torch.stack([zero, -k[:, 2], k[:, 1], k[:, 2], zero, -k[:, 0],
                        -k[:, 1], k[:, 0], zero], -1).view(-1, 3, 3)
    s, c = theta.sin()[..., None], theta.cos()[..., None]
    rot = torch.eye(3, dtype=r.dtype, device=r.device) + s * skew + (1 - c) * (skew @ skew)
    return rot[:, :, :2].transpose(1, 2).reshape(-1, 6)


def load_policy(directory: str | Path, **overrides: Any) -> CompactVLA:
    """Load a policy saved by `CompactVLA.save` (either config layout), or a packaged one named
    'smoothvla:NAME'. `overrides` (`VLAConfig.with_overrides`) replace config fields that do
    not change the weights' shapes: the sampling settings `temperature` (token and DCT heads),
    `flow_steps` and `flow_sde_sigma` (flow head), applied to the checkpoint's head and
    unused by the others, or VLAConfig fields by name (e.g. `flow=FlowHeadConfig(...)`).
    Clear errors for a missing, corrupt or mismatched checkpoint and for missing normalizer
    statistics. A LeRobot SmolVLA folder (config.json of type 'smolvla') loads as a
    `LeRobotSmolVLA` instead (policies/lerobot_smolvla.py)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from smoothvla.policies.lerobot_smolvla import LeRobotSmolVLA, is_lerobot_smolvla
    from smoothvla.policies.packaged import resolve_checkpoint

    directory = Path(resolve_checkpoint(str(directory)))
    if is_lerobot_smolvla(directory):
        return LeRobotSmolVLA.load(directory, **overrides)  # type: ignore[return-value]
    if not directory.is_dir():
        raise UserFileNotFoundError(f"{directory}: no such checkpoint directory")
    for name in ("config.json", "model.safetensors"):
        if not (directory / name).is_file():
            raise UserFileNotFoundError(f"{directory}: checkpoint lacks {name}")
    try:
        meta = json.loads((directory / "config.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UserError(f"{directory}/config.json is corrupt: {err}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{directory}: not a {FORMAT} checkpoint (format={meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("version") not in READ_VERSIONS:
        raise UserError(f"{directory}: checkpoint format version {meta.get('version')}, "
                        f"this code reads {' and '.join(map(str, READ_VERSIONS))}")
    cfg = VLAConfig.from_dict(meta["config"]).with_overrides(**overrides)
    if not (directory / "normalizer.json").is_file():
        raise MissingStatisticsError(f"{directory}: checkpoint lacks normalizer.json (action and "
                                     "proprio statistics); refusing to run without them")
    try:
        normalizer = Normalizer.from_dict(json.loads((directory / "normalizer.json").read_text()))
    except ValueError as err:  # not JSON, or statistics with NaN or wrong shapes
        raise UserError(f"{directory}/normalizer.json is corrupt: {err}") from None
    try:
        state = load_file(str(directory / "model.safetensors"))
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{directory}/model.safetensors is corrupt or truncated: {err}") from None
    policy = CompactVLA(cfg, normalizer)
    expected = policy.state_dict()
    if meta.get("weights") == "trainable-only":  # the frozen encoder comes from its package
        state = {**{k: expected[k] for k in policy.pretrained_keys()}, **state}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    if missing or unexpected or shapes:
        raise UserError(f"{directory}: weights do not match the config: missing={missing[:5]}, "
                        f"unexpected={unexpected[:5]}, shape mismatches={shapes[:5]}")
    # A diverged run saves NaN weights; evaluated, they would pass for a failing policy.
    # (Parameters only: a DCT head's bin ranges are NaN by design until SFT fits them.)
    params = {name for name, _ in policy.named_parameters()}
    bad = [k for k, v in state.items()
           if k in params and v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"{directory}/model.safetensors holds NaN or inf in {len(bad)} tensors "
                        f"(e.g. {bad[:3]}): the run that saved it diverged; use an earlier "
                        "checkpoint")
    policy.load_state_dict(state)
    return policy
