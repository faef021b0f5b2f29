"""Smoothness credit: GRPO's decoupled and per-chunk advantages, PPO's dense jerk penalty,
the logged smoothness share, and the option rules (docs/rl.md, "Smoothness credit").

The point-mass rollouts have 17 positions, 16 actions and 4 chunks of 4 actions; their
paths are replaced by ones whose jerk is set window by window, so every number below is
worked out by hand. Jerk window t belongs to the chunk holding action t + 2: chunk 0 owns
windows 0-1, chunks 1-3 own 4 windows each (14 in all)."""

import numpy as np
import pytest
import torch

import smoothvla.algorithms.grpo as grpo_module
import smoothvla.algorithms.ppo as ppo_module
from smoothvla.algorithms.common import check_smoothness_credit
from smoothvla.algorithms.grpo import GRPO, GRPOConfig
from smoothvla.algorithms.ppo import PPO, PPOConfig
from smoothvla.errors import UserError
from smoothvla.rewards import binary_reward, smooth_reward

DT = 0.05
WINDOWS = [2, 4, 4, 4]  # jerk windows owned by each of the 4 chunks


def path_with_jerk(chunk_jerk):
    """(17, 3) path along x whose jerk window t is chunk_jerk[chunk owning t] (m/s^3)."""
    per_window = np.repeat(chunk_jerk, WINDOWS).astype(float)
    x = np.zeros(17)
    for t, j in enumerate(per_window):
        x[t + 3] = j * DT**3 + 3 * x[t + 2] - 3 * x[t + 1] + x[t]
    return np.stack([x, np.zeros(17), np.zeros(17)], axis=1)


def setup(trajs, successes, chunk_jerks, reward=binary_reward):
    for t, s, j in zip(trajs, successes, chunk_jerks):
        assert t.num_chunks == 4 and len(t.ee_pos) == 17 and t.control_dt == DT
        t.success = s
        t.ee_pos = path_with_jerk(j)
        t.reward, t.reward_terms = reward(t)


def spy_advantages(monkeypatch, module):
    seen = []
    real = module.clipped_surrogate

    def spy(logp_new, logp_old, adv, eps_low, eps_high):
        seen.append((logp_old.clone(), adv.clone()))
        return real(logp_new, logp_old, adv, eps_low, eps_high)

    monkeypatch.setattr(module, "clipped_surrogate", spy)
    return seen


def assert_chunk_advantages(seen, trajs, per_chunk):
    """The advantages the loss saw, as (log-prob, advantage) pairs, equal `per_chunk`
    (a list of 4 advantages per trajectory); minibatches are shuffled."""
    ((logp_old, adv),) = seen
    got = sorted(zip(logp_old.tolist(), adv.tolist()))
    want = sorted((lp, a) for t, advs in zip(trajs, per_chunk)
                  for lp, a in zip(t.log_probs.tolist(), advs))
    assert len(got) == len(want)
    for (lg, ag), (lw, aw) in zip(got, want):
        assert lg == pytest.approx(lw, abs=1e-5) and ag == pytest.approx(aw, abs=1e-5)


def test_path_with_jerk_has_the_jerk_it_was_built_with():
    from smoothvla.metrics.attribution import chunk_jerk

    sums, windows = chunk_jerk(path_with_jerk([1.0, 2.0, 3.0, 4.0]), DT, 4)
    assert windows.tolist() == WINDOWS
    np.testing.assert_allclose(sums / windows, [1.0, 2.0, 3.0, 4.0], rtol=1e-6)


def test_decoupled_advantages_in_an_update(fake_policy, collect_groups, monkeypatch):
    trajs = collect_groups(fake_policy, size=4)
    # mean jerk 2 4 6 9 (constant per path); losses test: 1.189722 .577350 -.035022 -1.732051
    setup(trajs, [True, True, True, False], [[2.0] * 4, [4.0] * 4, [6.0] * 4, [9.0] * 4])
    seen = spy_advantages(monkeypatch, grpo_module)
    stats = GRPO(fake_policy, GRPOConfig(lr=1e-3, minibatch_chunks=1000, advantage="decoupled",
                                         smooth_weight=0.5)).update(trajs)
    expected = [1.189722, 0.577350, -0.035022, -1.732051]
    assert_chunk_advantages(seen, trajs, [[a] * 4 for a in expected])
    # parts, every trajectory with 4 chunks: |success| .577350 x 3 + 1.732051, |smooth| .612372 x 2
    assert stats["adv_success_abs_mean"] == pytest.approx((3 * 0.577350 + 1.732051) / 4, abs=1e-5)
    assert stats["adv_smooth_abs_mean"] == pytest.approx(2 * 0.612372 / 4, abs=1e-5)
    assert stats["adv_smooth_share"] == pytest.approx(0.306186 / (0.866025 + 0.306186), abs=1e-5)


def test_all_success_group_is_kept_by_decoupled_and_dropped_by_standard(
    fake_policy, collect_groups, monkeypatch
):
    trajs = collect_groups(fake_policy, size=4)
    setup(trajs, [True] * 4, [[2.0] * 4, [4.0] * 4, [6.0] * 4, [8.0] * 4])
    # binary reward, standard advantage: no reward spread, no update
    assert GRPO(fake_policy, GRPOConfig(lr=1e-3)).update(trajs)["skipped"] == 1.0
    seen = spy_advantages(monkeypatch, grpo_module)
    stats = GRPO(fake_policy, GRPOConfig(lr=1e-3, minibatch_chunks=1000,
                                         advantage="decoupled")).update(trajs)
    assert stats["groups_dropped"] == 0 and stats["groups_smooth_only"] == 1
    # jerk 2 4 6 8: mean 5, std sqrt(5) -> 1.341641 .447214 -.447214 -1.341641, times w = .5
    expected = [0.670820, 0.223607, -0.223607, -0.670820]
    assert_chunk_advantages(seen, trajs, [[a] * 4 for a in expected])
    assert stats["adv_smooth_share"] == pytest.approx(1.0)


def test_eq5_all_success_group_advantage_does_not_depend_on_lam(
    fake_policy, collect_groups, monkeypatch
):
    trajs = collect_groups(fake_policy, size=4)
    seen = spy_advantages(monkeypatch, grpo_module)
    runs = []
    for lam in (0.1, 0.4):
        setup(trajs, [True] * 4, [[2.0] * 4, [4.0] * 4, [6.0] * 4, [8.0] * 4],
              reward=lambda t, lam=lam: smooth_reward(t, lam=lam, jerk_scale=10.0))
        seen.clear()
        stats = GRPO(fake_policy, GRPOConfig(lr=1e-9, minibatch_chunks=1000)).update(trajs)
        ((_, adv),) = seen
        runs.append(sorted(adv.tolist()))
        # the success term is 0 in an all-success group: the whole advantage is eq. 5's jerk term
        assert stats["adv_smooth_share"] == pytest.approx(1.0)
    np.testing.assert_allclose(runs[0], runs[1], atol=1e-4)
    np.testing.assert_allclose(runs[1][::4], [-1.341641, -0.447214, 0.447214, 1.341641], atol=1e-4)


def test_eq5_share_in_a_mixed_group_by_hand(fake_policy, collect_groups):
    trajs = collect_groups(fake_policy, size=4)
    # normalised jerk .5 and 1.5, lam .2: R = .9 .7 0 0; losses test: smooth part
    # .230915 -.261451 .015268 .015268 against a binary success part of +-1
    setup(trajs, [True, True, False, False], [[5.0] * 4, [15.0] * 4, [3.0] * 4, [3.0] * 4],
          reward=lambda t: smooth_reward(t, lam=0.2, jerk_scale=10.0))
    assert [t.reward for t in trajs] == pytest.approx([0.9, 0.7, 0.0, 0.0], abs=1e-6)
    stats = GRPO(fake_policy, GRPOConfig(lr=1e-9)).update(trajs)
    smooth = (0.230915 + 0.261451 + 2 * 0.015268) / 4
    assert stats["adv_success_abs_mean"] == pytest.approx(1.0, abs=1e-5)
    assert stats["adv_smooth_abs_mean"] == pytest.approx(smooth, abs=1e-5)
    assert stats["adv_smooth_share"] == pytest.approx(smooth / (1 + smooth), abs=1e-5)
    # binary reward: the advantage has no smoothness part at all
    setup(trajs, [True, True, False, False], [[5.0] * 4, [15.0] * 4, [3.0] * 4, [3.0] * 4])
    stats = GRPO(fake_policy, GRPOConfig(lr=1e-9)).update(trajs)
    assert stats["adv_smooth_abs_mean"] == 0.0 and stats["adv_smooth_share"] == 0.0


def test_chunk_credit_differs_between_chunks_of_one_trajectory(
    fake_policy, collect_groups, monkeypatch
):
    trajs = collect_groups(fake_policy, size=4)
    setup(trajs, [True, True, False, False],
          [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [100.0] * 4, [100.0] * 4])
    seen = spy_advantages(monkeypatch, grpo_module)
    stats = GRPO(fake_policy, GRPOConfig(lr=1e-3, minibatch_chunks=1000, advantage="chunk",
                                         smooth_weight=0.5)).update(trajs)
    # success +-1 (eps 1e-6: .999998); chunk jerks of the successes 1..8: mean 4.5, std
    # sqrt(5.25) = 2.291288 -> z = 1.527525 1.091089 .654654 .218218 -.218218 ... -1.527525
    z = [1.527525, 1.091089, 0.654654, 0.218218]
    expected = [
        [0.999998 + 0.5 * v for v in z],
        [0.999998 - 0.5 * v for v in reversed(z)],
        [-0.999998] * 4,
        [-0.999998] * 4,
    ]
    assert_chunk_advantages(seen, trajs, expected)
    assert stats["adv_smooth_abs_mean"] == pytest.approx(0.5 * 2 * sum(z) / 16, abs=1e-5)


def test_chunk_credit_keeps_an_all_success_group_with_the_same_mean_jerk(
    fake_policy, collect_groups
):
    """Two paths of equal mean jerk: 'decoupled' has no signal, 'chunk' still has."""
    trajs = collect_groups(fake_policy, size=2)
    setup(trajs, [True, True], [[1.0, 3.0, 3.0, 3.0], [1.0, 3.0, 3.0, 3.0]])
    assert GRPO(fake_policy, GRPOConfig(advantage="decoupled")).update(trajs)["skipped"] == 1
    stats = GRPO(fake_policy, GRPOConfig(lr=1e-3, advantage="chunk")).update(trajs)
    assert stats["groups_smooth_only"] == 1 and "skipped" not in stats


@pytest.mark.parametrize("advantage", ["standard", "decoupled", "chunk"])
def test_one_update_with_each_variant_changes_parameters(fake_policy, collect_groups, advantage):
    trajs = collect_groups(fake_policy, size=4)
    setup(trajs, [True, True, True, False],
          [[1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 9.0, 1.0], [6.0] * 4, [9.0] * 4])
    before = {n: p.detach().clone() for n, p in fake_policy.named_parameters()}
    stats = GRPO(fake_policy, GRPOConfig(lr=1e-2, advantage=advantage)).update(trajs)
    assert any(not torch.equal(before[n], p) for n, p in fake_policy.named_parameters()
               if n.startswith("trunk."))
    for key in ("adv_success_abs_mean", "adv_smooth_abs_mean", "adv_smooth_share"):
        assert stats[key] == stats[key], key  # present and not NaN
    assert (stats["adv_smooth_share"] > 0) == (advantage != "standard")


def test_ppo_dense_jerk_penalty_appears_in_the_returns(fake_policy, collect_groups, monkeypatch):
    trajs = collect_groups(fake_policy, size=2)
    setup(trajs, [True, False], [[1.0, 2.0, 3.0, 4.0], [9.0] * 4])
    with torch.no_grad():
        values = [fake_policy.value(t.chunk_obs).tolist() for t in trajs]
    seen = spy_advantages(monkeypatch, ppo_module)
    cfg = PPOConfig.orz(lr=1e-3, normalize_advantages=False, minibatch_chunks=1000,
                        dense_jerk_weight=0.2)
    stats = PPO(fake_policy, cfg, jerk_scale=2.0).update(trajs)
    # success: chunk jerk sums 1*2, 2*4, 3*4, 4*4 = 2 8 12 16 over 14 windows;
    # r_c = -.2 * sum_c / (14 * 2) = -.014286 -.057143 -.085714 -.114286, sum -.271429
    # (= -.2 * mean jerk 38/14 / 2); ORZ: A_c = 1 + (penalties from c on) - V(s_c)
    dense = [-0.2 * s / 28 for s in (2.0, 8.0, 12.0, 16.0)]
    future = [sum(dense[c:]) for c in range(4)]
    success_adv = [1.0 + f - v for f, v in zip(future, values[0])]
    failure_adv = [-v for v in values[1]]  # failures pay no jerk, as in eq. 5
    assert_chunk_advantages(seen, trajs, [success_adv, failure_adv])
    assert stats["dense_jerk_return"] == pytest.approx(-0.271429 / 2, abs=1e-5)
    # smooth part of A: the penalties' own GAE (future), the rest is the success part
    smooth = sum(abs(f) for f in future) / 8
    success = (sum(abs(a - f) for a, f in zip(success_adv, future))
               + sum(abs(a) for a in failure_adv)) / 8
    assert stats["adv_smooth_abs_mean"] == pytest.approx(smooth, abs=1e-5)
    assert stats["adv_success_abs_mean"] == pytest.approx(success, abs=1e-5)
    assert stats["adv_smooth_share"] == pytest.approx(smooth / (smooth + success), abs=1e-5)


def test_ppo_without_dense_penalty_is_unchanged(fake_policy, collect_groups, monkeypatch):
    trajs = collect_groups(fake_policy, size=2)
    setup(trajs, [True, False], [[1.0, 2.0, 3.0, 4.0], [9.0] * 4])
    with torch.no_grad():
        values = [fake_policy.value(t.chunk_obs).tolist() for t in trajs]
    seen = spy_advantages(monkeypatch, ppo_module)
    cfg = PPOConfig.orz(lr=1e-3, normalize_advantages=False, minibatch_chunks=1000)
    stats = PPO(fake_policy, cfg).update(trajs)
    assert_chunk_advantages(seen, trajs, [[1.0 - v for v in values[0]], [-v for v in values[1]]])
    assert stats["adv_smooth_share"] == 0.0 and stats["dense_jerk_return"] == 0.0


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: GRPOConfig(advantage="gdpo"), "advantage must be one of"),
        (lambda: GRPOConfig(smooth_weight=-0.1), "smooth_weight must be"),
        (lambda: GRPOConfig(smooth_weight=float("nan")), "smooth_weight must be"),
        (lambda: PPOConfig(dense_jerk_weight=-1.0), "dense_jerk_weight must be"),
        (lambda: check_smoothness_credit("grpo", "smooth", "decoupled", 0.0), "count jerk twice"),
        (lambda: check_smoothness_credit("ppo", "smooth", "standard", 0.1), "count jerk twice"),
        (lambda: check_smoothness_credit("ppo", "binary", "chunk", 0.0), "grpo only"),
        (lambda: check_smoothness_credit("grpo", "binary", "standard", 0.1), "ppo only"),
        (lambda: check_smoothness_credit("dpo", "binary", "standard", 0.1), "ppo only"),
    ],
)
def test_bad_options_give_user_errors(make, message):
    with pytest.raises(UserError, match=message):
        make()


def test_sensible_combinations_pass():
    for reward in ("binary", "staged", "random"):
        check_smoothness_credit("grpo", reward, "decoupled", 0.0)
        check_smoothness_credit("grpo", reward, "chunk", 0.0)
        check_smoothness_credit("ppo", reward, "standard", 0.2)
    check_smoothness_credit("grpo", "smooth", "standard", 0.0)  # eq. 5, the baseline
    check_smoothness_credit("dpo", "smooth", "standard", 0.0)


def test_update_refuses_the_smooth_reward_with_a_variant(fake_policy, collect_groups):
    trajs = collect_groups(fake_policy, size=2)
    setup(trajs, [True, False], [[1.0] * 4, [2.0] * 4], reward=smooth_reward)
    with pytest.raises(UserError, match="count jerk twice"):
        GRPO(fake_policy, GRPOConfig(advantage="decoupled")).update(trajs)
    with pytest.raises(UserError, match="count jerk twice"):
        PPO(fake_policy, PPOConfig(dense_jerk_weight=0.1)).update(trajs)
    with pytest.raises(UserError, match="jerk_scale"):
        PPO(fake_policy, PPOConfig(), jerk_scale=0.0)
