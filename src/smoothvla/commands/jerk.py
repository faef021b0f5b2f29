"""`smoothvla jerk PATH...`: smoothness of trajectories in files a user already has."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import numpy as np
import tyro

from smoothvla.data.paths import load_episodes
from smoothvla.errors import UserError, check_fields
from smoothvla.metrics import path_metrics
from smoothvla.metrics.attribution import EVENT_MARGIN, SPLIT_KEYS
from smoothvla.report.tables import format_table

# LDLJ and SPARC describe the shape of a whole speed profile; below this many samples (half a
# second at 20 Hz) there is no profile to speak of, and they are reported as NaN.
MIN_SPECTRAL_SAMPLES = 10
COLUMNS = ("steps", "duration", "path_length", "mean_jerk", "ldlj", "sparc", "idle_ratio")
HEADER = ("episode", "steps", "duration s", "path m", "mean jerk m/s^3", "LDLJ", "SPARC", "idle")
SPLIT_COLUMNS = ("jerk_boundary_windows", "jerk_boundary_share", "jerk_boundary", "jerk_inside",
                 "jerk_event_windows", "jerk_event_share", "jerk_event")
SPLIT_HEADER = ("episode", "boundary windows", "boundary jerk share", "boundary jerk",
                "inside jerk", "event windows", "event jerk share", "event jerk")


@dataclass
class Config:
    paths: Annotated[tuple[Path, ...], tyro.conf.Positional]
    """HDF5 files in the LIBERO/robomimic layout (data/demo_*/obs/ee_pos or robot0_eef_pos),
    or .npz files with ee_pos (T, 3) / (B, T, 3) and optional lengths."""
    control_hz: float = 20.0
    """Rate at which the positions were sampled (LIBERO and tabletop control at 20 Hz)."""
    json: bool = False
    """Print one JSON document (per-episode metrics and the summary) instead of tables."""
    key: str = "auto"
    """Observation key holding end-effector positions; auto tries ee_pos, robot0_eef_pos."""
    smooth_window: int = 0
    """Savitzky-Golay pre-smoothing window (odd); 0 = off. Lowers jerk; say so if used."""
    chunk_size: int = 0
    """If > 0, the policy executed chunks of this many actions: also report where the jerk
    comes from (chunk boundaries, inside chunks, gripper events) and, when the file has
    actions, the mean action jump at chunk boundaries."""

    def __post_init__(self) -> None:
        if not self.paths:
            raise UserError("give at least one file")
        # 1e-300 Hz would overflow dt**3; outside [0.1 Hz, 100 kHz] a rate is a typo
        if not (0.1 <= self.control_hz <= 1e5):
            raise UserError(f"--control-hz must be a positive number of samples per second "
                            f"in [0.1, 1e5], got {self.control_hz}")
        check_fields(self, flags=True, smooth_window=">= 0", chunk_size=">= 0")


def _gripper(actions: np.ndarray | None, num_steps: int) -> np.ndarray | None:
    """The gripper command (T-1,) of 7-D actions: LIBERO-layout files store one action per
    observation (T rows, the last one never took effect), npz files T-1."""
    if actions is None or actions.ndim != 2 or actions.shape[1] != 7:
        return None
    return actions[:num_steps, 6] if len(actions) == num_steps + 1 else actions[:, 6]


def analyze(cfg: Config) -> dict:
    """Per-episode metrics and their summary (mean, std, count) over all files. A metric
    that some episodes lack (chunk_jump without actions) is NaN there."""
    dt = 1.0 / cfg.control_hz
    episodes = []
    for path in cfg.paths:
        for ep in load_episodes(path, cfg.key):
            try:
                m = path_metrics(
                    ep.positions, dt,
                    actions=ep.actions if cfg.chunk_size else None,
                    chunk_starts=cfg.chunk_size if cfg.chunk_size else None,
                    gripper_actions=_gripper(ep.actions, len(ep.positions) - 1),
                    smooth_window=cfg.smooth_window,
                )
            except ValueError as err:  # the metrics' documented input errors
                raise UserError(f"{ep.source}: episode {ep.name}: {err}") from None
            if len(ep.positions) < MIN_SPECTRAL_SAMPLES:
                m["ldlj"] = m["sparc"] = float("nan")
                print(f"warning: {ep.source}: episode {ep.name} has {len(ep.positions)} samples; "
                      f"LDLJ and SPARC need at least {MIN_SPECTRAL_SAMPLES} to mean anything "
                      "and are left out (NaN)", file=sys.stderr)
            episodes.append({"file": ep.source, "episode": ep.name, **m})
    keys = list(dict.fromkeys(k for e in episodes for k in e if k not in ("file", "episode")))
    for e in episodes:
        for k in keys:
            e.setdefault(k, float("nan"))
    summary = {}
    for k in keys:
        values = np.array([e[k] for e in episodes], dtype=float)
        values = values[np.isfinite(values)]
        summary[k] = {
            "mean": float(values.mean()) if len(values) else float("nan"),
            "std": float(values.std()) if len(values) else float("nan"),
            "count": int(len(values)),
        }
    return {"control_hz": cfg.control_hz, "episodes": episodes, "summary": summary}


def run(cfg: Config) -> int:
    result = analyze(cfg)
    if cfg.json:
        print(json.dumps(result, indent=1))
        return 0
    s = result["summary"]
    jump = "chunk_jump" in s
    columns = COLUMNS + (("chunk_jump",) if jump else ())
    header = HEADER + (("chunk jump",) if jump else ())
    multi = len(cfg.paths) > 1
    names = [f"{Path(e['file']).name}:{e['episode']}" if multi else e["episode"]
             for e in result["episodes"]]
    rows = [
        [name] + [int(e[c]) if c == "steps" else e[c] for c in columns]
        for name, e in zip(names, result["episodes"])
    ]
    print(format_table(rows, header))
    split = "jerk_boundary" in s
    if split:
        print("\nWhere the jerk comes from (windows: fraction of jerk windows; share: fraction "
              "of the summed jerk; jerk: mean over those windows, m/s^3)")
        print(format_table(
            [[name] + [e[c] for c in SPLIT_COLUMNS] for name, e in zip(names, result["episodes"])],
            SPLIT_HEADER,
        ))
    print()
    print(format_table(
        [[c, s[c]["mean"], s[c]["std"], s[c]["count"]]
         for c in columns + (tuple(k for k in SPLIT_KEYS if k in s) if split else ())],
        ("metric", "mean", "std", "episodes"),
    ))
    print(f"\n{len(rows)} episodes at {cfg.control_hz:g} Hz; jerk by third finite difference "
          "of the end-effector position (docs/metrics.md)")
    if split:
        print("A jerk window (4 positions, 3 actions) is an event when a gripper command change "
              f"lies within {EVENT_MARGIN} actions of it, else a boundary window when its actions "
              f"span two chunks of {cfg.chunk_size}, else inside.")
        if s["jerk_event"]["count"] == 0 and s["jerk_event_windows"]["count"] == 0:
            print("No 7-D actions in the file(s): gripper events are not measured (nan).")
    if cfg.chunk_size and not jump:
        print("No actions in the file(s): no chunk jump.")
    return 0
