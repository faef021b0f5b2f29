"""Training videos: a `Collector` wrapper that films the first group of every M-th RL
iteration (`smoothvla train --video-every M`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any


class FilmingCollector:
    """A `Collector` that films the first group of every `every`-th training iteration.

    It reads the iteration from `trainer` (set after the trainer is built; a resumed run
    continues the count) and films only the first collect call of an iteration (not the
    dynamic-sampling refills). The group's G rollouts are written as
    `folder/iter_NNNN/TASK_init{I}_m{member}.mp4/.json`, then their frames are dropped
    so the update does not hold them. Everything else is the wrapped collector's."""

    def __init__(self, collector: Any, every: int, folder: Path, camera: str, label: str,
                 train_seed: int):
        self.collector, self.every, self.folder = collector, every, folder
        self.camera, self.label, self.train_seed = camera, label, train_seed
        self.trainer: Any = None
        self._filmed: int | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collector, name)

    def collect(self, groups: list, seed: int) -> Any:
        iteration = self.trainer.iteration if self.trainer is not None else 0
        film = iteration % self.every == 0 and iteration != self._filmed
        if film:
            groups = [replace(groups[0], video_camera=self.camera), *groups[1:]]
            self._filmed = iteration
        result = self.collector.collect(groups, seed)
        if film:
            self._write(result.trajectories, self.folder / f"iter_{iteration:04d}")
        return result

    def _write(self, trajectories: list, folder: Path) -> None:
        from smoothvla.report.video import write_episode_video

        for traj in trajectories:
            if "frames" not in traj.extras:
                continue
            member = traj.extras["member"]
            name = traj.task_id.partition("/")[2] or traj.task_id
            write_episode_video(
                folder / f"{name}_init{traj.init_id}_m{member}",
                traj.extras.pop("frames"), traj.extras.pop("frame_success"),
                dict(policy=self.label, train_seed=self.train_seed, task_id=traj.task_id,
                     init_id=traj.init_id, seed=traj.seed, perturbation="none", strength=0.0,
                     success=traj.success, fps=1.0 / traj.control_dt,
                     camera=traj.extras["camera"],
                     instruction=str(traj.extras.get("instruction", ""))))
