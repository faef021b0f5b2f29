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
