"""Every formula of algorithms/losses.py against numbers worked out by hand."""

import math

import pytest
import torch

from smoothvla.algorithms.losses import (
    approx_kl,
    clipped_surrogate,
    compute_gae,
    dpo_loss,
    group_advantages,
    kl_k3,
    value_loss,
    weight_drift,
)

torch.set_num_threads(1)
t = torch.tensor


def test_group_advantages_by_hand():
    # mean 0.5, population std 0.5
    assert group_advantages(t([1.0, 0.0, 0.0, 1.0]), eps=0.0).tolist() == [1.0, -1.0, -1.0, 1.0]
    # mean 0.35; deviations .45 .25 -.35 -.35; var = .51 / 4 = .1275; std = .357071
    adv = group_advantages(t([0.8, 0.6, 0.0, 0.0]), eps=0.0)
    torch.testing.assert_close(
        adv, t([1.260252, 0.700140, -0.980196, -0.980196]), atol=1e-5, rtol=0
    )
    # all-fail group: no signal, no NaN
    assert group_advantages(t([0.0, 0.0, 0.0])).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="G >= 2"):
        group_advantages(t([1.0]))


def test_gae_by_hand():
    # gamma .9, lam .5: A2 = 2; A1 = (0 + .9 * 0 - 1) + .45 * 2 = -.1;
    # A0 = (1 + .9 * 1 - .5) + .45 * -.1 = 1.355
    adv, ret = compute_gae(
        t([1.0, 0.0, 2.0]), t([0.5, 1.0, 0.0, 3.0]), t([0.0, 0.0, 1.0]), 0.9, 0.5
    )
    torch.testing.assert_close(adv, t([1.355, -0.1, 2.0]))
    torch.testing.assert_close(ret, t([1.855, 0.9, 2.0]))
    # an episode boundary after step 0 stops bootstrapping and accumulation there;
    # the last step bootstraps from values[3] = 3: A2 = 2 + 2.7 = 4.7, A1 = -1 + .45 * 4.7
    adv, _ = compute_gae(t([1.0, 0.0, 2.0]), t([0.5, 1.0, 0.0, 3.0]), t([1.0, 0.0, 0.0]), 0.9, 0.5)
    torch.testing.assert_close(adv, t([0.5, 1.115, 4.7]))
    # ORZ (gamma = lam = 1): advantage = return - value
    adv, ret = compute_gae(
        t([0.0, 0.0, 1.0]), t([0.2, 0.4, 0.6, 9.0]), t([0.0, 0.0, 1.0]), 1.0, 1.0
    )
    torch.testing.assert_close(adv, t([0.8, 0.6, 0.4]))
    torch.testing.assert_close(ret, t([1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match=r"values \(T\+1,\)"):
        compute_gae(t([1.0]), t([1.0]), t([0.0]), 0.9, 0.9)


def test_clipped_surrogate_by_hand():
    logp_new = torch.log(t([1.5, 0.5, 1.1, 0.9])).requires_grad_()
    adv = t([1.0, -1.0, -2.0, 2.0])
    # min terms: 1.3 (clipped high), -0.8 (clipped low), -2.2, 1.8 -> mean 0.025
    loss, clip_frac = clipped_surrogate(logp_new, torch.zeros(4), adv, eps_low=0.2, eps_high=0.3)
    assert loss.item() == pytest.approx(-0.025)
    assert clip_frac.item() == 0.5
    loss.backward()
    # clipped samples get no gradient; the others -ratio * A / B
    torch.testing.assert_close(logp_new.grad, t([0.0, 0.0, 0.55, -0.45]))


def test_kl_estimators_by_hand():
    # k3 with pi_ref / pi = 0.5: 0.5 - log 0.5 - 1
    assert kl_k3(t([0.0]), t([math.log(0.5)])).item() == pytest.approx(0.5 + math.log(2) - 1)
    assert kl_k3(t([-3.0]), t([-3.0])).item() == 0.0
    # ratio 2: (2 - 1) - log 2
    assert approx_kl(t([math.log(2.0)]), t([0.0])).item() == pytest.approx(1 - math.log(2))


def test_value_loss_by_hand():
    v, v_old, ret = t([1.0, 2.0]), t([0.5, 2.5]), t([2.0, 1.0])
    # clipped values 0.7 and 2.3, both farther from the returns: 0.5 * 1.69
    assert value_loss(v, v_old, ret, clip=0.2).item() == pytest.approx(0.845)
    assert value_loss(v, v_old, ret, clip=None).item() == pytest.approx(0.5)


def test_dpo_loss_by_hand():
    loss, margin = dpo_loss(t([-1.0]), t([-2.0]), t([-1.5]), t([-1.5]), beta=0.5)
    # margin = 0.5 * (0.5 - (-0.5)) = 0.5; loss = log(1 + e^-0.5)
    assert margin.item() == pytest.approx(0.5)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-0.5)))
    # the policy equal to the reference: loss log 2
    loss, _ = dpo_loss(t([-1.0, -4.0]), t([-2.0, -3.0]), t([-1.0, -4.0]), t([-2.0, -3.0]), beta=0.1)
    assert loss.item() == pytest.approx(math.log(2))


def test_weight_drift_by_hand():
    params = [t([1.1, -2.0]), t([0.0])]
    ref = [t([1.0, -2.0]), t([1.0])]
    # |change| = 0.1 + 0 + 1 over |ref| = 4
    assert weight_drift(params, ref) == pytest.approx(0.275)
    with pytest.raises(ValueError, match="shape"):
        weight_drift([t([1.0, 2.0])], [t([1.0])])


# -- smoothness credit -------------------------------------------------------------------
from smoothvla.algorithms.losses import (  # noqa: E402
    advantage_split_stats,
    chunk_smoothness_credit,
    decoupled_advantages,
    dense_jerk_rewards,
    eq5_advantage_split,
    smoothness_advantages,
)

nan = float("nan")


def test_smoothness_advantages_by_hand():
    # eligible jerks 1, 3, 5: mean 3, population std sqrt(8/3) = 1.632993
    adv = smoothness_advantages(t([1.0, 3.0, nan, 5.0]), t([True, True, False, True]), eps=0.0)
    torch.testing.assert_close(adv, t([1.224745, 0.0, 0.0, -1.224745]), atol=1e-5, rtol=0)
    # fewer than two eligible: nothing to compare with
    assert smoothness_advantages(t([1.0, 3.0]), t([True, False])).tolist() == [0.0, 0.0]


def test_decoupled_advantages_by_hand_mixed_group():
    # success 1 1 1 0: mean .75, std sqrt(.75 * .25) = .433013 -> +.577350, -1.732051
    # jerk of the successes 2 4 6: mean 4, std 1.632993 -> +1.224745, 0, -1.224745; w = .5
    adv, success, smooth = decoupled_advantages(
        t([1.0, 1.0, 1.0, 0.0]), t([True, True, True, False]), t([2.0, 4.0, 6.0, 9.0]),
        weight=0.5, eps=0.0,
    )
    torch.testing.assert_close(success, t([0.577350, 0.577350, 0.577350, -1.732051]), atol=1e-5, rtol=0)
    torch.testing.assert_close(smooth, t([0.612372, 0.0, -0.612372, 0.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(adv, t([1.189722, 0.577350, -0.035022, -1.732051]), atol=1e-5, rtol=0)


def test_all_success_group_decoupled_has_signal_standard_is_blind_to_lam():
    jerk = t([2.0, 4.0, 6.0, 8.0])
    success = t([True, True, True, True])
    # decoupled: success part 0 (eps > 0: all-equal rewards); jerk mean 5, std sqrt(5)
    adv, success_part, smooth = decoupled_advantages(success.float(), success, jerk, 0.5)
    assert success_part.tolist() == [0.0] * 4
    torch.testing.assert_close(adv, 0.5 * t([1.341641, 0.447214, -0.447214, -1.341641]),
                               atol=1e-5, rtol=0)
    # eq. 5 on the same group: R = 1 - lam * J; lam cancels out of (R - mean) / std (up to
    # eps = 1e-6 against std = lam * sqrt(5))
    small, _, _ = eq5_advantage_split(1 - 0.1 * jerk, success, True)
    large, _, smooth_large = eq5_advantage_split(1 - 0.4 * jerk, success, True)
    torch.testing.assert_close(small, large, atol=1e-5, rtol=0)
    torch.testing.assert_close(large, t([1.341641, 0.447214, -0.447214, -1.341641]),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(smooth_large, large)  # all of it is the jerk term


def test_eq5_split_of_a_mixed_group_by_hand():
    # R = .9 .7 0 0 (eq. 5, lam .2, normalised jerk .5 and 1.5): mean .4, std sqrt(.165)
    # = .406202 -> 1.230915 .738549 -.984732 -.984732; binary success alone: +-1
    adv, success, smooth = eq5_advantage_split(
        t([0.9, 0.7, 0.0, 0.0]), t([True, True, False, False]), True, eps=0.0
    )
    torch.testing.assert_close(adv, t([1.230915, 0.738549, -0.984732, -0.984732]), atol=1e-5, rtol=0)
    assert success.tolist() == [1.0, 1.0, -1.0, -1.0]
    torch.testing.assert_close(smooth, t([0.230915, -0.261451, 0.015268, 0.015268]), atol=1e-5, rtol=0)
    # a reward without jerk: the advantage is all success part
    adv, success, smooth = eq5_advantage_split(t([1.0, 0.1]), t([True, False]), False)
    assert torch.equal(adv, success) and smooth.tolist() == [0.0, 0.0]


def test_chunk_smoothness_credit_by_hand():
    # trajectories: success, success, failure; chunks 2, 2, 1
    # success advantage: R = 1 1 0, mean 2/3, std .471405 -> .707107, .707107, -1.414214
    # eligible chunk jerks 1 3 5 (the NaN chunk owns no window, the failure's is not
    # compared): mean 3, std 1.632993 -> 1.224745, 0, -1.224745; w = 1
    adv, success, smooth = chunk_smoothness_credit(
        t([1.0, 1.0, 0.0]), t([True, True, False]), t([1.0, 3.0, nan, 5.0, 100.0]),
        torch.tensor([0, 0, 1, 1, 2]), weight=1.0, eps=0.0,
    )
    torch.testing.assert_close(success, t([0.707107, 0.707107, 0.707107, 0.707107, -1.414214]),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(smooth, t([1.224745, 0.0, 0.0, -1.224745, 0.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(adv, t([1.931852, 0.707107, 0.707107, -0.517638, -1.414214]),
                               atol=1e-5, rtol=0)


def test_dense_jerk_rewards_by_hand():
    # 6 windows in all: r = -.2 * (0, 6, 12) / (6 * 2) = 0, -.1, -.2; the sum -.3 is
    # -lam * mean jerk / scale with mean jerk 18 / 6 = 3
    r = dense_jerk_rewards(t([0.0, 6.0, 12.0]), torch.tensor([0, 2, 4]), weight=0.2, jerk_scale=2.0)
    torch.testing.assert_close(r, t([0.0, -0.1, -0.2]))
    assert dense_jerk_rewards(t([0.0, 0.0]), torch.tensor([0, 0]), 0.2, 2.0).tolist() == [0.0, 0.0]


def test_advantage_split_stats_by_hand():
    stats = advantage_split_stats(t([1.0, -1.0]), t([0.5, -0.5]))
    assert stats["adv_success_abs_mean"] == 1.0 and stats["adv_smooth_abs_mean"] == 0.5
    assert stats["adv_smooth_share"] == pytest.approx(1 / 3)
    assert math.isnan(advantage_split_stats(t([0.0]), t([0.0]))["adv_smooth_share"])
