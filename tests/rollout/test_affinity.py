"""Task affinity: the assignment by hand, and on the tabletop suite fewer env builds with the
very same trajectories (batched sampling, greedy and episode-seeded evaluation)."""

import functools

import numpy as np
import pytest
import torch

from smoothvla.envs import make
from smoothvla.eval import ResultsFile, runner
from smoothvla.eval.runner import EvalPlan, PolicyRef, evaluate
from smoothvla.eval.sampling import EpisodeSeededFactory, EpisodeSeededPolicy
from smoothvla.policies.base import ActionChunk
from smoothvla.rollout.affinity import assign_episodes
from smoothvla.rollout.collector import Collector, GroupRequest
from smoothvla.rollout.pool import InProcessPool

torch.set_num_threads(1)
A, B, C = (f"tabletop-object/pick-{o}-place-basket-v1" for o in ("ketchup", "mustard", "milk"))


# -- the assignment, by hand ------------------------------------------------------------------

def test_an_episode_takes_a_free_slot_holding_its_task():
    # slots 0..3 hold A, B, none, A; episodes A, B, C start (plan order kept)
    held = {0: "A", 1: "B", 3: "A"}
    assert assign_episodes(["A", "B", "C"], [0, 1, 2, 3], held) == [(0, 0), (1, 1), (2, 2)]
    # B first: it takes slot 1, A takes slot 0, C the empty slot 2 before rebuilding slot 3
    assert assign_episodes(["B", "A", "C", "A"], [0, 1, 2, 3], held) == [
        (0, 1), (1, 0), (2, 2), (3, 3)]
    # the second A finds slot 3; C falls to slot 0 (no empty slot is free)
    assert assign_episodes(["C", "A", "A"], [0, 1, 3], held) == [(0, 1), (1, 0), (2, 3)]


def test_without_reorder_the_first_episodes_start_in_plan_order():
    held = {0: "A", 1: "A"}
    # two free slots: episodes 0 and 1 start although episode 2 is of the slots' task
    assert assign_episodes(["B", "B", "A"], [0, 1], held) == [(0, 0), (1, 1)]
    assert assign_episodes(["B", "A"], [0, 1, 5], held) == [(0, 5), (1, 0)]
    assert assign_episodes([], [0, 1], held) == [] and assign_episodes(["A"], [], held) == []


def test_reorder_starts_a_pending_episode_of_a_free_slots_task_first():
    held = {0: "A", 1: "B", 2: "A"}
    # slot 0 and 2 want A (episodes 2 and 4), slot 1 wants B (episode 1); by pending index
    assert assign_episodes(["C", "B", "A", "C", "A"], [0, 1, 2], held, reorder=True) == [
        (1, 1), (2, 0), (4, 2)]
    # one A pending for two A slots: the first C fills up, on the A slot left over
    assert assign_episodes(["C", "B", "A", "C"], [0, 1, 2], held, reorder=True) == [
        (0, 2), (1, 1), (2, 0)]
    # no slot holds a task: plan order
    assert assign_episodes(["C", "B", "A"], [4, 5], {}, reorder=True) == [(0, 4), (1, 5)]


def test_without_affinity_slots_take_episodes_in_order():
    held = {0: "B", 1: "A"}
    assert assign_episodes(["A", "B", "C"], [0, 1], held, affinity=False) == [(0, 0), (1, 1)]
    assert assign_episodes(["A", "B"], [1, 0], held, reorder=True, affinity=False) == [
        (0, 1), (1, 0)]


# -- on the tabletop suite: fewer builds, same trajectories ----------------------------------

class ProprioPolicy:
    """A fixed random linear map of the proprio state, plus noise when sampling."""

    chunk_size = 4

    def __init__(self):
        self.weight = torch.randn(8, 4 * 7, generator=torch.Generator().manual_seed(0))

    def reset(self):
        pass

    def act(self, obs, *, sample):
        p = torch.as_tensor(np.stack([o["proprio"] for o in obs]), dtype=torch.float32)
        mean = torch.tanh(p @ self.weight).view(len(obs), 4, 7) * 0.5
        noise = torch.randn(mean.shape) if sample else torch.zeros_like(mean)
        return ActionChunk(mean + 0.3 * noise, (noise ** 2).sum((1, 2)), {"noise": noise})


class SpyFactory:
    """`make` with cameras=(), recording every env build's task."""

    def __init__(self):
        self.built = []

    def __call__(self, task_id, **options):
        self.built.append(task_id)
        return make(task_id, **{**options, "cameras": ()})


def collect(groups, num_envs, *, affinity, seeded=False, seed=0):
    spy = SpyFactory()
    policy, factory = ProprioPolicy(), spy
    if seeded:
        policy, factory = EpisodeSeededPolicy(policy), EpisodeSeededFactory(spy, "none", 0.0, 3)
    with InProcessPool(num_envs, env_factory=factory) as pool:
        collector = Collector(policy, pool, max_steps=12, affinity=affinity, any_order=seeded)
        results = [collector.collect(g, seed=seed + i) for i, g in enumerate(groups)]
    return results, spy.built


def same_trajectories(one, two):
    for a, b in zip(one, two, strict=True):
        assert [(t.group_id, t.extras["member"], t.task_id) for t in a.trajectories] == [
            (t.group_id, t.extras["member"], t.task_id) for t in b.trajectories]
        for s, t in zip(a.trajectories, b.trajectories):
            assert np.array_equal(s.actions, t.actions) and np.array_equal(s.ee_pos, t.ee_pos)
            assert np.array_equal(s.log_probs, t.log_probs)


def test_batched_sampling_gives_the_same_trajectories_with_fewer_builds():
    # 4 envs, every episode 12 steps = 3 rounds, so episodes start 4 at a time:
    # A A B B | B B A A | A A B B. In order, envs 0-1 switch A -> B -> A and envs 2-3
    # B -> A -> B: 4 + 4 + 4 = 12 builds; with affinity only the first 4.
    groups = [[GroupRequest(A, 0, 5, 2), GroupRequest(B, 1, 6, 2), GroupRequest(B, 2, 7, 2),
               GroupRequest(A, 3, 8, 2), GroupRequest(A, 4, 9, 2), GroupRequest(B, 5, 10, 2)]]
    plain, built_plain = collect(groups, 4, affinity=False)
    near, built_near = collect(groups, 4, affinity=True)
    same_trajectories(plain, near)
    assert len(built_plain) == plain[0].stats["env_builds"] == 12
    assert len(built_near) == near[0].stats["env_builds"] == 4
    # members of a group differ (batched sampling did sample), and the policy saw the same
    assert not np.array_equal(near[0].trajectories[0].actions, near[0].trajectories[1].actions)


def test_the_envs_task_is_kept_across_collect_calls():
    # two calls (an iteration each): A A B B, then B B A A -> 4 builds only with affinity
    groups = [[GroupRequest(A, 0, 5, 2), GroupRequest(B, 1, 6, 2)],
              [GroupRequest(B, 2, 7, 2), GroupRequest(A, 3, 8, 2)]]
    plain, built_plain = collect(groups, 4, affinity=False)
    near, built_near = collect(groups, 4, affinity=True)
    same_trajectories(plain, near)
    assert (len(built_plain), len(built_near)) == (8, 4)
    assert [r.stats["env_builds"] for r in near] == [4, 0]


def test_episode_seeded_episodes_start_out_of_order_with_the_same_trajectories():
    # 2 envs, groups A(2) B(2) A(2): in plan order both envs go A -> B -> A (6 builds);
    # reordered, the A envs run the second A group before B (2 + 0 + 2 = 4 builds)
    groups = [[GroupRequest(A, 0, 5, 2), GroupRequest(B, 1, 6, 2), GroupRequest(A, 2, 7, 2)]]
    plain, built_plain = collect(groups, 2, affinity=False, seeded=True)
    near, built_near = collect(groups, 2, affinity=True, seeded=True)
    same_trajectories(plain, near)
    assert built_plain == [A, A, B, B, A, A] and built_near == [A, A, B, B]


@pytest.mark.parametrize("sample", [False, True])
def test_evaluation_rows_are_the_same_with_fewer_builds(tmp_path, monkeypatch, sample):
    """Greedy (batched) and sampled (episode-seeded) evaluation of 3 tasks x 3 init states
    on 4 envs in batches of 4 episodes: the same rows in the same order, fewer builds."""
    (tmp_path / "ckpt").write_bytes(b"weights")
    ref = PolicyRef("p", str(tmp_path / "ckpt"))
    plan = EvalPlan(task_ids=[A, B, C], init_ids=range(3), sample=sample, max_steps=12)

    def run(name, affinity):
        spy = SpyFactory()
        monkeypatch.setattr(runner, "Collector", functools.partial(Collector, affinity=affinity))
        rows = evaluate(ProprioPolicy(), ref, plan, ResultsFile(tmp_path / name), workers=0,
                        envs_per_worker=4, batch_episodes=4, env_factory=spy, progress=False)
        return [(r.task_id, r.init_id, r.steps, r.ee_path, r.mean_jerk) for r in rows], spy.built

    plain, built_plain = run("plain.jsonl", False)
    near, built_near = run("near.jsonl", True)
    assert near == plain and [(t, i) for t, i, *_ in near] == [
        (t, i) for t in (A, B, C) for i in range(3)]
    # batches A0 A1 A2 B0 | B1 B2 C0 C1 | C2 on envs 0-3. In order: envs 0-3 build A A A B,
    # then B B C C (env 3 B -> C), then env 0 C: 9 builds. With affinity B1 goes to env 3
    # (B), B2 C0 C1 rebuild envs 0 1 2, and C2 finds env 1 (C): 7.
    assert built_plain == [A, A, A, B, B, B, C, C, C]
    assert built_near == [A, A, A, B, B, C, C]


def test_an_env_lost_to_a_failed_reset_is_built_again():
    # one env: A, then a task that fails to build (the slot discards its A env), then A again
    bad = "tabletop-object/nope-v1"
    groups = [[GroupRequest(A, 0, 5, 1), GroupRequest(bad, 0, 5, 1), GroupRequest(A, 1, 5, 1)]]
    (result,), built = collect(groups, 1, affinity=True)
    assert [t.task_id for t in result.trajectories] == [A, A]
    assert result.stats["dropped_error"] == 1
    assert built == [A, bad, A] and result.stats["env_builds"] == 3
