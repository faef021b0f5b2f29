"""Render the tabletop suites and perturbations into PNG contact sheets for docs/envs.md.

    python benchmarks/render_suites.py --out-dir docs/img

Writes tabletop-<suite>.png (agentview of init 0 of each task, the suite's first task also
from the wrist camera) and tabletop-perturbations.png (one task under every perturbation).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import dataclasses  # noqa: E402
import tempfile  # noqa: E402
import textwrap  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import tyro  # noqa: E402

from smoothvla.envs import list_tasks, make  # noqa: E402
from smoothvla.envs.tabletop import PerturbationSpec, list_perturbations  # noqa: E402

SUITES = ("tabletop-spatial", "tabletop-object", "tabletop-goal", "tabletop-long")


@dataclasses.dataclass
class Config:
    out_dir: str = "docs/img"
    """Folder for the PNG files."""
    image_size: int = 192
    """Rendered image side in pixels."""
    init_id: int = 0
    """Initial layout shown."""
    perturbation_task: str = "tabletop-spatial/pick-bowl-left-of-plate-place-plate-v1"
    """Task shown under every perturbation."""


def _save(fig, path: Path) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".png", delete=False) as f:
        fig.savefig(f, format="png", dpi=80, bbox_inches="tight")
    os.chmod(f.name, 0o644)
    os.replace(f.name, path)
    plt.close(fig)
    print(f"wrote {path}")


def render_suite(suite: str, cfg: Config, out: Path) -> None:
    specs = list_tasks(suite)
    fig, axes = plt.subplots(2, 6, figsize=(18, 7.2))
    for ax, spec in zip(axes.flat, specs):
        env = make(spec.task_id, image_size=cfg.image_size)
        obs, _ = env.reset(seed=0, init_id=cfg.init_id)
        ax.imshow(obs["rgb"]["agentview"])
        ax.set_title("\n".join(textwrap.wrap(spec.instruction, 34)), fontsize=8)
        if spec is specs[0]:
            axes.flat[-2].imshow(obs["rgb"]["eye_in_hand"])
            axes.flat[-2].set_title("eye_in_hand, task 1", fontsize=8)
        env.close()
    axes.flat[-1].set_visible(False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{suite}: agentview, init {cfg.init_id}")
    _save(fig, out / f"{suite}.png")


def render_perturbations(cfg: Config, out: Path) -> None:
    kinds = ["none", *list_perturbations()]
    fig, axes = plt.subplots(2, 7, figsize=(19, 6.6))
    for ax, kind in zip(axes.flat, kinds):
        pert = None if kind == "none" else PerturbationSpec(kind, 1.0, seed=0)
        env = make(cfg.perturbation_task, cameras=("agentview",), image_size=cfg.image_size,
                   perturbation=pert)
        obs, _ = env.reset(seed=0, init_id=cfg.init_id)
        if kind == "reposition":
            for _ in range(21):
                obs = env.step([0, 0, 0, 0, 0, 0, -1])[0]
        ax.imshow(obs["rgb"]["agentview"])
        title = f"{kind} @1.0\n" if pert else "unperturbed\n"
        ax.set_title(title + "\n".join(textwrap.wrap(obs["instruction"], 36)), fontsize=7)
        env.close()
    for ax in axes.flat[len(kinds):]:
        ax.set_visible(False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, out / "tabletop-perturbations.png")


def main(cfg: Config) -> None:
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for suite in SUITES:
        render_suite(suite, cfg, out)
    render_perturbations(cfg, out)


if __name__ == "__main__":
    main(tyro.cli(Config))
