"""The real pretrained encoders (EfficientNet-Lite0, all-MiniLM-L6-v2), loaded with the network
cut off: everything comes from the installed packages."""

import socket

import numpy as np
import pytest
import torch

from policy_helpers import make_normalizer, make_obs
from smoothvla.policies import CompactVLA, VLAConfig
from smoothvla.policies import vla as vla_module


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access attempted during a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(vla_module, "_TEXT_ENCODERS", {})  # force a fresh load of MiniLM


def test_real_encoders_load_offline_and_run(no_network):
    policy = CompactVLA(VLAConfig(head="flow", lora_rank=4, lora_targets=("fusion", "vision"),
                                  vision_trainable_blocks=1), make_normalizer())
    counts = policy.parameter_counts()
    assert counts["text_encoder"] > 20_000_000  # MiniLM-L6: 22.7M
    assert counts["vision_trunk"] + counts["vision_tail"] > 3_000_000  # Lite0 without classifier

    # MiniLM embeddings are unit-norm and put paraphrases closer than unrelated sentences.
    emb = policy.text.encode(["pick up the red cup", "grasp the red mug", "open the top drawer"])
    assert torch.allclose(emb.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2] + 0.1
    assert set(policy.text._cache) == {"pick up the red cup", "grasp the red mug", "open the top drawer"}

    # ImageNet features: 128-px images -> 4x4 final map -> 16 tokens per camera.
    obs = make_obs(2, size=128)
    chunk = policy.act(obs, sample=True, generator=torch.Generator().manual_seed(0))
    assert chunk.extras["vis_feat"].shape[:2] == (2, 2)
    assert policy.vision.tail(chunk.extras["vis_feat"][:, 0]).shape == (2, 16, 1280)
    torch.testing.assert_close(policy.log_prob(None, chunk), chunk.log_prob, rtol=1e-5, atol=1e-3)
    # Different images give different features (the weights are not an all-zero stub).
    assert not torch.allclose(chunk.extras["vis_feat"][0], chunk.extras["vis_feat"][1])
    # BatchNorm uses the ImageNet statistics from construction on (not batch statistics), so a
    # frame's features do not depend on the batch it is encoded in, and encoding changes nothing.
    assert not any(m.training for m in policy.vision.modules())
    bn_before = {k: v.clone() for k, v in policy.vision.state_dict().items() if "running" in k}
    pair = np.stack([[o["rgb"]["agentview"]] for o in obs])
    alone = policy.encode_images(pair[:1])
    torch.testing.assert_close(alone, policy.encode_images(pair)[:1], rtol=1e-4, atol=1e-4)
    assert all(torch.equal(v, policy.vision.state_dict()[k]) for k, v in bn_before.items())
    policy.train()
    assert not policy.vision.training and policy.fusion.training
    # Images of another size are resized to image_size first.
    gradient = np.tile(np.linspace(0, 255, 96).astype(np.uint8)[None, :, None], (96, 1, 3))
    feats = policy.encode_images(gradient[None, None])
    assert feats.shape == chunk.extras["vis_feat"][:1, :1].shape and torch.isfinite(feats).all()


def test_text_embeddings_file_replaces_the_model(tmp_path, no_network):
    from smoothvla.policies.encoders import TextEncoder, save_text_embeddings

    texts = ["pick up the ketchup and place it in the basket", "open the drawer"]
    path = save_text_embeddings(tmp_path / "emb.json", texts)
    reference = TextEncoder("minilm").encode(texts)
    from_file = TextEncoder("minilm", embeddings_file=path)
    assert from_file.model is None  # nothing loaded for instructions the file has
    torch.testing.assert_close(from_file.encode(texts[::-1]), reference.flip(0))
    unseen = from_file.encode(["close the drawer"])  # falls back to the model
    assert from_file.model is not None and unseen.shape == (1, 384)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt text-embedding file"):
        TextEncoder("minilm", embeddings_file=tmp_path / "bad.json")
    with pytest.raises(ValueError, match="'hash' embeddings of dim 32"):
        TextEncoder("minilm", embeddings_file=save_text_embeddings(tmp_path / "h.json", texts, "hash"))
    with pytest.raises(FileNotFoundError, match="no such text-embedding file"):
        TextEncoder("minilm", embeddings_file=tmp_path / "missing.json")


def test_text_embeddings_from_the_environment_apply_to_their_encoder_only(tmp_path, monkeypatch):
    from smoothvla.policies.encoders import TEXT_EMBEDDINGS_ENV, TextEncoder, save_text_embeddings

    texts = ["open the drawer"]
    monkeypatch.setenv(TEXT_EMBEDDINGS_ENV, str(save_text_embeddings(tmp_path / "e.json", texts)))
    assert TextEncoder("hash").encode(texts).shape == (1, 32)  # a MiniLM file does not concern it
    from_env = TextEncoder("minilm")
    assert from_env.model is None and from_env.encode(texts).shape == (1, 384)
