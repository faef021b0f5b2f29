"""Load end-effector paths from files users already have, for `smoothvla jerk`.

HDF5 in the LIBERO/robomimic layout: one episode per `data/demo_*`, positions from
`obs/ee_pos` (LIBERO) or `obs/robot0_eef_pos` (robomimic), actions from `actions`.
NPZ: `ee_pos` (or `positions`) of shape (T, 3) for one episode or (B, T, 3) for a batch,
with optional `lengths` (B,) for padded batches and optional `actions`.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smoothvla.data.hdf5 import EE_POS_KEYS, demo_names, find_key, read_demo
from smoothvla.errors import UserError, UserFileNotFoundError, UserKeyError
from smoothvla.metrics._checks import as_lengths

NPZ_KEYS = ("ee_pos", "positions")


@dataclass
class Episode:
    """One path read from a file."""

    source: str
    name: str
    positions: np.ndarray
    actions: np.ndarray | None = None


def _hdf5_episodes(path: Path, key: str) -> list[Episode]:
    episodes = []
    for name in demo_names(path):
        pos_key = find_key(path, name, EE_POS_KEYS if key == "auto" else (key,))
        demo = read_demo(path, name, obs_keys=(pos_key,))
        episodes.append(Episode(str(path), name, demo.obs[pos_key], demo.actions))
    if not episodes:
        raise UserError(f"{path}: the 'data' group holds no demo_* episodes")
    return episodes


def _npz_episodes(path: Path, key: str) -> list[Episode]:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:  # EOFError: empty file
        raise UserError(f"{path}: not a readable .npz file ({err})") from None
    keys = NPZ_KEYS if key == "auto" else (key,)
    pos_key = next((k for k in keys if k in arrays), None)
    if pos_key is None:
        raise UserKeyError(f"{path}: none of the keys {list(keys)} found (it has {sorted(arrays)})")
    positions = arrays[pos_key]
    actions = arrays.get("actions")
    if positions.ndim not in (2, 3) or positions.shape[-1] != 3:
        raise UserError(f"{path}: {pos_key} must have shape (T, 3) or (B, T, 3), got {positions.shape}")
    if positions.ndim == 2:
        return [Episode(str(path), "0", positions, actions)]
    lengths = arrays.get("lengths", np.full(len(positions), positions.shape[1]))
    try:
        lengths = as_lengths(lengths, len(positions), positions.shape[1])
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
    return [
        Episode(str(path), str(i), positions[i, : int(n)], None if actions is None else actions[i, : int(n) - 1])
        for i, n in enumerate(lengths)
    ]


def load_episodes(path: str | Path, key: str = "auto") -> list[Episode]:
    """Every episode's end-effector path in an .hdf5/.h5 or .npz file."""
    path = Path(path)
    if not path.exists():
        raise UserFileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in (".hdf5", ".h5", ".he5"):
        return _hdf5_episodes(path, key)
    if suffix == ".npz":
        return _npz_episodes(path, key)
    raise UserError(f"{path}: unsupported file type {suffix!r} (use .hdf5/.h5 or .npz)")
