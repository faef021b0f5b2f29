"""VLAConfig.prev_actions: the last executed actions as one extra token; old checkpoints
(prev_actions = 0) load and act exactly as before."""

import json

import numpy as np
import pytest
import torch

from policy_helpers import flat_config, make_obs, tiny_policy
from smoothvla.policies import ActionChunk, load_policy


def with_history(obs, seed=0, rows=16):
    rng = np.random.default_rng(seed)
    return [{**o, "prev_actions": rng.uniform(-1, 1, (rows, 7)).astype(np.float32)} for o in obs]


def test_policy_reads_the_last_n_actions_only():
    policy = tiny_policy(head="token", prev_actions=2)
    assert policy.n_tokens == tiny_policy(head="token").n_tokens + 1
    obs = with_history(make_obs(2))
    feats = policy.encode(obs)
    assert torch.equal(feats["prev_actions"], torch.as_tensor(np.stack([o["prev_actions"][-2:] for o in obs])))
    base = policy.act(obs, sample=False).actions
    older = [{**o, "prev_actions": np.concatenate([np.zeros((14, 7), np.float32), o["prev_actions"][-2:]])}
             for o in obs]
    assert torch.equal(policy.act(older, sample=False).actions, base)  # rows before the last n unused
    newer = [{**o, "prev_actions": o["prev_actions"] * 0.0} for o in obs]
    with torch.no_grad():
        h_new = policy.backbone(policy.encode(newer))
        h_old = policy.backbone(feats)
    assert not torch.allclose(h_new, h_old)


def test_missing_or_short_history_gives_a_clear_error():
    policy = tiny_policy(head="token", prev_actions=3)
    with pytest.raises(ValueError, match="prev_actions"):
        policy.act(make_obs(1), sample=False)
    with pytest.raises(ValueError, match="prev_actions"):
        policy.act(with_history(make_obs(1), rows=2), sample=False)
    with pytest.raises(ValueError, match="prev_actions"):
        tiny_policy(prev_actions=5)  # more than chunk_size = 4


@pytest.mark.parametrize("head", ["token", "flow", "gaussian"])
def test_cached_features_carry_the_history(head):
    policy = tiny_policy(head=head, prev_actions=4, value_head=True)
    obs = with_history(make_obs(3))
    chunk = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    assert chunk.extras["prev_actions"].shape == (3, 4, 7)
    torch.testing.assert_close(policy.log_prob(None, chunk), chunk.log_prob, rtol=1e-5, atol=1e-4)
    head_only = {k: v for k, v in chunk.extras.items() if k not in policy.feature_keys}
    with pytest.raises(ValueError, match="prev_actions"):  # re-encoding needs the observation's history
        policy.log_prob(make_obs(3), ActionChunk(chunk.actions, chunk.log_prob, head_only))
    torch.testing.assert_close(policy.value(None, chunk.extras), policy.value(obs))


def test_save_load_with_history(tmp_path):
    policy = tiny_policy(head="token", prev_actions=2, seed=2)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    policy.save(tmp_path / "c")
    loaded = load_policy(tmp_path / "c")
    assert loaded.cfg.prev_actions == 2
    obs = with_history(make_obs(2))
    assert torch.equal(loaded.act(obs, sample=False).actions, policy.act(obs, sample=False).actions)


def test_old_checkpoints_without_the_new_fields_load_unchanged(tmp_path):
    policy = tiny_policy(head="token", seed=4)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    policy.save(tmp_path / "c")
    meta = {**json.loads((tmp_path / "c" / "config.json").read_text()), "version": 1,
            "config": flat_config(policy.cfg)}  # the flat layout of that time
    for key in ("prev_actions", "dct_coefficients", "dct_gripper_steps"):  # written before they existed
        del meta["config"][key]
    (tmp_path / "c" / "config.json").write_text(json.dumps(meta))
    loaded = load_policy(tmp_path / "c")
    assert loaded.cfg.prev_actions == 0 and loaded.feature_keys == ("vis_feat", "lang_emb", "proprio")
    assert not any(k.startswith("prev_") for k in loaded.state_dict())
    obs = make_obs(3)
    expected = policy.act(obs, sample=False).actions
    assert torch.equal(loaded.act(obs, sample=False).actions, expected)
    # An env observation that now carries the history changes nothing for such a policy.
    assert torch.equal(loaded.act(with_history(obs), sample=False).actions, expected)
    chunk = loaded.act(with_history(obs), sample=True, generator=torch.Generator().manual_seed(0))
    assert "prev_actions" not in chunk.extras
