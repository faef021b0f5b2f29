"""RL fine-tuning of an SFT checkpoint, end to end: `finetune(cfg)`, what `smoothvla train
--policy runs/sft/checkpoints/step_0002000 --tasks TASK ... --algorithm grpo --reward.name smooth` and the study
run (algorithms/trainer.py runs the loop).

The flags are `TrainConfig`'s (tasks, algorithm, iterations, group size, reward, the
algorithms' hyperparameters, out_dir, --resume) plus where the policy comes from and how
the environments run. The run directory gets `log.jsonl`, `config.json`,
`checkpoint/state.pt` (resumable) and `policy/` (a checkpoint `smoothvla eval` reads).
`--resume` refuses flags that differ from the checkpoint's run, except how it runs (workers,
device, ...) and how long (`RESUME_MAY_CHANGE`). `--overrides.*` replace fields of the
checkpoint's policy config for the rollouts (`PolicyOverrides`, shared with `smoothvla eval`);
one the checkpoint's head has no use for (`--overrides.flow-sde-sigma` on a token head) is
refused. `--video-every M` films the first group of every M-th iteration
(iterations 0, M, 2M, ...: the policy before the update of that iteration) into
`out_dir/videos/iter_NNNN/` (rollout/filming.py); filming changes no rollout.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

from smoothvla.algorithms.trainer import TrainConfig
from smoothvla.errors import UserError, check_fields
from smoothvla.io import check_writable_output
from smoothvla.policies.overrides import PolicyOverrides
from smoothvla.rollout.execution import ExecutionConfig


@dataclass
class FinetuneConfig(TrainConfig):
    """An RL run: `TrainConfig` (what is learned) plus where the policy comes from and how
    the environments and the learner run."""

    policy: str = ""
    """Checkpoint directory to fine-tune (written by `smoothvla sft`; or a LeRobot SmolVLA
    folder, docs/policies.md "Your own VLA")."""
    workers: int = 2
    """Env worker processes (0: run the envs in this process)."""
    envs_per_worker: int = 4
    """Envs per worker; the policy is batched over all envs."""
    lanes: int = 1
    """Env blocks that take turns, so the policy runs while other blocks simulate (1: off;
    2 helps when spare cores exist, see docs)."""
    max_steps: int = 0
    """Cap on episode length in control steps (0: each task's own limit)."""
    worker_timeout_s: float = 300.0
    """A worker that does not answer one chunk within this is restarted (its episodes dropped)."""
    device: str = "auto"
    """Torch device of the learner's policy: 'auto' (CUDA when available), 'cpu', 'cuda'."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """bf16: autocast for the vision encoder and fusion transformer on CUDA; the heads, the
    log-probabilities and the losses stay float32 (docs/scaling.md)."""
    overrides: PolicyOverrides = field(default_factory=PolicyOverrides)
    """What the rollouts change in the checkpoint's policy config (unset: the checkpoint's),
    e.g. --overrides.temperature 0.2 for a token head. Measured on the demo's SFT policy: 45%
    success greedy, 25% sampled at temperature 0.2, 0% at 0.5 and 1.0, where every group
    fails and GRPO has no signal (docs/rl.md)."""
    execution: ExecutionConfig = field(default_factory=ExecutionConfig)
    """Which actions of each chunk the rollouts execute: chunk, receding or prefix (the
    averaging schemes blend and ensemble are evaluation-only; docs/rl.md)."""
    backend: Literal["process", "ray"] = "process"
    """Where the env workers run: local processes, or Ray actors (docs/scaling.md)."""
    ray_address: str | None = None
    """Ray cluster to attach to ('auto', 'HEAD_IP:6379'); unset: a local Ray (backend ray only)."""
    video_every: int = 0
    """Every this many iterations (0, M, 2M, ...), save the videos of that iteration's first
    group (G rollouts of one task and init state) in out_dir/videos/iter_NNNN/ (0: never)."""
    video_camera: str = "agentview"
    """Camera the training videos show (one of the policy's cameras)."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = TrainConfig.RESUME_MAY_CHANGE | {
        "workers", "envs_per_worker", "lanes", "worker_timeout_s", "device", "backend",
        "ray_address", "video_every", "video_camera",
    }
    """Also where and how the rollouts and the learner run (not what is learned)."""

    def __post_init__(self) -> None:
        # policy and tasks are checked when the run starts (`check_inputs`): the study holds
        # a FinetuneConfig whose policy and tasks it fills in per run
        super().__post_init__()
        check_fields(self, flags=True, workers=">= 0",
                     envs_per_worker=">= 1", lanes=">= 1", max_steps=">= 0",
                     worker_timeout_s="> 0", video_every=">= 0")
        self.execution.check_for_rl()
        if self.ray_address is not None and self.backend != "ray":
            raise UserError("--ray-address needs --backend ray")

    @classmethod
    def upgrade_saved(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """Before `overrides`, `temperature` and `flow_sde_sigma` were top-level fields with 0
        meaning the checkpoint's value."""
        if "overrides" in saved or not {"temperature", "flow_sde_sigma"} & saved.keys():
            return saved
        out = dict(saved)
        out["overrides"] = {"temperature": out.pop("temperature", 0.0) or None,
                            "flow_sde_sigma": out.pop("flow_sde_sigma", 0.0) or None,
                            "flow_steps": None}
        return out

    def check_inputs(self) -> None:
        """UserError when the policy or the tasks are missing."""
        if not self.policy:
            raise UserError("--policy is required: the checkpoint directory to fine-tune")
        if not self.tasks:
            raise UserError(
                "--tasks is required: one or more task ids, e.g. tabletop-goal/open-drawer-v1"
            )


def finetune(cfg: FinetuneConfig) -> Path:
    """Fine-tune `cfg.policy` with RL as `cfg` says; returns the directory of the final
    policy (`cfg.out_dir`/policy)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    from smoothvla.algorithms.trainer import Trainer, check_out_dir, make_algorithm
    from smoothvla.envs import get_task
    from smoothvla.policies import CompactVLA, load_policy, place
    from smoothvla.policies.packaged import resolve_checkpoint
    from smoothvla.rollout.collector import Collector
    from smoothvla.rollout.pool import make_pool

    torch.set_num_threads(1)
    cfg.check_inputs()
    check_writable_output(cfg.out_dir, "folder")
    for task in cfg.tasks:
        get_task(task)  # unknown ids fail here, before workers start
    check_out_dir(cfg)  # an existing run without --resume, or resumed with changed flags
    # under torchrun (WORLD_SIZE > 1): one learner per process, gradients summed over ranks
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        from smoothvla.algorithms import distributed as ddp

        ddp.init_distributed()
    policy = load_policy(resolve_checkpoint(cfg.policy), **cfg.overrides.as_dict())
    if isinstance(policy, CompactVLA):  # a LeRobot SmolVLA checks its overrides when loaded
        cfg.overrides.check_head(policy.cfg.head, cfg.policy)
    policy = place(policy, cfg.device, cfg.precision)
    policy.eval()  # no dropout: sampling and recomputed log-probs must agree
    env_options = {"cameras": policy.cameras, "image_size": policy.image_size}
    if cfg.video_every and cfg.video_camera not in env_options["cameras"]:
        raise UserError(f"--video-camera {cfg.video_camera!r}: the policy's envs render only "
                        f"{list(env_options['cameras'])}")
    num_envs = max(cfg.workers, 1) * cfg.envs_per_worker
    backend = cfg.backend if cfg.backend == "ray" or cfg.workers > 0 else "inprocess"
    with make_pool(backend, num_envs, num_workers=cfg.workers or None, env_options=env_options,
                   timeout_s=cfg.worker_timeout_s, ray_address=cfg.ray_address) as pool:
        collector: Any = Collector(policy, pool, max_steps=cfg.max_steps or None,
                                   lanes=cfg.lanes, execution=cfg.execution)
        if cfg.video_every:
            from smoothvla.rollout.filming import FilmingCollector

            collector = FilmingCollector(collector, cfg.video_every, Path(cfg.out_dir) / "videos",
                                         cfg.video_camera, cfg.algorithm, cfg.seed)
        if distributed:
            ddp.broadcast_module(policy)
            trainer = ddp.DistributedTrainer(
                cfg, make_algorithm(ddp.ShardedPolicy(policy), cfg), collector,
                echo=lambda line: print(line, file=sys.stderr),
            )
        else:
            trainer = Trainer(
                cfg,
                make_algorithm(policy, cfg),
                collector,
                echo=lambda line: print(line, file=sys.stderr),
            )
        if cfg.video_every:
            collector.trainer = trainer
        trainer.run()
    if distributed:
        ddp.shutdown_distributed()
    print(f"train: policy {cfg.out_dir}/policy, log {cfg.out_dir}/log.jsonl", file=sys.stderr)
    return Path(cfg.out_dir) / "policy"

