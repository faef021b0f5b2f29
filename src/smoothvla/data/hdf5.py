"""Demonstrations in LIBERO's HDF5 layout (which robomimic also reads).

    data/                       attrs: total, num_demos, env_args (JSON), problem_info (JSON
                                       with language_instruction), smoothvla_version
    data/demo_<i>/actions       (T, 7) float
    data/demo_<i>/rewards       (T,) float, data/demo_<i>/dones (T,) uint8
    data/demo_<i>/obs/agentview_rgb, eye_in_hand_rgb   (T, H, W, 3) uint8
    data/demo_<i>/obs/ee_pos (T, 3), ee_ori (T, 3), ee_states (T, 6),
                  gripper_states (T, 2), joint_states (T, 7)
    demo attrs: num_samples, instruction, task_id, init_id, seed, success, control_dt

Observation t is the state before action t. Files are written to a temporary name and
renamed into place on close, so a crash never leaves a file that looks complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from smoothvla.errors import UserError, UserFileNotFoundError, UserKeyError
from smoothvla.io import atomic_write_bytes, discard, publish, temporary_path

# Position keys, in the order they are tried: LIBERO, robomimic.
EE_POS_KEYS = ("ee_pos", "robot0_eef_pos")
JOINT_KEYS = ("joint_states", "robot0_joint_pos")


@dataclass
class Demo:
    """One demonstration episode: arrays over T steps plus metadata."""

    actions: np.ndarray
    obs: dict[str, np.ndarray]
    rewards: np.ndarray | None = None
    dones: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.actions)
        for key, value in self.obs.items():
            if len(value) != n:
                raise ValueError(f"obs/{key} has {len(value)} steps but actions has {n}")
        if self.rewards is None:
            self.rewards = np.zeros(n, dtype=np.float32)
        if self.dones is None:
            self.dones = np.zeros(n, dtype=np.uint8)
            if n:
                self.dones[-1] = 1


def write_demo_group(parent: h5py.Group, name: str, demo: Demo, compression: str | None) -> None:
    """Write `demo` as the group `parent/name` (actions, rewards, dones, obs/*, attrs plus
    num_samples); `compression` applies to (T, H, W, 3) uint8 images only."""
    group = parent.create_group(name)
    group.create_dataset("actions", data=np.asarray(demo.actions, dtype=np.float64))
    group.create_dataset("rewards", data=np.asarray(demo.rewards, dtype=np.float32))
    group.create_dataset("dones", data=np.asarray(demo.dones, dtype=np.uint8))
    obs = group.create_group("obs")
    for key, value in demo.obs.items():
        value = np.asarray(value)
        image = value.dtype == np.uint8 and value.ndim == 4
        obs.create_dataset(key, data=value, compression=compression if image else None)
    for key, value in demo.attrs.items():
        group.attrs[key] = value
    group.attrs["num_samples"] = len(demo.actions)


def write_demo_file(path: str | Path, demo: Demo, compress: bool = True) -> Path:
    """One demo as `data/demo_0` of a small HDF5 file at `path`, written atomically and
    fsynced (`atomic_write`): after a kill, `path` is either absent or complete. What
    `collect` writes for each finished episode (its `OUT.parts/` folder); `read_demo(path,
    "demo_0")` reads it back with the same arrays and attributes."""
    import io

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        write_demo_group(f.create_group("data"), "demo_0", demo, "gzip" if compress else None)
    return atomic_write_bytes(path, buffer.getvalue())


class DemoWriter:
    """Append demos one at a time; `close()` (or leaving the `with` block) publishes the file.

    If the block raises, the temporary file is removed and nothing appears at `path`.
    """

    def __init__(self, path: str | Path, env_args: dict[str, Any] | None = None,
                 problem_info: dict[str, Any] | None = None, compress: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temporary_path(self.path)
        self._file = h5py.File(self._tmp, "w")
        self._data = self._file.create_group("data")
        self._data.attrs["env_args"] = json.dumps(env_args or {})
        self._data.attrs["problem_info"] = json.dumps(problem_info or {})
        self._compress = "gzip" if compress else None
        self.num_demos = 0
        self.total = 0

    def add(self, demo: Demo) -> str:
        """Write one demo as `data/demo_<i>`; returns its group name."""
        name = f"demo_{self.num_demos}"
        write_demo_group(self._data, name, demo, self._compress)
        self.num_demos += 1
        self.total += len(demo.actions)
        return name

    def close(self) -> Path:
        """Flush, then atomically rename the temporary file to `path`."""
        self._data.attrs["num_demos"] = self.num_demos
        self._data.attrs["total"] = self.total
        self._file.close()
        return publish(self._tmp, self.path)

    def abort(self) -> None:
        """Drop everything written so far."""
        self._file.close()
        discard(self._tmp)

    def __enter__(self) -> "DemoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _open(path: str | Path) -> h5py.File:
    path = Path(path)
    if not path.exists():
        raise UserFileNotFoundError(f"{path}: no such file")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise UserError(f"{path}: not a readable HDF5 file ({err})") from None


def demo_names(path: str | Path) -> list[str]:
    """Names of the demos in a file, in numeric order (demo_2 before demo_10)."""
    with _open(path) as f:
        if "data" not in f:
            raise UserKeyError(f"{path}: no 'data' group (expected the LIBERO/robomimic layout)")
        names = [n for n in f["data"] if n.startswith("demo_")]
    return sorted(names, key=lambda n: int(n.split("_")[1]) if n.split("_")[1].isdigit() else n)


def file_attrs(path: str | Path) -> dict[str, Any]:
    """The `data` group's attributes, with JSON strings decoded."""
    with _open(path) as f:
        out = {}
        for key, value in f["data"].attrs.items():
            if isinstance(value, bytes):
                value = value.decode()
            if isinstance(value, str) and value[:1] in "{[":
                value = json.loads(value)
            out[key] = value
        return out


def read_demo(path: str | Path, name: str, obs_keys: tuple[str, ...] | None = None) -> Demo:
    """Read one demo; `obs_keys` restricts which observations are loaded (images are big)."""
    with _open(path) as f:
        key = f"data/{name}"
        if key not in f:
            raise UserKeyError(f"{path}: no group {key!r}")
        group = f[key]
        if "actions" not in group:
            raise UserKeyError(f"{path}: {key} has no 'actions' dataset")
        obs_group = group.get("obs", {})
        keys = list(obs_group.keys()) if obs_keys is None else list(obs_keys)
        obs = {}
        for k in keys:
            if k not in obs_group:
                raise UserKeyError(f"{path}: {key}/obs has no {k!r} (it has {sorted(obs_group)})")
            obs[k] = obs_group[k][()]
        return Demo(
            actions=group["actions"][()],
            obs=obs,
            rewards=group["rewards"][()] if "rewards" in group else None,
            dones=group["dones"][()] if "dones" in group else None,
            attrs=dict(group.attrs),
        )


def iter_demos(path: str | Path, obs_keys: tuple[str, ...] | None = None) -> Iterator[tuple[str, Demo]]:
    """(name, Demo) for every demo in the file."""
    for name in demo_names(path):
        yield name, read_demo(path, name, obs_keys)


def find_key(path: str | Path, name: str, candidates: tuple[str, ...]) -> str:
    """The first of `candidates` present under `data/<name>/obs`; a KeyError naming them all."""
    with _open(path) as f:
        obs = f[f"data/{name}"].get("obs", {})
        for key in candidates:
            if key in obs:
                return key
        raise UserKeyError(
            f"{path}: data/{name}/obs has none of {list(candidates)} (it has {sorted(obs)})"
        )
