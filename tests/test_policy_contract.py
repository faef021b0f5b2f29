"""The `Policy` contract is complete: a policy that is not the compact VLA (a Gaussian MLP
on proprio only, written here against `smoothvla.policies.Policy` alone) goes through SFT,
one GRPO iteration and an evaluation on the tabletop suite."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from smoothvla.algorithms import sft
from smoothvla.algorithms.trainer import TrainConfig, Trainer, make_algorithm
from smoothvla.data.hdf5 import Demo, DemoWriter
from smoothvla.errors import UserError
from smoothvla.eval.results import ResultsFile
from smoothvla.eval.runner import EvalPlan, PolicyRef, evaluate
from smoothvla.policies import ActionChunk, DemoBatch, Policy, SFTOutput
from smoothvla.rewards import RewardConfig
from smoothvla.rollout.collector import Collector
from smoothvla.rollout.pool import InProcessPool

torch.set_num_threads(1)
TASK = "tabletop-object/pick-ketchup-place-basket-v1"
STATE_ONLY = {"cameras": ()}  # the policy reads no camera: the envs render none


class ProprioMLP(Policy):
    """Diagonal Gaussian over (k, 7) chunks, its mean an MLP of the 8 proprio values."""

    def __init__(self, chunk_size: int = 4, hidden: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.config = {"chunk_size": chunk_size, "hidden": hidden, "seed": seed}
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(8, hidden), nn.Tanh(), nn.Linear(hidden, chunk_size * 7))
        self.log_std = nn.Parameter(torch.full((chunk_size * 7,), -1.0))

    @property
    def chunk_size(self) -> int:
        return self.config["chunk_size"]

    @property
    def cameras(self) -> tuple[str, ...]:
        return ()

    def reset(self) -> None:
        pass

    def _dist(self, obs: list) -> torch.distributions.Normal:
        x = torch.as_tensor(np.stack([o["proprio"] for o in obs]), dtype=torch.float32)
        mean = torch.tanh(self.net(x)).view(len(obs), self.chunk_size, 7)
        return torch.distributions.Normal(mean, self.log_std.exp().view(self.chunk_size, 7))

    def act(self, obs, *, sample, prefix=None) -> ActionChunk:
        if prefix is not None:
            raise UserError("ProprioMLP has no prefix conditioning")
        with torch.no_grad():
            dist = self._dist(obs)
            actions = dist.sample() if sample else dist.mean
            logp = dist.log_prob(actions).sum((1, 2)) if sample else torch.zeros(len(obs))
        return ActionChunk(actions, logp, {})

    def log_prob(self, obs, chunk: ActionChunk) -> torch.Tensor:
        return self._dist(obs).log_prob(chunk.actions).sum((1, 2))

    def sft_loss(self, batch: DemoBatch) -> SFTOutput:
        mean = self._dist(batch.obs).mean
        mask = torch.ones(mean.shape[:2]) if batch.mask is None else batch.mask.float()
        loss = (((mean - batch.actions.float()) ** 2).mean(-1) * mask).sum() / mask.sum()
        return SFTOutput(loss, {"mse": float(loss.detach())}, mean)

    def save(self, directory) -> None:
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in self.state_dict().items()},
                  str(directory / "model.safetensors"))
        (directory / "config.json").write_text(json.dumps(self.config))

    @classmethod
    def load(cls, directory) -> "ProprioMLP":
        from safetensors.torch import load_file

        policy = cls(**json.loads((Path(directory) / "config.json").read_text()))
        policy.load_state_dict(load_file(str(Path(directory) / "model.safetensors")))
        return policy


def write_state_demos(path, n_demos=2, steps=10):
    """LIBERO-layout demos of TASK without images: proprio and smooth actions."""
    with DemoWriter(path) as writer:
        for i in range(n_demos):
            t = np.arange(steps)[:, None] / steps
            actions = np.concatenate([np.sin(3 * t + np.arange(6)), -np.ones((steps, 1))], 1) * 0.5
            obs = {"ee_pos": 0.4 + np.cumsum(actions[:, :3], 0) * 0.01,
                   "ee_ori": np.tile([np.pi, 0.0, 0.0], (steps, 1)),
                   "gripper_states": np.full((steps, 2), 0.04), "joint_states": np.zeros((steps, 7))}
            writer.add(Demo(actions=actions, obs=obs, attrs={
                "instruction": "pick up the ketchup and place it in the basket",
                "task_id": TASK, "init_id": i, "seed": i}))
    return path


def _params(policy: Policy) -> torch.Tensor:
    return torch.cat([p.detach().flatten().clone() for p in policy.parameters()])


def test_an_outside_policy_goes_through_sft_grpo_and_evaluation(tmp_path):
    demos = write_state_demos(tmp_path / "demos.hdf5")
    policy = ProprioMLP(seed=3)
    before = _params(policy)
    cfg = sft.SFTConfig(data=(str(demos),), run_dir=str(tmp_path / "sft"), steps=4, batch_size=8,
                        lr=1e-2, warmup_steps=1, log_every=1, checkpoint_every=2, eval_every=4,
                        eval_episodes=1, smooth_weight=0.1, progress=False, tensorboard=False)
    sft.train(cfg, policy)
    # resumed through the contract's `load`: two more steps from the step-4 checkpoint
    final = sft.train(sft.SFTConfig(**{**cfg.__dict__, "steps": 6, "resume": True}), ProprioMLP())
    log = [json.loads(line) for line in (tmp_path / "sft" / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "mse" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["total_loss"]) and np.isfinite(r["smooth"]) for r in steps)
    evals = [r for r in log if "eval_success" in r]  # SFT's own rollouts on the tabletop task
    assert len(evals) == 1 and evals[0]["eval_episodes"] == 1
    trained = ProprioMLP.load(final)
    assert not torch.equal(_params(trained), before)

    # one GRPO iteration: rollouts on the tabletop task, random rewards (a spread to learn from)
    rl_cfg = TrainConfig(tasks=(TASK,), iterations=1, groups_per_iteration=1, group_size=2,
                         init_ids=(0,), out_dir=str(tmp_path / "rl"),
                         reward=RewardConfig(name="random"))
    trained.eval()
    start = _params(trained)
    with InProcessPool(2, env_options=STATE_ONLY) as pool:
        collector = Collector(trained, pool, max_steps=12)
        stats = Trainer(rl_cfg, make_algorithm(trained, rl_cfg), collector, echo=None).run()
    assert len(stats) == 1 and np.isfinite(stats[0]["loss"])
    assert not torch.equal(_params(trained), start)
    exported = ProprioMLP.load(tmp_path / "rl" / "policy")
    assert torch.equal(_params(exported), _params(trained))

    # evaluation on the suite, through the same collector and pools as `smoothvla eval`
    results = ResultsFile(tmp_path / "eval.jsonl")
    plan = EvalPlan(task_ids=[TASK], init_ids=[0], env_options=STATE_ONLY)
    rows = evaluate(exported, PolicyRef("mlp", str(tmp_path / "rl" / "policy")), plan, results,
                    workers=0, progress=False)
    assert len(rows) == 1 and rows[0].task_id == TASK and rows[0].policy == "mlp"


def test_a_policy_missing_an_abstract_method_cannot_be_built():
    class Incomplete(Policy):
        chunk_size = 4
        cameras = ()

        def reset(self):
            pass

        def act(self, obs, *, sample, prefix=None):
            raise NotImplementedError

        def log_prob(self, obs, chunk):
            raise NotImplementedError

        def save(self, directory):
            pass

        @classmethod
        def load(cls, directory):
            return cls()

    with pytest.raises(TypeError, match="abstract.*sft_loss"):
        Incomplete()
    ProprioMLP()  # the complete one builds


def test_optional_capabilities_say_which_policy_lacks_them():
    policy = ProprioMLP()
    obs = [{"proprio": np.zeros(8, np.float32)}]
    chunk = policy.act(obs, sample=True)
    assert not policy.has_value_head
    for call in (lambda: policy.value(obs), policy.attach_value_head,
                 lambda: policy.log_prob_terms(obs, chunk)):
        with pytest.raises(UserError, match="ProprioMLP"):
            call()
    with pytest.raises(UserError, match="prefix"):
        policy.act(obs, sample=False, prefix=np.zeros((1, 1, 7)))
    assert policy.device == torch.device("cpu") and policy.image_size is None
