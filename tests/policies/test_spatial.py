"""Finer vision features: spatial-softmax keypoints and the stride-16 EfficientNet cut."""

import pytest
import torch
from policy_helpers import make_obs, tiny_policy

from smoothvla.policies import DemoBatch, VLAConfig, load_policy
from smoothvla.policies.encoders import SpatialSoftmax, VisionEncoder

torch.set_num_threads(1)


def test_spatial_softmax_finds_a_peak_between_cells():
    ss = SpatialSoftmax(1, 1)
    with torch.no_grad():
        ss.conv.weight.fill_(1.0)
        ss.conv.bias.zero_()
        ss.log_temperature.fill_(-5.0)  # temperature e^-5: nearly argmax
    x = torch.zeros(1, 1, 4, 4)
    x[0, 0, 1, 3] = 1.0  # row 1, column 3 of a 4x4 map: x = +1, y = -1/3
    kp = ss(x)
    assert kp.shape == (1, 1, 2)
    assert torch.allclose(kp[0, 0], torch.tensor([1.0, -1.0 / 3.0]), atol=1e-3)
    # two equal peaks: the keypoint is their midpoint, finer than the 4x4 grid
    x[0, 0, 1, 1] = 1.0
    assert torch.allclose(ss(x)[0, 0], torch.tensor([1.0 / 3.0, -1.0 / 3.0]), atol=1e-3)


def test_spatial_softmax_rejects_zero_keypoints():
    with pytest.raises(ValueError, match="keypoints"):
        SpatialSoftmax(8, 0)
    with pytest.raises(ValueError, match="vision_keypoints"):
        VLAConfig(vision_keypoints=-1)


def test_bad_stride_is_rejected():
    with pytest.raises(ValueError, match="stride"):
        VisionEncoder("tiny", 32, stride=8)


def test_keypoint_tokens_train_and_round_trip(tmp_path):
    policy = tiny_policy(vision_keypoints=4)
    assert policy.n_tokens == 2 * 4 ** 2 + 2 + 2 + policy.chunk_size
    obs = make_obs(3)
    chunk = policy.act(obs, generator=torch.Generator().manual_seed(0))
    batch = DemoBatch(chunk.actions,
                      features={k: chunk.extras[k] for k in ("vis_feat", "lang_emb", "proprio")})
    loss = policy.sft_loss(batch).loss
    loss.backward()
    assert policy.keypoints[0].conv.weight.grad.abs().sum() > 0
    assert policy.kp_proj[0].weight.grad.abs().sum() > 0
    policy.save(tmp_path / "ckpt")
    loaded = load_policy(tmp_path / "ckpt")
    torch.testing.assert_close(loaded.log_prob(None, chunk), policy.log_prob(None, chunk))


def test_efficientnet_stride16_cut():
    enc = VisionEncoder("efficientnet-lite0", 128, trainable_blocks=0, grid=8, stride=16)
    assert enc.trunk_shape == (112, 8, 8)
    assert enc.out_dim == 112
    tuned = VisionEncoder("efficientnet-lite0", 128, trainable_blocks=3, grid=8, stride=16)
    assert tuned.trunk_shape == (80, 8, 8)
    feats = tuned.trunk(torch.zeros(2, 128, 128, 3, dtype=torch.uint8))
    assert tuned.tail(feats).shape == (2, 64, 112)


def test_film_starts_as_identity_trains_and_round_trips(tmp_path):
    plain, film = tiny_policy(head="gaussian"), tiny_policy(head="gaussian", vision_film=True)
    film.load_state_dict({**film.state_dict(), **plain.state_dict()})  # same weights, FiLM at zero
    obs = make_obs(4)
    torch.testing.assert_close(film.act(obs, sample=False).actions, plain.act(obs, sample=False).actions)
    chunk = film.act(obs, generator=torch.Generator().manual_seed(0))
    batch = DemoBatch(chunk.actions,
                      features={k: chunk.extras[k] for k in ("vis_feat", "lang_emb", "proprio")})
    film.sft_loss(batch).loss.backward()
    assert film.film.weight.grad.abs().sum() > 0  # the instruction reaches the vision tokens
    assert film.parameter_counts()["fusion"] > plain.parameter_counts()["fusion"]
    film.save(tmp_path / "ckpt")
    torch.testing.assert_close(load_policy(tmp_path / "ckpt").log_prob(None, chunk), film.log_prob(None, chunk))
