"""Disk cache of frozen vision-trunk features, one entry per dataset frame.

The vision trunk (EfficientNet-Lite0 up to the cache point, `encoders.py`) is frozen, so its
output for a demonstration frame never changes during SFT. Computing it once per frame
(~12 ms per 128-px image on one core) and reading it back from a float16 memory map makes an
SFT step cost only the fusion transformer and the head: this is what makes SFT feasible on
two CPU cores. With augmentation on, `views` random-shifted copies of each frame are encoded
(view 0 is always the unshifted image) and training picks one view per sample.

A cache file is keyed by the HDF5 file's content hash and everything that changes the
features (encoder, image size, cache point, cameras, views, shift, seed), so a stale cache
is never read. Files are written to a temporary name and renamed into place (`io.atomic_path`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch

from smoothvla.data.hdf5 import demo_names, read_demo
from smoothvla.io import atomic_path
from smoothvla.policies.encoders import random_shift


def file_digest(path: str | Path, block: int = 1 << 22) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def camera_key(camera: str) -> str:
    """HDF5 obs key of a camera: NAME_rgb (LIBERO layout)."""
    return camera if camera.endswith("_rgb") else f"{camera}_rgb"


def cache_key(policy, path: str | Path, views: int, shift_pad: int, seed: int) -> str:
    cfg = policy.cfg
    signature = {
        "file": file_digest(path),
        "encoder": cfg.vision_encoder, "image_size": cfg.image_size,
        "trainable_blocks": cfg.vision_trainable_blocks, "cameras": list(cfg.cameras),
        "trunk_shape": list(policy.vision.trunk_shape), "views": views,
        "shift_pad": shift_pad if views > 1 else 0, "seed": seed if views > 1 else 0,
        "weights": _trunk_fingerprint(policy) if cfg.vision_encoder == "tiny" else "pretrained",
    }
    return hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()[:24]


def _trunk_fingerprint(policy) -> str:
    h = hashlib.sha256()
    for p in policy.vision.trunk_net.parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def trunk_features(policy, path: str | Path, cache_dir: str | Path, views: int = 1,
                   shift_pad: int = 0, seed: int = 0, batch: int = 64,
                   progress: bool = True) -> np.ndarray:
    """Features of every frame of every demo in `path`, in demo order then time order.

    Returns a read-only float16 memmap (N, views, n_cams, *trunk_shape); computes and writes
    it first if the cache has no entry for this file and encoder.
    """
    if views < 1:
        raise ValueError(f"views must be >= 1, got {views}")
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{cache_key(policy, path, views, shift_pad, seed)}.npy"
    if target.exists():
        return np.load(target, mmap_mode="r")
    names = demo_names(path)
    keys = tuple(camera_key(c) for c in policy.cfg.cameras)
    lengths = [len(read_demo(path, n, obs_keys=()).actions) for n in names]
    shape = (sum(lengths), views, len(keys), *policy.vision.trunk_shape)
    rng = np.random.default_rng(seed)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=shape[0] * views, desc=f"encoding {Path(path).name}", unit="frame")
    try:
        with atomic_path(target) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
            row = 0
            for name, n in zip(names, lengths):
                demo = read_demo(path, name, obs_keys=keys)
                images = np.stack([demo.obs[k] for k in keys], 1)  # (T, cams, H, W, 3)
                for v in range(views):
                    for s in range(0, n, batch):
                        chunk = images[s:s + batch]
                        if v > 0:
                            t, c = chunk.shape[:2]
                            flat = random_shift(chunk.reshape(t * c, *chunk.shape[2:]),
                                                shift_pad, rng)
                            chunk = flat.reshape(chunk.shape)
                        with torch.no_grad():
                            feats = policy.encode_images(chunk)
                        out[row + s:row + s + len(chunk), v] = (
                            feats.cpu().numpy().astype(np.float16))
                        if bar is not None:
                            bar.update(len(chunk))
                row += n
            out.flush()
            del out
    finally:
        if bar is not None:
            bar.close()
    return np.load(target, mmap_mode="r")
