"""Evaluation runner on the point-mass stand-in: results appended, resumed, nothing twice."""

import pytest
import torch

from smoothvla.eval import ResultsFile, read_results
from smoothvla.eval.runner import EvalPlan, PolicyRef, evaluate
from smoothvla.rollout.fake_env import make_point_mass
from smoothvla.rollout.fake_policy import GaussianChunkPolicy


def factory(task_id, perturbation=None, **options):
    # "slow" halves how far one action moves the point: a perturbation that changes dynamics
    return make_point_mass(task_id, gain=0.025 if perturbation else 0.05, **options)


def test_policy_ref_parsing():
    assert PolicyRef.parse("runs/sft") == PolicyRef("sft", "runs/sft", 0)
    assert PolicyRef.parse("grpo@2=runs/x") == PolicyRef("grpo", "runs/x", 2)
    with pytest.raises(ValueError, match="LABEL@SEED"):
        PolicyRef.parse("grpo@x=runs/x")


def test_evaluate_appends_and_resumes(tmp_path):
    torch.manual_seed(0)
    policy = GaussianChunkPolicy(chunk_size=4)
    plan = EvalPlan(task_ids=["fake-reach/point-mass-v1"], init_ids=range(4), seeds=(0, 1),
                    perturbations=("none", "slow@0.5"), record_paths=1)
    results = ResultsFile(tmp_path / "r.jsonl")
    ref = PolicyRef("fake", "-")
    calls = []
    first = evaluate(policy, ref, plan, results, workers=0, batch_episodes=3, env_factory=factory,
                     progress=False, on_batch=calls.append)
    assert len(first) == 16 and len(calls) == 6  # 8 episodes per perturbation, batches of 3
    stored = read_results([results.path])
    assert len(stored) == 16
    assert {r.perturbation for r in stored} == {"none", "slow"}
    assert all(r.steps > 0 and r.mean_jerk == r.mean_jerk for r in stored)
    assert sum(r.ee_path is not None for r in stored) == 4  # init 0 x 2 seeds x 2 perturbations
    again = evaluate(policy, ref, plan, ResultsFile(results.path), workers=0,
                     env_factory=factory, progress=False)
    assert again == [] and len(read_results([results.path])) == 16


def test_sampled_evaluation_differs_from_greedy_and_repeats(tmp_path):
    policy = GaussianChunkPolicy(chunk_size=4, init_std=0.5)
    task = ["fake-reach/point-mass-v1"]

    def run(name, sample):
        plan = EvalPlan(task_ids=task, init_ids=range(3), sample=sample, record_paths=3)
        return evaluate(policy, PolicyRef(name, "-"), plan, ResultsFile(tmp_path / f"{name}.jsonl"),
                        workers=0, env_factory=factory, progress=False)

    greedy, sampled, again = run("g", False), run("s", True), run("s2", True)
    assert [r.ee_path for r in sampled] == [r.ee_path for r in again]  # seeded per batch
    assert [r.ee_path for r in sampled] != [r.ee_path for r in greedy]
