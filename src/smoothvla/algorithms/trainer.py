"""The RL training loop: collect -> reward -> update -> log -> checkpoint, nothing else.

The algorithm (GRPO, PPO, DPO) owns optimizer, reference and critic (STYLE.md #5); the
collector owns environments and batching; the reward is a plain function. The trainer
only decides which groups to run each iteration and keeps the run resumable:

- `out_dir/log.jsonl`: one line of statistics per iteration (rollout, timing, algorithm);
- `out_dir/checkpoint/state.pt`: algorithm state + the trainer's RNG states + iteration +
  config, written atomically every `checkpoint_every` iterations and after the last;
- `out_dir/config.json`: the config in force; `out_dir/policy/`: `policy.save` export,
  refreshed with every checkpoint.

`resume=True` continues from the checkpoint and truncates the log to it, so a run killed
at any point and resumed gives the same weights and log as an uninterrupted run with the
same seed (tests/algorithms/test_trainer.py kills one to check). A resume always ends
with the final policy exported, also when the checkpoint was already the last one (a kill
during the last export). Flags that differ from the checkpoint's config are refused unless
the config class lists them in `RESUME_MAY_CHANGE` (they do not change what is learned);
an iteration whose rollouts were all dropped stops the run with the collector's errors
(tests/algorithms/test_train_resume.py; docs/reliability.md).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Callable, ClassVar, Literal

import numpy as np
import torch

from smoothvla.algorithms.common import check_smoothness_credit
from smoothvla.algorithms.dpo import DPO, DPOConfig
from smoothvla.algorithms.grpo import GRPO, GRPOConfig
from smoothvla.algorithms.ppo import PPO, PPOConfig
from smoothvla.errors import UserError, check_fields
from smoothvla.io import (
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    lock_directory,
    truncate_jsonl,
)
from smoothvla.metrics import mean_jerk
from smoothvla.policies.base import Policy
from smoothvla.rewards import RewardConfig, make_reward
from smoothvla.rollout.collector import CollectResult, Collector, GroupRequest
from smoothvla.trajectory import Trajectory

ALGORITHMS = ("grpo", "ppo", "dpo")
RewardFn = Callable[[Trajectory], tuple[float, dict[str, float]]]


@dataclass
class TrainConfig:
    """What to train on, for how long, and where the run lives."""

    tasks: tuple[str, ...] = ()
    """Task ids to train on; each group picks one uniformly at random."""
    algorithm: Literal["grpo", "ppo", "dpo"] = "grpo"
    """RL algorithm."""
    iterations: int = 100
    """Collect-update iterations."""
    groups_per_iteration: int = 4
    """Groups collected per iteration (each a task and an init state)."""
    group_size: int = 8
    """Rollouts per group, G (the SmolVLA GRPO report §7.2: 6 was too few; 8-64 is common)."""
    init_ids: tuple[int, ...] = ()
    """Init states to draw from; empty: all of the task's (TaskSpec.num_init_states)."""
    seed: int = 0
    """Seeds group choice, env resets and policy sampling."""
    out_dir: str = "runs/train"
    """Directory of the log, checkpoint and exported policy."""
    checkpoint_every: int = 10
    """Write the checkpoint every this many iterations (and after the last)."""
    resume: bool = False
    """Continue from out_dir/checkpoint if it exists."""
    max_resample_rounds: int = 0
    """Dynamic sampling's refill (DAPO): while fewer than groups_per_iteration groups have
    any reward spread (all-fail groups carry no signal, the SmolVLA GRPO report §7.3), collect that many
    more groups, up to this many extra rounds per iteration (0: never)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Reward function and its parameters."""
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    """GRPO hyperparameters (used when algorithm is grpo)."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO hyperparameters (used when algorithm is ppo)."""
    dpo: DPOConfig = field(default_factory=DPOConfig)
    """DPO hyperparameters (used when algorithm is dpo)."""

    RESUME_MAY_CHANGE: ClassVar[frozenset[str]] = frozenset(
        {"iterations", "checkpoint_every", "resume", "out_dir"}
    )
    """Fields a --resume may give new values (dotted names for nested ones): they change how
    long or where the run goes, not what it learns. Every other field must equal the
    checkpoint's (`resume_changes`); subclasses add their own (e.g. worker counts)."""

    @classmethod
    def upgrade_saved(cls, saved: dict[str, Any]) -> dict[str, Any]:
        """A config saved in a checkpoint by an earlier version, in this version's layout, so
        that `resume_changes` compares like with like (subclasses that moved fields)."""
        return saved

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise UserError(
                f"unknown algorithm {self.algorithm!r}; choose one of {', '.join(ALGORITHMS)}"
            )
        if self.group_size < 2:
            raise UserError(
                f"group_size must be >= 2 (group-relative advantages and preference pairs "
                f"compare rollouts of a group), got {self.group_size}"
            )
        check_fields(self, iterations=">= 1", groups_per_iteration=">= 1",
                     checkpoint_every=">= 1", max_resample_rounds=">= 0")
        if any(i < 0 for i in self.init_ids):
            raise UserError(f"init_ids must be >= 0, got {self.init_ids}")
        check_smoothness_credit(self.algorithm, self.reward.name, self.grpo.advantage,
                                self.ppo.dense_jerk_weight)


def make_algorithm(policy: Policy, cfg: TrainConfig) -> GRPO | PPO | DPO:
    """The configured algorithm around `policy`."""
    if cfg.algorithm == "grpo":
        return GRPO(policy, cfg.grpo)
    if cfg.algorithm == "ppo":
        return PPO(policy, cfg.ppo, jerk_scale=cfg.reward.jerk_scale)
    return DPO(policy, cfg.dpo)


class Trainer:
    """Loops collect -> reward -> update -> log -> checkpoint.

    `num_init_states` maps a task id to its number of init states when `cfg.init_ids` is
    empty; by default it is looked up in the suite registry. `reward_fn` replaces the
    configured reward (tests); the random-reward ablation draws from the trainer's own
    RNG, whose state is checkpointed.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        algorithm: GRPO | PPO | DPO,
        collector: Collector,
        *,
        reward_fn: RewardFn | None = None,
        num_init_states: dict[str, int] | None = None,
        echo: Callable[[str], None] | None = print,
    ) -> None:
        if not cfg.tasks:
            raise ValueError("TrainConfig.tasks is empty: name at least one task id")
        self.cfg = cfg
        self.algorithm = algorithm
        self.collector = collector
        self.echo = echo or (lambda _: None)
        self.out = Path(cfg.out_dir)
        self.rng = np.random.default_rng(cfg.seed)
        self.reward_rng = np.random.default_rng([cfg.seed, cfg.reward.seed])
        self.reward_fn = reward_fn or make_reward(cfg.reward, rng=self.reward_rng)
        # set on the first scored batch when cfg.reward.jerk_scale_from_policy (checkpointed)
        self.measured_jerk_scale: float | None = None
        dense = cfg.algorithm == "ppo" and cfg.ppo.dense_jerk_weight > 0
        self._measure_jerk_scale = (reward_fn is None and cfg.reward.jerk_scale_from_policy
                                    and (cfg.reward.name == "smooth" or dense))
        self.init_choices = {task: self._init_choices(task, num_init_states) for task in cfg.tasks}
        self.iteration = 0
        self._start_note: str | None = None  # how this run() began, on its first log line

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> list[dict[str, float]]:
        """Train to `cfg.iterations`; returns the statistics of the iterations run now."""
        self._lock: IO[str] | None = None  # out_dir's writer lock, taken by _start
        try:
            return self._run()
        finally:
            if self._lock is not None:
                self._lock.close()

    def _run(self) -> list[dict[str, float]]:
        self._start()
        history = []
        while self.iteration < self.cfg.iterations:
            start = time.perf_counter()
            result = self._collect_and_score()
            collected = time.perf_counter()
            if not result.trajectories:
                self._log({"iteration": float(self.iteration),
                           **{f"rollout/{k}": v for k, v in result.stats.items()}}, result.errors)
                raise UserError(no_trajectories_message(self.iteration, self.cfg.iterations, result))
            stats = self.algorithm.update(result.trajectories)
            stats = {"iteration": float(self.iteration), **stats}
            stats.update({f"rollout/{k}": v for k, v in result.stats.items()})
            stats.update(time_split(result.stats, collected - start, time.perf_counter() - collected))
            self._log(stats, result.errors)
            history.append(stats)
            self.iteration += 1
            if (
                self.iteration % self.cfg.checkpoint_every == 0
                or self.iteration == self.cfg.iterations
            ):
                self.save_checkpoint()
        if not history:
            # resumed at the last checkpoint: its policy export may be missing or stale (a
            # kill between state.pt and policy/), so write both again
            self.save_checkpoint()
        return history

    def _collect_and_score(self) -> CollectResult:
        """Collect this iteration's groups and score them; refill (max_resample_rounds)
        while too few groups have reward spread. Extra groups get group ids after the
        earlier ones; rollout statistics are summed over the rounds."""
        seed = self.cfg.seed * 1_000_003 + self.iteration
        result = self.collector.collect(
            self._sample_groups(self.cfg.groups_per_iteration), seed=seed
        )
        num_groups = self.cfg.groups_per_iteration
        self._score(result.trajectories)
        for round_ in range(1, self.cfg.max_resample_rounds + 1):
            missing = self.cfg.groups_per_iteration - _informative_groups(result.trajectories)
            if missing <= 0:
                break
            more = self.collector.collect(self._sample_groups(missing), seed=seed + 7919 * round_)
            for traj in more.trajectories:
                traj.group_id += num_groups
            num_groups += missing
            self._score(more.trajectories)
            stats = {
                k: result.stats.get(k, 0.0) + more.stats.get(k, 0.0)
                for k in sorted({*result.stats, *more.stats})
            }
            stats["resampled_groups"] = stats.get("resampled_groups", 0.0) + missing
            result = CollectResult(
                result.trajectories + more.trajectories, stats, result.errors + more.errors
            )
        return result

    def _score(self, trajectories: list[Trajectory]) -> None:
        if self._measure_jerk_scale and self.measured_jerk_scale is None:
            jerks = [mean_jerk(t.ee_pos, t.control_dt) for t in trajectories if len(t.ee_pos) >= 4]
            if jerks:
                self._set_jerk_scale(float(np.mean(jerks)))
                self.echo(f"jerk_scale = {self.measured_jerk_scale:.4g} m/s^3, the starting "
                          f"policy's mean jerk over {len(jerks)} rollouts")
        for traj in trajectories:
            traj.reward, traj.reward_terms = self.reward_fn(traj)

    def _set_jerk_scale(self, value: float | None) -> None:
        if value is None:
            return
        self.measured_jerk_scale = value
        self.reward_fn = make_reward(replace(self.cfg.reward, jerk_scale=value), rng=self.reward_rng)
        if isinstance(self.algorithm, PPO):  # the dense jerk penalty's unit
            self.algorithm.jerk_scale = value

    def _sample_groups(self, count: int) -> list[GroupRequest]:
        groups = []
        for _ in range(count):
            task = self.cfg.tasks[int(self.rng.integers(len(self.cfg.tasks)))]
            choices = self.init_choices[task]
            init_id = int(choices[int(self.rng.integers(len(choices)))])
            groups.append(
                GroupRequest(task, init_id, int(self.rng.integers(2**31 - 1)), self.cfg.group_size)
            )
        return groups

    def _init_choices(self, task: str, num_init_states: dict[str, int] | None) -> list[int]:
        if self.cfg.init_ids:
            return list(self.cfg.init_ids)
        if num_init_states is not None and task in num_init_states:
            count = num_init_states[task]
        else:
            from smoothvla.envs import get_task

            count = get_task(task).num_init_states
        if count < 1:
            raise ValueError(f"task {task!r} has no init states")
        return list(range(count))

    # -- files -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint" / "state.pt"

    def _start(self) -> None:
        self._lock = lock_directory(self.out, "train run")  # one writer per run directory
        if self.checkpoint_path.exists():
            if not self.cfg.resume:
                raise UserError(
                    f"{self.out} already holds a checkpoint; pass --resume to continue it "
                    "or choose another out_dir"
                )
            self.load_checkpoint()
            self.echo(f"resumed {self.out} at iteration {self.iteration}")
            self._start_note = f"resumed at iteration {self.iteration}"
        else:
            if self.cfg.resume:
                self.echo(f"--resume: no checkpoint in {self.out}; starting a new run "
                          "from iteration 0")
            self._start_note = "new (--resume found no checkpoint)" if self.cfg.resume else "new"
            atomic_write_text(self.out / "log.jsonl", "")
        atomic_write_json(self.out / "config.json", asdict(self.cfg))

    def _log(self, stats: dict[str, Any], errors: list[str]) -> None:
        if self._start_note is not None:
            stats, self._start_note = {**stats, "start": self._start_note}, None
        line = json.dumps({**stats, "errors": errors} if errors else stats)
        with open(self.out / "log.jsonl", "a") as f:
            f.write(line + "\n")
        keys = (
            "success_rate",
            "reward_mean",
            "mean_jerk",
            "frac_all_fail",
            "clip_frac",
            "weight_drift",
        )
        shown = " ".join(f"{k}={stats[k]:.3g}" for k in keys if k in stats)
        self.echo(f"[{self.cfg.algorithm} {self.iteration + 1}/{self.cfg.iterations}] {shown}")

    def save_checkpoint(self) -> None:
        """Algorithm state, RNG states and iteration, atomically; then the policy export."""
        state = {
            "iteration": self.iteration,
            "algorithm": self.algorithm.state_dict(),
            "rng": self.rng.bit_generator.state,
            "reward_rng": self.reward_rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "jerk_scale": self.measured_jerk_scale,
            "config": asdict(self.cfg),
        }
        atomic_write(self.checkpoint_path, lambda f: torch.save(state, f))
        # an export that fails fails the run: a run must not end without its policy
        self.algorithm.policy.save(self.out / "policy")

    def _restore_state(self) -> None:
        """Algorithm, RNG states, iteration and measured jerk scale from the checkpoint,
        after `resume_changes` accepted this config against the checkpoint's."""
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        for line in resume_changes(self.cfg, state):
            self.echo(f"resume: {line}")
        self.algorithm.load_state_dict(state["algorithm"])
        self.rng.bit_generator.state = state["rng"]
        self.reward_rng.bit_generator.state = state["reward_rng"]
        torch.set_rng_state(state["torch_rng"])
        self.iteration = int(state["iteration"])
        self._set_jerk_scale(state.get("jerk_scale"))

    def load_checkpoint(self) -> None:
        self._restore_state()
        # drop log lines of iterations after the checkpoint: they are about to be redone
        truncate_jsonl(self.out / "log.jsonl", "iteration", below=self.iteration)


def check_out_dir(cfg: TrainConfig) -> None:
    """The checks `Trainer.run` makes on `cfg.out_dir` before it trains, made early (before
    policies load and workers start): a checkpoint there needs `resume`, and a resume
    needs flags the checkpoint's run can take (`resume_changes`). UserError otherwise."""
    path = Path(cfg.out_dir) / "checkpoint" / "state.pt"
    if not path.exists():
        return
    if not cfg.resume:
        raise UserError(f"{cfg.out_dir} already holds a checkpoint; pass --resume to continue "
                        "it or choose another out_dir")
    resume_changes(cfg, torch.load(path, map_location="cpu", weights_only=False, mmap=True))


def resume_changes(cfg: TrainConfig, state: dict[str, Any]) -> list[str]:
    """Compare `cfg` with the config saved in a checkpoint `state`; returns the accepted
    changes as 'name old -> new' lines. A change to a field outside
    `type(cfg).RESUME_MAY_CHANGE` cannot take effect mid-run (the optimizer keeps its
    learning rate, the RNGs their seed, the algorithm its state), and fewer iterations than
    the checkpoint has done cannot either: both raise UserError naming the flags."""
    done = int(state["iteration"])
    changes = config_changes(type(cfg).upgrade_saved(state.get("config", {})), asdict(cfg))
    refused = {k: v for k, v in changes.items() if k not in type(cfg).RESUME_MAY_CHANGE}
    if refused:
        listed = "; ".join(f"--{k.replace('_', '-')} {new!r} (checkpoint: {old!r})"
                           for k, (old, new) in refused.items())
        raise UserError(
            f"{cfg.out_dir}: --resume continues the checkpoint's run (iteration {done}), and "
            f"these flags differ from it and cannot take effect mid-run: {listed}. Pass the "
            f"checkpoint's values, or start a new run from {cfg.out_dir}/policy in another "
            "--out-dir"
        )
    if cfg.iterations < done:
        raise UserError(f"{cfg.out_dir}: the checkpoint is at iteration {done}; --iterations "
                        f"{cfg.iterations} cannot undo that (pass --iterations >= {done})")
    return [f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items() if k != "resume"]


def config_changes(saved: dict[str, Any], new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Fields whose values differ between two `asdict` configs, as {dotted name: (saved,
    new)}; nested dataclasses are compared field by field, tuples equal lists. Fields only
    one side has (a config from another version) are not compared."""
    saved, new = json.loads(json.dumps(saved, default=str)), json.loads(json.dumps(new, default=str))
    out: dict[str, tuple[Any, Any]] = {}
    for key in saved.keys() & new.keys():
        a, b = saved[key], new[key]
        if isinstance(a, dict) and isinstance(b, dict):
            out.update({f"{key}.{k}": v for k, v in config_changes(a, b).items()})
        elif a != b:
            out[key] = (a, b)
    return dict(sorted(out.items()))


def no_trajectories_message(iteration: int, iterations: int, result: CollectResult) -> str:
    """Why a run stops when an iteration collected nothing: the collector's own errors."""
    dropped = int(result.stats.get("dropped", 0))
    causes = "; ".join(result.errors) if result.errors else "the collector reported no error"
    return (
        f"iteration {iteration + 1}/{iterations} collected no trajectories: every rollout was "
        f"dropped ({dropped} dropped). Collector errors: {causes}. Nothing was trained on "
        "it; fix the cause (e.g. --init-ids beyond the task's init states, --max-steps) and "
        "rerun, with --resume to continue from the last checkpoint"
    )


def time_split(rollout: dict[str, float], collect_s: float, update_s: float) -> dict[str, float]:
    """Where an iteration's wall time went (seconds): `time/collect_s` (rollouts + scoring)
    and `time/update_s` (the algorithm's update); inside the collection, `time/policy_s`
    (batched `policy.act`), `time/env_s` (env work on the critical path: physics, control,
    rendering), of which `time/render_s` is rendering (scaled from all envs' share to the
    critical path), and `time/other_s` (transfer, scoring, waiting)."""
    sim = rollout.get("sim_s", 0.0)
    env = rollout.get("sim_critical_s", 0.0)
    render = env * rollout.get("render_s", 0.0) / sim if sim > 0 else 0.0
    policy = rollout.get("policy_s", 0.0)
    return {
        "time/iteration_s": collect_s + update_s,
        "time/collect_s": collect_s,
        "time/update_s": update_s,
        "time/policy_s": policy,
        "time/env_s": env,
        "time/render_s": render,
        "time/physics_s": env - render,
        "time/other_s": max(collect_s - policy - env, 0.0),
    }


def _informative_groups(trajectories: list[Trajectory]) -> int:
    """Groups with at least two members whose rewards are not all equal."""
    rewards: dict[int, list[float]] = {}
    for traj in trajectories:
        rewards.setdefault(traj.group_id, []).append(float(traj.reward))
    return sum(len(r) >= 2 and max(r) - min(r) > 1e-8 for r in rewards.values())
