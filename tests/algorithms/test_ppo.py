"""PPO: chunk-level GAE with the value head, parameter updates, ORZ preset, learning."""

import pytest
import torch

import smoothvla.algorithms.ppo as ppo_module
from smoothvla.algorithms.ppo import PPO, PPOConfig


def _score(trajs, rewards):
    for t, r in zip(trajs, rewards):
        t.reward, t.reward_terms = float(r), {}


def test_orz_advantage_is_return_minus_value_of_each_chunk(
    fake_policy, collect_groups, monkeypatch
):
    trajs = collect_groups(fake_policy, init_ids=(0, 3), size=2)
    _score(trajs, [1.0, 0.0, 0.7, 0.2])
    with torch.no_grad():
        values = [fake_policy.value(t.chunk_obs) for t in trajs]
    expected = sorted(
        (lp, r - v)
        for t, r, vs in zip(trajs, [1.0, 0.0, 0.7, 0.2], values)
        for lp, v in zip(t.log_probs.tolist(), vs.tolist())
    )
    seen = []
    real = ppo_module.clipped_surrogate

    def spy(logp_new, logp_old, adv, eps_low, eps_high):
        seen.append((logp_old.clone(), adv.clone()))
        return real(logp_new, logp_old, adv, eps_low, eps_high)

    monkeypatch.setattr(ppo_module, "clipped_surrogate", spy)
    cfg = PPOConfig.orz(lr=1e-3, normalize_advantages=False, minibatch_chunks=1000)
    assert cfg.gamma == cfg.lam == 1.0
    PPO(fake_policy, cfg).update(trajs)
    ((logp_old, adv),) = seen
    got = sorted(zip(logp_old.tolist(), adv.tolist()))
    assert len(got) == len(expected)
    for (lg, ag), (lw, aw) in zip(got, expected):
        assert lg == pytest.approx(lw, abs=1e-5) and ag == pytest.approx(aw, abs=1e-5)


def test_one_update_trains_actor_and_value_head_not_the_frozen_encoder(fake_policy, collect_groups):
    trajs = collect_groups(fake_policy, init_ids=(0,), size=4)
    _score(trajs, [1.0, 0.0, 0.5, 0.0])
    before = {n: p.detach().clone() for n, p in fake_policy.named_parameters()}
    stats = PPO(fake_policy, PPOConfig(lr=1e-2, value_lr=1e-2)).update(trajs)
    for name, p in fake_policy.named_parameters():
        assert torch.equal(before[name], p) == name.startswith("encoder."), name
    for key in (
        "value_loss",
        "explained_variance",
        "clip_frac",
        "approx_kl",
        "grad_norm",
        "weight_drift",
    ):
        assert key in stats


def test_ppo_learns_the_point_mass_task(tmp_path):
    from fake_run import build

    trainer, policy = build(tmp_path / "run", iterations=30, algorithm="ppo")
    trainer.algorithm = PPO(policy, PPOConfig.orz(lr=3e-3, value_lr=3e-3))
    history = trainer.run()
    last = sum(s["success_rate"] for s in history[-3:]) / 3
    assert last >= 0.7, last


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"gamma": 1.5}, "gamma"),
        ({"lam": -0.1}, "lam"),
        ({"eps_low": 1.0}, "eps_low"),
        ({"value_clip": 0.0}, "value_clip"),
        ({"epochs": 0}, "epochs"),
    ],
)
def test_bad_ppo_configs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PPOConfig(**kwargs)
