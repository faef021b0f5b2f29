"""Data-parallel RL learner with torch.distributed (one process per GPU, or per CPU with gloo).

Every rank runs the same `Trainer` loop on the same algorithm (GRPO, PPO, DPO: unchanged):

1. **Collect its share.** The trainer's RNG draws the same groups on every rank;
   `ShardedCollector` runs groups[rank::world] on this rank's envs with its own sampling
   seed, then all-gathers the trajectories *without their observations* (a `RemoteObs`
   placeholder stands in for each chunk observation of another rank: images never cross
   the network) and returns the union in the global group order.
2. **Reward and update on the union.** Rewards, group advantages, minibatch partitions and
   statistics are computed from the union, identically on every rank, so all ranks call
   `policy.log_prob` in lockstep with the same minibatches.
3. **Shard the forward/backward, average the gradient.** `ShardedPolicy.log_prob` (and
   `value`) computes only the rows whose observation this rank holds, and an all-reduce
   assembles the full (M,) output on every rank (`_AssembleRows`; a row is non-zero on
   exactly one rank). The loss is then computed on the full output everywhere; the
   backward of rank r reaches only its own rows, dL/dtheta_r = sum_{i in r} dL/dy_i *
   dy_i/dtheta, and summing those over ranks (one all-reduce of all trainable gradients,
   queued to run when the backward finishes, as DDP does) gives exactly the gradient of the
   single-process loss on the union, for any loss of the outputs (ratio clipping, KL, DPO's
   pairs), before gradient clipping and the optimizer step.

Why not `DistributedDataParallel`: DDP hooks into `module.forward`, and the algorithms
compute their losses through `policy.log_prob` / `policy.value`, which do not go through
`forward`; its bucketed all-reduce also assumes each rank has its own minibatch, while
GRPO's minibatches are cut from the union (so that every rank runs the same number of
optimizer steps, whatever each rank's episode lengths). The equivalence is tested exactly
in tests/scale/test_distributed.py: after an update both ranks hold identical parameters,
equal (to float rounding) to a single-process update on the union.

Assumption: the loss depends on the trainable parameters only through `log_prob` /
`value` outputs (true of grpo.py, ppo.py and dpo.py); a parameter penalty added to the loss
directly would be counted once per rank. Checkpoints are written by rank 0 only (atomic,
as by `Trainer`), and their keys are those of the bare policy, so a checkpoint resumes
under any number of ranks, one included.

Launch: `torchrun --nproc-per-node N script.py` (env:// rendezvous) or
`torch.multiprocessing.spawn` with `init_distributed(rank, world, init_method=...)`.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from smoothvla.algorithms.trainer import Trainer
from smoothvla.errors import UserError
from smoothvla.policies.base import ActionChunk, DemoBatch, Policy, SFTOutput
from smoothvla.rollout.collector import CollectResult, GroupRequest
from smoothvla.trajectory import Trajectory

SEED_STRIDE = 1_000_033
"""Rank r collects with sampling seed `seed + r * SEED_STRIDE` (rank 0: the plain seed)."""


def init_distributed(
    rank: int | None = None,
    world_size: int | None = None,
    *,
    backend: str | None = None,
    init_method: str | None = None,
) -> tuple[int, int]:
    """Join the process group; returns (rank, world_size).

    Without arguments it reads torchrun's environment (RANK, WORLD_SIZE, MASTER_ADDR, ...).
    `backend` defaults to nccl when CUDA is available (each rank then uses GPU
    LOCAL_RANK) and gloo otherwise.
    """
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    world_size = int(os.environ.get("WORLD_SIZE", "1")) if world_size is None else world_size
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size), got rank {rank} of {world_size}")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", rank)) % torch.cuda.device_count())
    dist.init_process_group(backend, init_method=init_method or "env://", rank=rank, world_size=world_size)
    return rank, world_size


def shutdown_distributed() -> None:
    """Leave the process group: wait for every rank first. A rank that tears down gloo while
    a peer still holds connections to it can make that peer abort at exit ("terminate called
    without an active exception"), which is how a 2-rank test once failed after its work."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy `src`'s parameters and buffers to every rank (call before building the algorithm,
    whose reference snapshot must hold the same weights everywhere)."""
    with torch.no_grad():
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src)


@dataclass(frozen=True)
class RemoteObs:
    """Stands in for an observation that rank `rank` holds (and computes log-probs for)."""

    rank: int


class _GradSync:
    """Sums the gradients of a module's trainable parameters over ranks once per backward.

    The parameters are listed at each reduction, not once: an algorithm may add some after
    wrapping (PPO attaches a value head).
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.queued = False

    @property
    def params(self) -> list[nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    def queue(self) -> None:
        if not self.queued:
            self.queued = True
            # runs when the whole backward pass is done, i.e. after every local gradient
            # has been accumulated (DistributedDataParallel uses the same hook)
            torch.autograd.Variable._execution_engine.queue_callback(self.reduce)

    def reduce(self) -> None:
        self.queued = False
        params = self.params
        parts = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float() for p in params]
        present = torch.tensor([float(p.grad is not None) for p in params], device=params[0].device)
        flat = torch.cat(parts + [present])
        dist.all_reduce(flat)
        reached = flat[-len(params) :].tolist()
        offset = 0
        for p, count in zip(params, reached):
            n = p.numel()
            # a parameter no rank reached keeps grad None, as in a single-process backward
            p.grad = flat[offset : offset + n].view_as(p).to(p.dtype) if count > 0 else None
            offset += n


class _AssembleRows(torch.autograd.Function):
    """(M,) output from the rows each rank computed; backward keeps this rank's rows."""

    @staticmethod
    def forward(ctx, local, anchor, rows, size, sync):  # type: ignore[override]
        full = torch.zeros(size, dtype=torch.float32, device=anchor.device)
        full[rows] = local.detach().float()
        dist.all_reduce(full)
        ctx.rows, ctx.sync, ctx.local_dtype = rows, sync, local.dtype
        return full

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        ctx.sync.queue()
        return grad[ctx.rows].to(ctx.local_dtype), None, None, None, None


class ShardedPolicy(Policy):
    """Wraps a policy so that algorithms run data-parallel without knowing it.

    Every method of the `Policy` contract but `log_prob`, `log_prob_terms` and `value` goes
    to the wrapped policy, and so does every other attribute; `log_prob` and `value` compute this rank's rows (observations that are not
    `RemoteObs`) and return the full batch, float32, assembled over ranks. `state_dict`
    and `load_state_dict` are the wrapped policy's, so checkpoints do not depend on the
    number of ranks. Outputs must be (B,) tensors.
    """

    def __init__(self, policy: Policy) -> None:
        super().__init__()
        if not isinstance(policy, Policy):
            raise ValueError(f"ShardedPolicy needs a smoothvla Policy (an nn.Module), "
                             f"got {type(policy).__name__}")
        if not dist.is_initialized():
            raise RuntimeError("ShardedPolicy needs torch.distributed: call init_distributed() first")
        self.module = policy
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if not any(p.requires_grad for p in policy.parameters()):
            raise ValueError("the policy has no trainable parameters (all requires_grad=False)")
        self._sync = _GradSync(policy)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            modules = self.__dict__.get("_modules", {})
            if name.startswith("__") or "module" not in modules:  # copy/pickle probes, half-built
                raise
            return getattr(modules["module"], name)

    def log_prob(self, obs: list[Any], chunk: ActionChunk) -> torch.Tensor:
        return self._sharded(obs, lambda o, rows: self.module.log_prob(o, chunk.select(rows)))

    def log_prob_terms(self, obs: list[Any], chunk: ActionChunk) -> torch.Tensor:
        raise ValueError("per-token ratios (ratio_level='token') are not sharded over learner "
                         "processes yet: use ratio_level='chunk' with several learners")

    def value(self, obs: list[Any], extras: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        def local_value(o: list[Any], rows: torch.Tensor) -> torch.Tensor:
            local = None if extras is None else {k: v[rows] for k, v in extras.items()}
            return self.module.value(o, extras=local)

        return self._sharded(obs, local_value)

    def _sharded(self, obs: list[Any], fn: Callable[[list[Any], torch.Tensor], torch.Tensor]) -> torch.Tensor:
        local = [i for i, o in enumerate(obs) if not isinstance(o, RemoteObs)]
        if self.world_size == 1:
            return fn(obs, torch.arange(len(obs))).float()
        device = self._sync.params[0].device
        rows = torch.tensor(local, dtype=torch.long, device=device)
        if local:
            out = fn([obs[i] for i in local], rows.cpu())
            if out.shape != (len(local),):
                raise ValueError(f"ShardedPolicy expects (B,) outputs, got shape {tuple(out.shape)}")
        else:
            out = torch.zeros(0, device=device)
        # an empty slice of a parameter keeps this rank in the backward (and in the gradient
        # all-reduce) even when it owns none of the rows
        anchor = self._sync.params[0].reshape(-1)[:0]
        return _AssembleRows.apply(out, anchor, rows, len(obs), self._sync)

    # the bare policy's keys: checkpoints resume under any number of ranks
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self.module.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        return self.module.load_state_dict(state_dict, strict=strict, assign=assign)

    # -- the rest of the contract: the wrapped policy's ------------------------------------
    @property
    def chunk_size(self) -> int:
        return self.module.chunk_size

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.module.cameras

    @property
    def image_size(self) -> int | None:
        return self.module.image_size

    @property
    def device(self) -> torch.device:
        return self.module.device

    @property
    def has_value_head(self) -> bool:
        return self.module.has_value_head

    def attach_value_head(self) -> None:
        self.module.attach_value_head()  # _GradSync lists the new parameters at each reduction

    def act(self, obs: list[Any], *, sample: bool, prefix: np.ndarray | None = None) -> ActionChunk:
        return self.module.act(obs, sample=sample, prefix=prefix)

    def reset(self) -> None:
        self.module.reset()

    def fit_statistics(self, actions: np.ndarray, proprio: np.ndarray, chunks: np.ndarray) -> None:
        self.module.fit_statistics(actions, proprio, chunks)

    def sft_loss(self, batch: DemoBatch) -> SFTOutput:
        return self.module.sft_loss(batch)

    def save(self, directory: str | Path) -> None:
        self.module.save(directory)

    @classmethod
    def load(cls, directory: str | Path) -> Policy:
        raise UserError("a ShardedPolicy is not saved: load the wrapped policy's checkpoint "
                        "and wrap it again")


def strip_observations(traj: Trajectory, rank: int) -> Trajectory:
    """A copy of `traj` whose chunk observations are `RemoteObs(rank)` placeholders."""
    placeholders = None if traj.chunk_obs is None else [RemoteObs(rank)] * len(traj.chunk_obs)
    return dataclasses.replace(traj, chunk_obs=placeholders, extras=dict(traj.extras))


def merge_shards(shards: list[list[Trajectory]]) -> list[Trajectory]:
    """The union of per-rank trajectories in single-process order, by (group_id, member).

    Rank r's local group j is global group r + j * world (`ShardedCollector` renumbers).
    """
    union = [t for shard in shards for t in shard]
    union.sort(key=lambda t: (t.group_id, t.extras.get("member", 0)))
    return union


def merge_stats(all_stats: list[dict[str, float]]) -> dict[str, float]:
    """Counts add up over ranks; seconds (`*_s`) are the slowest rank's."""
    merged: Counter = Counter()
    for stats in all_stats:
        for key, value in stats.items():
            merged[key] = max(merged[key], value) if key.endswith("_s") else merged[key] + value
    return {k: float(v) for k, v in merged.items()}


class ShardedCollector:
    """Collects this rank's share of the groups and returns the union over ranks.

    Wraps a `Collector` (any pool: process, Ray). Local trajectories keep their
    observations; those of other ranks carry `RemoteObs` placeholders.
    """

    def __init__(self, collector: Any) -> None:
        if not dist.is_initialized():
            raise RuntimeError("ShardedCollector needs torch.distributed: call init_distributed() first")
        self.collector = collector
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()

    @property
    def pool(self) -> Any:
        return self.collector.pool

    def collect_local(self, groups: list[GroupRequest], seed: int) -> CollectResult:
        """This rank's share, groups[rank::world], with global group ids."""
        share = groups[self.rank :: self.world_size]
        if not share:
            return CollectResult([], {}, [])
        result = self.collector.collect(share, seed=seed + self.rank * SEED_STRIDE)
        for traj in result.trajectories:
            traj.group_id = self.rank + traj.group_id * self.world_size
        return result

    def collect(self, groups: list[GroupRequest], seed: int) -> CollectResult:
        local = self.collect_local(groups, seed)
        payload = ([strip_observations(t, self.rank) for t in local.trajectories], local.stats, local.errors)
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, payload)
        shards = [local.trajectories if r == self.rank else trajs for r, (trajs, _, _) in enumerate(gathered)]
        errors = [e for _, _, errs in gathered for e in errs]
        return CollectResult(merge_shards(shards), merge_stats([s for _, s, _ in gathered]), errors)


class DistributedTrainer(Trainer):
    """`Trainer` for one rank: same loop, union of all ranks' rollouts per update; rank 0
    alone writes the log, config and (atomic) checkpoints; every rank resumes from them.

    `algorithm` must be built around a `ShardedPolicy` (after `broadcast_module`), and
    `collector` is this rank's plain `Collector`.
    """

    def __init__(self, cfg: Any, algorithm: Any, collector: Any, **kwargs: Any) -> None:
        if not isinstance(algorithm.policy, ShardedPolicy):
            raise ValueError("DistributedTrainer needs an algorithm built around a ShardedPolicy")
        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if self.rank != 0:
            kwargs["echo"] = None
        super().__init__(cfg, algorithm, ShardedCollector(collector), **kwargs)

    def _start(self) -> None:
        if self.checkpoint_path.exists() and not self.cfg.resume:
            # every rank raises (the file system is shared), so none waits at a barrier
            raise ValueError(
                f"{self.out} already holds a checkpoint; pass --resume to continue it or choose another out_dir"
            )
        if self.rank == 0:
            super()._start()
        dist.barrier()
        if self.rank != 0 and self.checkpoint_path.exists():
            self._restore_state()  # without touching the log: rank 0 owns it


    def _log(self, stats: dict[str, float], errors: list[str]) -> None:
        if self.rank == 0:
            super()._log({**stats, "world_size": float(self.world_size)}, errors)

    def save_checkpoint(self) -> None:
        if self.rank == 0:
            super().save_checkpoint()
        dist.barrier()  # nobody runs ahead of a checkpoint that is not on disk yet


def parameters_equal_across_ranks(module: nn.Module) -> bool:
    """Whether every rank holds bit-identical parameters (a cheap all-reduce check)."""
    flat = torch.cat([p.detach().reshape(-1).float() for p in module.parameters()])
    low, high = flat.clone(), flat.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return bool(torch.equal(low, high) and np.isfinite(flat.sum().item()))
