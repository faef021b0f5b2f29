"""Supervised fine-tuning (behaviour cloning with action chunks) of a policy.

Read top to bottom: config -> demonstrations -> frozen features -> batches -> one step ->
the loop (logging, checkpoints, evaluation, resume).

Any `Policy` trains here through its contract (`fit_statistics`, `sft_loss`, `save` /
`load`; `train(cfg, policy)`): its batches carry observations built from the demo frames
(`obs_batch`). The compact VLA (the default, built from `SFTConfig.policy`) gets batches of
its frozen encoders' features instead (`make_batch`), from a disk cache by default.

Each training sample is one demonstration frame t: its observation and the next k actions
a_t .. a_{t+k-1} as the target chunk; near the episode end the chunk is padded with the last
action and a mask (0 on padded steps) removes them from the loss.

Frozen encoders (the default) make SFT cheap: the vision trunk's features for every frame
are computed once and cached on disk next to the run, keyed by the file's hash
(`algorithms/features.py`), and the language embedding once per instruction string; a step
then runs only the fusion transformer and the head.

Determinism: the batch and the head's noise at step s depend only on (seed, s), so a run
resumed from a checkpoint reproduces the uninterrupted run exactly.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from smoothvla.algorithms.features import camera_key, trunk_features
from smoothvla.algorithms.sft_transfer import (freeze_all_but_head, head_inputs, head_only_step,
                                               initial_policy, save_start)
from smoothvla.data.hdf5 import demo_names, file_attrs, read_demo
from smoothvla.envs.base import ACTION_HISTORY
from smoothvla.errors import UserError, UserFileNotFoundError, check_fields
from smoothvla.io import atomic_path, atomic_write_text, lock_directory, truncate_jsonl
from smoothvla.policies.base import DemoBatch, Policy
from smoothvla.policies.device import place
from smoothvla.policies.encoders import random_shift
from smoothvla.policies.vla import CompactVLA, VLAConfig, canonical_proprio, load_policy
from smoothvla.rollout.pool import EnvFactory

PROPRIO_KEYS = ("ee_pos", "ee_ori", "gripper_states")


@dataclass
class SFTConfig:
    """Supervised fine-tuning of the compact VLA on LIBERO-layout HDF5 demonstrations."""

    data: tuple[str, ...] = ()
    """HDF5 demonstration files (LIBERO layout)."""
    run_dir: str = "runs/sft"
    """Output folder: checkpoints/, feature cache, log.jsonl, TensorBoard events."""
    policy: VLAConfig = field(default_factory=VLAConfig)
    """Architecture (head, chunk size, LoRA, ...) of a new policy; ignored with init_from/resume
    (but for its head fields with init_weights 'backbone')."""
    init_from: str = ""
    """Start from this policy checkpoint instead of a fresh policy (keeps its normalizer); a
    LeRobot SmolVLA folder trains that SmolVLA (docs/policies.md "Your own VLA")."""
    init_weights: Literal["all", "backbone", "aux-token-head"] = "all"
    """What init_from contributes: 'all' (the checkpoint as it is); 'backbone' (all but its
    heads, under fresh heads as policy's head fields describe, e.g. --policy.head flow); or
    'aux-token-head' (its auxiliary token head becomes a token head on the same backbone).
    With steps 0 the result is saved as checkpoint step 0 (algorithms/sft_transfer.py)."""
    head_only: bool = False
    """Train only the action head, on the frozen backbone: the head's input is computed once
    per frame (unshifted view of the feature cache), then each step runs the head alone (the
    flow-head recipe's probe stage, docs/recipes.md)."""
    steps: int = 5000
    """Optimizer steps."""
    batch_size: int = 16
    lr: float = 3e-4
    """Peak AdamW learning rate. The 4e-5 of SmoothVLA §4.1 fine-tunes a pretrained 7B VLA; the
    compact fusion transformer and heads here start from scratch and need ~10x more
    (3e-4 is the usual transformer-from-scratch rate; see docs/policies.md)."""
    weight_decay: float = 0.01
    warmup_steps: int = 100
    """Linear warm-up from 0, then cosine decay to min_lr_ratio * lr."""
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    """Max global gradient norm (0 = off)."""
    smooth_weight: float = 0.0
    """Weight of the smoothness term on the predicted chunk (0 = off): mean squared jerk of
    the commanded position, i.e. the third difference of cumsum(position deltas)."""
    augment: bool = False
    """Random-shift image augmentation."""
    shift_pad: int = 4
    """Random shift in pixels (each side) when augment is on."""
    aug_views: int = 4
    """With cached features and augment: shifted views encoded per frame (view 0 unshifted)."""
    cache_features: bool = True
    """Compact VLA: pre-compute frozen vision features once per frame (disk cache). Off: encode
    every batch. Other policies always get observations (`obs_batch`)."""
    feature_cache_dir: str = ""
    """Where the feature cache lives; empty = run_dir/features. Entries are keyed by file hash
    and encoder, so several runs on the same data can share one folder."""
    max_demos: int = 0
    """Use at most this many demos per file (0 = all)."""
    eval_every: int = 1000
    """Evaluation rollouts every this many steps (0 = never); skipped with a message when the
    demos' suite cannot be built here."""
    eval_episodes: int = 5
    """Rollouts per evaluation, from the initial states of demos (held-in), round-robin over tasks."""
    eval_execute_steps: int = 0
    """Actions executed from each predicted chunk during evaluation before re-planning
    (0 = the whole chunk of k)."""
    eval_max_steps: int = 0
    """Cap on evaluation episode length in control steps (0: each task's own limit), as
    `smoothvla eval --max-steps`."""
    log_every: int = 10
    checkpoint_every: int = 500
    resume: bool = False
    """Continue from run_dir's latest checkpoint (model, optimizer, scheduler, step, RNG)."""
    seed: int = 0
    num_threads: int = 1
    """torch intra-op threads."""
    device: str = "auto"
    """Where the policy trains: 'auto' (CUDA when available), 'cpu', 'cuda', 'cuda:N'."""
    precision: Literal["fp32", "bf16"] = "fp32"
    """bf16: autocast for the vision encoder and fusion transformer on CUDA (heads float32)."""
    tensorboard: bool = True
    """Also write TensorBoard events (if tensorboard is installed)."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def __post_init__(self) -> None:
        self.data = tuple(self.data)
        if isinstance(self.policy, dict):
            self.policy = VLAConfig.from_dict(self.policy)
        # grad_clip 0 = off; a learning rate above 1 is a typo
        check_fields(self, lr="(0, 1]", weight_decay=">= 0", warmup_steps=">= 0",
                     min_lr_ratio="[0, 1]", grad_clip=">= 0", smooth_weight=">= 0",
                     shift_pad=">= 0", aug_views=">= 1", max_demos=">= 0", eval_every=">= 0",
                     eval_episodes=">= 0", eval_execute_steps=">= 0", eval_max_steps=">= 0", log_every=">= 1",
                     checkpoint_every=">= 1", num_threads=">= 1")
        if (self.steps < 1 and not (self.steps == 0 and self.init_from)) or self.batch_size < 1:
            raise UserError("steps and batch_size must be >= 1 (steps 0 only with init_from)")
        if self.init_weights != "all" and not self.init_from:
            raise UserError(f"init_weights {self.init_weights!r} selects weights of init_from; "
                            "give --init-from")
        if self.head_only and not self.cache_features:
            raise UserError("head_only trains on cached features: leave cache_features on")


# ---------------------------------------------------------------------------------------------
# Demonstrations
# ---------------------------------------------------------------------------------------------
@dataclass
class Frames:
    """All frames of all demos, concatenated. N frames, E episodes.

    actions (N, 7), proprio (N, 8), episode_end (N,) exclusive end index of the frame's
    episode, instruction_id (N,), instructions (list), images {camera: (N, H, W, 3)} (only
    when features are not cached), vis (N, V, cams, C, h, w) cached features or None,
    episodes: per-episode attrs (task_id, init_id, seed, instruction).
    """

    actions: np.ndarray
    proprio: np.ndarray
    episode_end: np.ndarray
    instruction_id: np.ndarray
    instructions: list[str]
    episodes: list[dict[str, Any]]
    images: dict[str, np.ndarray] | None = None
    vis: list[np.ndarray] | None = None
    vis_offsets: np.ndarray | None = None


def _instruction(path: str, attrs: dict) -> str:
    text = attrs.get("instruction")
    if text is None:
        text = file_attrs(path).get("problem_info", {}).get("language_instruction")
    if text is None:
        raise KeyError(f"{path}: demo has no 'instruction' attribute (nor problem_info.language_instruction)")
    return text.decode() if isinstance(text, bytes) else str(text)


def load_frames(paths: tuple[str, ...], cameras: tuple[str, ...], with_images: bool,
                max_demos: int = 0) -> Frames:
    """Read actions, proprio (ee_pos ++ ee_ori ++ gripper_states, as the env builds it, gripper
    values made positive by `canonical_proprio`) and instructions of every demo; images too
    when `with_images`."""
    if not paths:
        raise UserError("no demonstration files given (--data)")
    acts, props, ends, instr_ids, episodes = [], [], [], [], []
    images: dict[str, list] = {c: [] for c in cameras}
    instructions: list[str] = []
    n = 0
    for path in paths:
        names = demo_names(path)
        names = names[:max_demos] if max_demos else names
        if not names:
            raise UserError(f"{path}: no demos")
        keys = PROPRIO_KEYS + (tuple(camera_key(c) for c in cameras) if with_images else ())
        for name in names:
            demo = read_demo(path, name, obs_keys=keys)
            a = np.asarray(demo.actions, np.float32)
            if a.ndim != 2 or a.shape[1] != 7 or len(a) == 0:
                raise UserError(f"{path}/{name}: actions must be (T, 7) with T > 0, got {a.shape}")
            p = np.concatenate([np.asarray(demo.obs[k], np.float32) for k in PROPRIO_KEYS], 1)
            text = _instruction(path, demo.attrs)
            if text not in instructions:
                instructions.append(text)
            acts.append(a)
            props.append(p)
            n += len(a)
            ends.append(np.full(len(a), n))
            instr_ids.append(np.full(len(a), instructions.index(text)))
            episodes.append({"file": str(path), "demo": name, "instruction": text,
                             **{k: _plain(demo.attrs[k]) for k in ("task_id", "init_id", "seed")
                                if k in demo.attrs}})
            for c in cameras if with_images else ():
                images[c].append(demo.obs[camera_key(c)])
    frames = Frames(np.concatenate(acts), canonical_proprio(np.concatenate(props)), np.concatenate(ends),
                    np.concatenate(instr_ids), instructions, episodes)
    if with_images:
        frames.images = {c: np.concatenate(v) for c, v in images.items()}
    return frames


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    return value.item() if hasattr(value, "item") else value


def chunk_targets(frames: Frames, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Target chunks for frames idx (B,): actions t..t+k-1 of the same episode, padded with the
    episode's last action; returns actions (B, k, 7) and mask (B, k) (1 = real step)."""
    steps = idx[:, None] + np.arange(k)[None]
    last = frames.episode_end[idx][:, None] - 1
    mask = (steps <= last).astype(np.float32)
    return frames.actions[np.minimum(steps, last)], mask


def previous_actions(frames: Frames, idx: np.ndarray, n: int) -> np.ndarray:
    """What obs['prev_actions'] holds at frames idx (B,): actions t-n..t-1 of the same episode
    (oldest first), zeros before its start; returns (B, n, 7). Demos written with the idle
    filter lack the dropped (near-zero, same gripper) steps, so the history skips them."""
    ends = np.unique(frames.episode_end)
    pos = np.searchsorted(ends, idx, side="right")
    start = np.where(pos > 0, ends[np.maximum(pos - 1, 0)], 0)
    steps = idx[:, None] - n + np.arange(n)[None]
    valid = steps >= start[:, None]
    out = frames.actions[np.maximum(steps, 0)] * valid[..., None]
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------
def attach_features(policy: CompactVLA, frames: Frames, cfg: SFTConfig, run_dir: Path) -> None:
    """Fill frames.vis from the disk cache (computing missing entries)."""
    views = cfg.aug_views if cfg.augment else 1
    frames.vis, offsets = [], [0]
    for path in cfg.data:
        cache_dir = Path(cfg.feature_cache_dir) if cfg.feature_cache_dir else run_dir / "features"
        feats = trunk_features(policy, path, cache_dir, views, cfg.shift_pad,
                               cfg.seed, progress=cfg.progress)
        if cfg.max_demos:
            feats = feats[:_frames_in_first_demos(path, cfg.max_demos)]
        frames.vis.append(feats)
        offsets.append(offsets[-1] + len(feats))
    frames.vis_offsets = np.asarray(offsets)
    if offsets[-1] != len(frames.actions):
        raise ValueError(f"feature cache has {offsets[-1]} frames, the data {len(frames.actions)}")


def _frames_in_first_demos(path: str, count: int) -> int:
    return sum(len(read_demo(path, n, obs_keys=()).actions) for n in demo_names(path)[:count])


def batch_frames(frames: Frames, cfg: SFTConfig, step: int) -> tuple[np.random.Generator, np.ndarray]:
    """The generator of step `step` and the frames (B,) it draws (sorted)."""
    rng = np.random.default_rng([cfg.seed, step])
    return rng, np.sort(rng.integers(0, len(frames.actions), cfg.batch_size))


def make_batch(policy: CompactVLA, frames: Frames, lang: torch.Tensor, cfg: SFTConfig,
               step: int) -> DemoBatch:
    """The compact VLA's batch of step `step`: features (with the previous actions,
    `previous_actions`, when the policy reads them), target chunks (B, k, 7), mask (B, k)."""
    rng, idx = batch_frames(frames, cfg, step)
    actions, mask = chunk_targets(frames, idx, policy.chunk_size)
    proprio = torch.as_tensor(frames.proprio[idx])
    lang_emb = lang[frames.instruction_id[idx]]
    if frames.vis is not None:
        views = frames.vis[0].shape[1]
        view = rng.integers(0, views, cfg.batch_size) if cfg.augment else np.zeros(cfg.batch_size, int)
        file_of = np.searchsorted(frames.vis_offsets, idx, side="right") - 1
        vis = np.stack([frames.vis[f][i - frames.vis_offsets[f], v]
                        for f, i, v in zip(file_of, idx, view)])
        vis = torch.as_tensor(vis.astype(np.float32))
    else:
        images = np.stack([frames.images[c][idx] for c in policy.cfg.cameras], 1)
        if cfg.augment:
            b, c = images.shape[:2]
            images = random_shift(images.reshape(b * c, *images.shape[2:]), cfg.shift_pad,
                                  rng).reshape(images.shape)
        vis = policy.encode_images(images)
    features = {"vis_feat": vis, "lang_emb": lang_emb, "proprio": proprio}
    if policy.cfg.prev_actions:
        features["prev_actions"] = torch.as_tensor(previous_actions(frames, idx, policy.cfg.prev_actions))
    return DemoBatch(torch.as_tensor(actions), torch.as_tensor(mask), features=features)


def obs_batch(policy: Policy, frames: Frames, cfg: SFTConfig, step: int) -> DemoBatch:
    """Any policy's batch of step `step`: B observations as an env returns them (rgb of the
    policy's cameras, random-shifted with `augment`; proprio with the gripper values made
    positive, `canonical_proprio`; instruction; the last ACTION_HISTORY actions), target
    chunks (B, k, 7), mask (B, k). The same frames as `make_batch` draws."""
    rng, idx = batch_frames(frames, cfg, step)
    actions, mask = chunk_targets(frames, idx, policy.chunk_size)
    cameras = policy.cameras
    images = np.stack([frames.images[c][idx] for c in cameras], 1) if cameras else None
    if images is not None and cfg.augment:
        b, c = images.shape[:2]
        images = random_shift(images.reshape(b * c, *images.shape[2:]), cfg.shift_pad,
                              rng).reshape(images.shape)
    history = previous_actions(frames, idx, ACTION_HISTORY)
    obs = [{"rgb": {c: images[j, i] for i, c in enumerate(cameras)} if cameras else {},
            "proprio": frames.proprio[f].astype(np.float32),
            "instruction": frames.instructions[frames.instruction_id[f]],
            "prev_actions": history[j]} for j, f in enumerate(idx)]
    return DemoBatch(torch.as_tensor(actions), torch.as_tensor(mask), obs=obs)


# ---------------------------------------------------------------------------------------------
# Loss and one optimizer step
# ---------------------------------------------------------------------------------------------
def chunk_jerk(actions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared jerk of the position a chunk commands.

    actions (B, k, 7) env units, mask (B, k) -> scalar. Positions p = cumsum of the position
    deltas a[..., :3]; jerk = third difference of p (k - 3 values per chunk, each needing
    steps t..t+3 unpadded). Units are action units per step^3 (not m/s^3).
    """
    if actions.shape[1] < 4:
        raise UserError(f"the smoothness term needs chunk_size >= 4, got {actions.shape[1]}")
    p = torch.cumsum(actions[..., :3], dim=1)
    j = p[:, 3:] - 3 * p[:, 2:-1] + 3 * p[:, 1:-2] - p[:, :-3]
    valid = mask[:, 3:]
    return ((j ** 2).sum(-1) * valid).sum() / valid.sum().clamp(min=1.0)


def lr_lambda(cfg: SFTConfig):
    """Multiplier of the peak lr at step s: linear warm-up, then cosine to min_lr_ratio."""
    def f(s: int) -> float:
        if s < cfg.warmup_steps:
            return (s + 1) / cfg.warmup_steps
        progress = (s - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * cosine
    return f


def train_step(policy: Policy, optimizer, scheduler, batch: DemoBatch, cfg: SFTConfig,
               step: int) -> dict[str, float]:
    """One optimizer step on one batch; returns named metrics."""
    torch.manual_seed(cfg.seed * 1_000_003 + step)  # the head's noise (flow tau, z)
    policy.train()
    out = policy.sft_loss(batch)
    loss, metrics, predicted = out.loss, out.metrics, out.predicted
    if cfg.smooth_weight > 0:
        if predicted is None:
            raise UserError(f"smooth_weight > 0 needs the predicted chunk, which "
                            f"{type(policy).__name__}.sft_loss does not return")
        mask = batch.mask if batch.mask is not None else torch.ones(predicted.shape[:2])
        smooth = chunk_jerk(predicted, mask.to(predicted.device))
        loss = loss + cfg.smooth_weight * smooth
        metrics["smooth"] = float(smooth.detach())
    return optimize(loss, [p for p in policy.parameters() if p.requires_grad], optimizer,
                    scheduler, cfg, metrics)


def optimize(loss: torch.Tensor, params: list, optimizer, scheduler, cfg: SFTConfig,
             metrics: dict[str, float]) -> dict[str, float]:
    """One optimizer and schedule step on `loss` (gradients of `params` clipped to
    cfg.grad_clip); `metrics` gains total_loss, grad_norm and lr."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
    optimizer.step()
    scheduler.step()
    metrics.update(total_loss=float(loss.detach()), grad_norm=float(grad_norm),
                   lr=optimizer.param_groups[0]["lr"])
    return metrics


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------
def save_checkpoint(run_dir: Path, policy: Policy, optimizer, scheduler, step: int,
                    cfg: SFTConfig) -> Path:
    """checkpoints/step_NNNNNNN/: the policy files + trainer_state.pt + sft_config.json, written
    in a temporary folder and renamed; then `latest` (a text file) points to it."""
    target = run_dir / "checkpoints" / f"step_{step:07d}"
    with atomic_path(target, folder=True) as tmp:
        policy.save(tmp)
        state = {"step": step, "optimizer": optimizer.state_dict(),
                 "scheduler": scheduler.state_dict(),
                 "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                         "python": random.getstate()}}
        torch.save(state, tmp / "trainer_state.pt")
        (tmp / "sft_config.json").write_text(json.dumps(asdict(cfg), indent=1))
    atomic_write_text(run_dir / "latest", target.name)
    return target


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / "latest"
    if not pointer.exists():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    if not path.is_dir():
        raise UserFileNotFoundError(f"{pointer} points to {path}, which does not exist")
    return path


def _has_checkpoints(run_dir: Path) -> bool:
    """Whether run_dir/checkpoints holds a finished checkpoint (`latest` may be missing
    after a kill right after the first one)."""
    root = run_dir / "checkpoints"
    return root.is_dir() and any(p.name.startswith("step_") for p in root.iterdir())


def restore_trainer(path: Path, optimizer, scheduler) -> int:
    """Load optimizer, scheduler and RNG states; returns the number of steps done."""
    state = torch.load(path / "trainer_state.pt", map_location="cpu", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    return int(state["step"])


# ---------------------------------------------------------------------------------------------
# Evaluation rollouts
# ---------------------------------------------------------------------------------------------
def held_in_episodes(episodes: list[dict], count: int) -> list[dict]:
    """`count` demo episodes taken round-robin over tasks (the first demo of every task, then
    the second, ...), so an evaluation covers every task of a multi-task file."""
    by_task: dict[str, list[dict]] = {}
    for e in episodes:
        if "task_id" in e:
            by_task.setdefault(e["task_id"], []).append(e)
    queues = list(by_task.values())
    out: list[dict] = []
    for i in range(max((len(q) for q in queues), default=0)):
        out += [q[i] for q in queues if i < len(q)]
    return out[:count]


def evaluate(policy: Policy, frames: Frames, cfg: SFTConfig, *, num_envs: int = 8,
             env_factory: EnvFactory | None = None) -> dict[str, float] | None:
    """Greedy rollouts from the initial states (task, init_id, seed) of the first demos
    (`held_in_episodes`), executing the first `cfg.eval_execute_steps` actions of each chunk
    (receding horizon; the whole chunk when 0). The episodes run as `smoothvla eval --workers
    0` runs them (`eval.runner.run_episodes`: the same collector, env options and episode
    limits), so the numbers are those `smoothvla eval` gives the saved checkpoint on the
    same episodes (`episode_result`'s metrics). Returns the overall success rate, the mean
    episode length, the mean end-effector jerk (m/s^3, over every episode) and one `eval_success/<task name>` per
    task. None (with a message) when the demos carry no task id or their suite cannot be
    built here. `num_envs` envs run in this process, the policy acting on all at once;
    `env_factory` replaces `smoothvla.envs.make` (tests)."""
    from smoothvla.envs import get_task
    from smoothvla.eval.runner import EvalPlan, PolicyRef, episode_result, run_episodes
    from smoothvla.rollout.collector import GroupRequest
    from smoothvla.rollout.execution import ExecutionConfig

    episodes = held_in_episodes(frames.episodes, cfg.eval_episodes)
    if not episodes:
        print("sft: evaluation skipped: demos carry no task_id attribute", file=sys.stderr)
        return None
    requests = [GroupRequest(str(e["task_id"]), int(e.get("init_id", 0)), int(e.get("seed", 0)), 1)
                for e in episodes]
    try:
        for task in {r.task_id for r in requests} if env_factory is None else ():
            get_task(task)
    except (ImportError, ValueError, KeyError) as err:
        print(f"sft: evaluation skipped: cannot build the demos' tasks here ({err})", file=sys.stderr)
        return None
    steps = cfg.eval_execute_steps
    execution = (ExecutionConfig("receding", steps) if 0 < steps < policy.chunk_size
                 else ExecutionConfig())
    plan = EvalPlan(task_ids=sorted({r.task_id for r in requests}), init_ids=(),
                    execution=execution, max_steps=cfg.eval_max_steps)
    policy.eval()
    trajectories, errors = [], []
    with torch.no_grad():
        for _, out in run_episodes(policy, plan, "none", requests, workers=0,
                                   envs_per_worker=num_envs, env_factory=env_factory):
            trajectories += out.trajectories
            errors += out.errors
    if not trajectories:
        print(f"sft: evaluation skipped: every episode failed ({'; '.join(errors[:2])})",
              file=sys.stderr)
        return None
    rows = [episode_result(t, PolicyRef("sft", ""), "none", keep_path=False) for t in trajectories]
    per_task: dict[str, list[bool]] = {}
    for r in rows:
        per_task.setdefault(r.task_id.split("/")[-1], []).append(r.success)
    result = {"eval_success": float(np.mean([r.success for r in rows])),
              "eval_length": float(np.mean([r.steps for r in rows])),
              "eval_episodes": len(rows)}
    result.update({f"eval_success/{name}": float(np.mean(v)) for name, v in sorted(per_task.items())})
    jerks = [r.mean_jerk for r in rows if np.isfinite(r.mean_jerk)]
    if jerks:
        result["eval_mean_jerk"] = float(np.mean(jerks))
    return result


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------
def _open_tensorboard(cfg: SFTConfig, run_dir: Path):
    if not cfg.tensorboard:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(run_dir / "tb"))


def train(cfg: SFTConfig, policy: Policy | None = None) -> Path:
    """Run SFT; returns the final checkpoint folder (loadable with `load_policy`, or with
    `type(policy).load` for a given policy).

    `policy`: train this policy (any `Policy`) instead of a compact VLA built from
    `cfg.policy` or `cfg.init_from`; a resumed run loads its checkpoint with
    `type(policy).load`."""
    if policy is not None and cfg.init_from:
        raise UserError("init_from loads a compact VLA checkpoint; it cannot be combined with "
                        "a given policy")
    torch.set_num_threads(cfg.num_threads)
    if not cfg.data:
        raise UserError("no demonstration files given (--data)")
    for path in cfg.data:
        if not Path(path).is_file():
            raise UserFileNotFoundError(f"{path}: no such demonstration file")
    run_dir = Path(cfg.run_dir)
    with lock_directory(run_dir, "sft run"):  # one writer per run directory
        return _train(cfg, run_dir, policy)


def _train(cfg: SFTConfig, run_dir: Path, given: Policy | None) -> Path:
    """`train` once it holds run_dir's lock."""
    # Policy: resumed, initialized from a checkpoint, or fresh. A run directory with
    # checkpoints is continued (--resume) or left alone, never overwritten (as `train`).
    resume_from = latest_checkpoint(run_dir)
    if not cfg.resume and (resume_from is not None or _has_checkpoints(run_dir)):
        raise UserError(f"{run_dir} already holds an SFT run (checkpoints/); pass --resume to "
                        "continue it or choose another --run-dir")
    if cfg.resume and resume_from is None:
        print(f"sft: --resume: no checkpoint in {run_dir}; starting a new run from step 0",
              file=sys.stderr)
    policy: Policy
    if resume_from is not None:
        policy = load_policy(resume_from) if given is None else type(given).load(resume_from)
    elif given is not None:
        policy = given
    elif cfg.init_from:
        policy = initial_policy(cfg)
    else:
        policy = CompactVLA(cfg.policy)
    place(policy, cfg.device, cfg.precision)
    if cfg.steps == 0:  # a conversion (init_weights): the starting policy, saved as it is
        return save_start(run_dir, policy, cfg)
    # the compact VLA learns from its frozen features; any other policy from observations
    compact = isinstance(policy, CompactVLA)
    cached = compact and cfg.cache_features
    if cfg.head_only and not compact:
        raise UserError(f"--head-only trains the compact VLA's action head on its cached backbone "
                        f"states; {type(policy).__name__} has none")

    # Data and the statistics a fresh policy takes from it (normalizer, DCT bin ranges).
    frames = load_frames(cfg.data, policy.cameras, with_images=not cached,
                         max_demos=cfg.max_demos)
    policy.fit_statistics(frames.actions, frames.proprio,
                          chunk_targets(frames, np.arange(len(frames.actions)), policy.chunk_size)[0])
    if cached:
        attach_features(policy, frames, cfg, run_dir)
    lang = policy.text.encode(frames.instructions) if compact else None
    head_in = None
    if cfg.head_only:  # the backbone is frozen: its output for every frame, once
        freeze_all_but_head(policy)
        head_in = head_inputs(policy, frames, lang)
    trainable = sum(p.numel() for p in policy.parameters() if p.requires_grad)
    what = f"head={policy.cfg.head}" if compact else f"policy={type(policy).__name__}"
    print(f"sft: {len(frames.episodes)} demos, {len(frames.actions)} frames, "
          f"{len(frames.instructions)} instructions; {what} k={policy.chunk_size}; "
          f"trainable parameters {trainable:,}", file=sys.stderr)

    # Optimizer and schedule.
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    start = restore_trainer(resume_from, optimizer, scheduler) if resume_from is not None else 0
    atomic_write_text(run_dir / "sft_config.json", json.dumps(asdict(cfg), indent=1))
    # rows past the checkpoint (or all, for a new run) are about to be redone
    truncate_jsonl(run_dir / "log.jsonl", "step", below=start + 1)

    log = open(run_dir / "log.jsonl", "a")
    tb = _open_tensorboard(cfg, run_dir)
    bar = None
    if cfg.progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=start, desc="sft", unit="step", dynamic_ncols=True)
    final = resume_from
    eval_every = cfg.eval_every
    t0 = time.time()
    try:
        for step in range(start, cfg.steps):
            if head_in is not None:
                metrics = head_only_step(policy, head_in, frames, optimizer, scheduler, cfg, step)
            else:
                batch = (make_batch(policy, frames, lang, cfg, step) if compact
                         else obs_batch(policy, frames, cfg, step))
                metrics = train_step(policy, optimizer, scheduler, batch, cfg, step)
            done = step + 1
            if done % cfg.log_every == 0 or done == cfg.steps:
                record = {"step": done, "time_s": round(time.time() - t0, 3), **metrics}
                log.write(json.dumps(record) + "\n")
                log.flush()
                if tb is not None:
                    for k, v in metrics.items():
                        tb.add_scalar(f"sft/{k}", v, done)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{metrics['total_loss']:.4f}")
            if eval_every and done % eval_every == 0:
                result = evaluate(policy, frames, cfg)
                if result is None:
                    eval_every = 0  # said why once; do not retry every time
                else:
                    log.write(json.dumps({"step": done, **result}) + "\n")
                    log.flush()
                    print(f"sft: step {done}: {result}", file=sys.stderr)
            if done % cfg.checkpoint_every == 0 or done == cfg.steps:
                final = save_checkpoint(run_dir, policy, optimizer, scheduler, done, cfg)
    finally:
        log.close()
        if bar is not None:
            bar.close()
        if tb is not None:
            tb.close()
    return final
