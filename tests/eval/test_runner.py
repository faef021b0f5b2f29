"""Evaluation runner on the point-mass stand-in: results appended, resumed, nothing twice."""

import math

import numpy as np
import pytest
import torch

from smoothvla.eval import ResultsFile, read_results
from smoothvla.eval.runner import EvalPlan, PolicyRef, episode_result, evaluate
from smoothvla.rollout.fake_env import make_point_mass
from smoothvla.rollout.fake_policy import GaussianChunkPolicy
from smoothvla.rollout.trajectory import Trajectory


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
    for r in stored:
        assert (r.chunk_start_steps is not None) == (r.ee_path is not None)
        assert r.chunk_start_steps is None or r.chunk_start_steps[:2] == [0, 4]
        total = r.jerk_boundary_windows + r.jerk_inside_windows + r.jerk_event_windows
        assert total == pytest.approx(1.0)
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


def test_episode_result_carries_the_jerk_split():
    # x has third differences 1..5 at dt = 1: ||j_t|| = t + 1 for the 5 windows
    x = [0.0, 0.0, 0.0]
    for d in (1.0, 2.0, 3.0, 4.0, 5.0):
        x.append(d + 3 * x[-1] - 3 * x[-2] + x[-3])
    pos = np.stack([x, np.zeros(8), np.zeros(8)], 1)
    actions = np.zeros((7, 7))
    actions[6, 6] = 1.0  # close command at action 6
    traj = Trajectory(ee_pos=pos, actions=actions, control_dt=1.0, success=True,
                      chunk_starts=np.array([1, 0, 0, 1, 0, 0, 1], bool),
                      is_grasping=np.zeros(8, bool), task_id="s/t")
    r = episode_result(traj, PolicyRef("p", "-"), "none", keep_path=True)
    # margin 2 around action 6: windows 2, 3, 4 are events; window 1 boundary, 0 inside
    assert r.jerk_event == pytest.approx(4.0) and r.jerk_event_share == pytest.approx(12 / 15)
    assert r.jerk_boundary == 2.0 and r.jerk_boundary_windows == pytest.approx(1 / 5)
    assert r.jerk_inside == 1.0 and r.jerk_inside_share == pytest.approx(1 / 15)
    assert r.chunk_start_steps == [0, 3, 6] and r.event_steps == [6]
    assert r.jerk_trace == pytest.approx([1, 2, 3, 4, 5])
    bare = episode_result(traj, PolicyRef("p", "-"), "none", keep_path=False)
    assert bare.chunk_start_steps is None and bare.event_steps is None and bare.jerk_trace is None
    assert bare.jerk_event == r.jerk_event
    no_chunks = Trajectory(ee_pos=pos, actions=actions, control_dt=1.0, success=True)
    assert math.isnan(episode_result(no_chunks, PolicyRef("p", "-"), "none", True).jerk_boundary)
