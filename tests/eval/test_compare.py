"""Paired comparisons, worked out by hand."""

import math

import pytest

from smoothvla.eval.compare import mcnemar_exact, paired
from smoothvla.eval.results import EpisodeResult


def test_mcnemar_exact_by_hand():
    # b = 0, c = 5: p = 2 * 0.5^5 = 0.0625; b = 1, c = 4: 2 * (1 + 5) / 32 = 0.375
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)
    assert mcnemar_exact(1, 4) == pytest.approx(0.375)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0


def ep(policy, init, success, jerk, train_seed=0):
    return EpisodeResult(policy=policy, task_id="t", init_id=init, seed=0, success=success,
                         mean_jerk=jerk, train_seed=train_seed)


def test_paired_counts_discordant_pairs_and_jerk_of_common_successes():
    a = [ep("a", 0, True, 10.0), ep("a", 1, True, 20.0), ep("a", 2, False, 5.0), ep("a", 3, True, 8.0)]
    b = [ep("b", 0, True, 8.0), ep("b", 1, True, 14.0), ep("b", 2, True, 4.0), ep("b", 3, False, 1.0),
         ep("b", 9, True, 1.0)]  # init 9 has no partner
    c = paired(a, b)
    assert (c.pairs, c.only_a, c.only_b) == (4, 1, 1) and c.success_p == 1.0
    # both succeeded on inits 0 and 1: mean 11 vs 15
    assert c.jerk_pairs == 2 and c.jerk_change == pytest.approx(11 / 15 - 1)
    assert 0 < c.jerk_p <= 1


def test_several_training_seeds_pair_with_one_reference():
    a = [ep("a", 0, False, math.nan)]
    b = [ep("b", 0, True, 3.0, train_seed=s) for s in range(3)]
    assert paired(a, b).only_b == 3
    # two seeded policies: seed i against seed i
    b2 = [ep("c", 0, s != 1, 2.0, train_seed=s) for s in range(3)]
    c = paired(b, b2)
    assert (c.pairs, c.only_a, c.only_b, c.jerk_pairs) == (3, 1, 0, 2)
