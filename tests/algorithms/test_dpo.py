"""DPO: preference pairs within groups, the loss moves the policy towards the preferred."""

import math

import pytest
import torch

from smoothvla.algorithms.dpo import DPO, DPOConfig, preference_pairs


def test_preference_pairs_by_hand():
    rewards = [0.8, 0.0, 0.6, 0.0, 1.0, 0.9]
    # group {0, 1, 2, 3}: gaps 0.8 (0>1), 0.8 (0>3), 0.6 (2>1), 0.6 (2>3), 0.2 (0>2)
    assert preference_pairs(rewards, [0, 1, 2, 3], 1e-6, 3) == [(0, 1), (0, 3), (2, 1)]
    assert preference_pairs(rewards, [0, 1, 2, 3], 0.7, 10) == [(0, 1), (0, 3)]
    assert preference_pairs(rewards, [1, 3], 1e-6, 4) == []  # equal rewards: no pair


def test_dpo_moves_log_probs_towards_the_preferred(fake_policy, collect_groups):
    trajs = collect_groups(fake_policy, init_ids=(0, 1), size=3)
    for t, r in zip(trajs, [1.0, 0.0, 0.5, 0.2, 0.2, 0.2]):
        t.reward, t.reward_terms = r, {}
    algo = DPO(fake_policy, DPOConfig(lr=1e-2, beta=0.5, minibatch_pairs=16))
    first = algo.update(trajs)
    # group 0 gives 3 pairs, group 1 (equal rewards) none; the first step starts at the reference
    assert first["pairs"] == 3 and first["loss"] == pytest.approx(math.log(2), abs=1e-5)
    for _ in range(4):
        last = algo.update(trajs)
    assert last["loss"] < first["loss"] and last["accuracy"] == 1.0 and last["margin"] > 0
    assert last["weight_drift"] > 0


def test_no_pairs_no_step(fake_policy, collect_groups):
    trajs = collect_groups(fake_policy, init_ids=(0,), size=2)
    for t in trajs:
        t.reward, t.reward_terms = 0.0, {}
    before = [p.detach().clone() for p in fake_policy.parameters()]
    stats = DPO(fake_policy, DPOConfig()).update(trajs)
    assert stats["skipped"] == 1 and stats["pairs"] == 0
    assert all(torch.equal(a, b) for a, b in zip(before, fake_policy.parameters()))


@pytest.mark.parametrize(
    "kwargs, message", [({"beta": 0.0}, "beta"), ({"min_reward_gap": -1.0}, "min_reward_gap")]
)
def test_bad_dpo_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DPOConfig(**kwargs)
