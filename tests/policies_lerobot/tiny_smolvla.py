"""A tiny random SmolVLA built offline: a small SmolVLM config and a word-level tokenizer
trained on the spot go in a local folder that `vlm_model_name` points to, with
`load_vlm_weights=False` (no hub). About 0.2 M parameters; built in well under a second."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

WORDS = ["pick up the red block and place it in the bowl", "open the top drawer",
         "put the mug on the plate", "push the button", "lift the cube"]


def tiny_vlm_folder(root: Path) -> Path:
    """A SmolVLM config and tokenizer in root/vlm (what SmolVLA reads of its VLM)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, SmolVLMConfig

    folder = root / "vlm"
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["[PAD]", "[UNK]", "<fake_token_around_image>", "<global-img>", "<image>"]
    tok.train_from_iterator(WORDS, trainers.WordLevelTrainer(special_tokens=specials))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
        extra_special_tokens={"fake_image_token": "<fake_token_around_image>",
                              "global_image_token": "<global-img>", "image_token": "<image>"})
    fast.save_pretrained(folder)
    SmolVLMConfig(
        text_config=dict(model_type="llama", vocab_size=len(fast), hidden_size=64,
                         intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                         pad_token_id=0),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=2, image_size=32, patch_size=8),
        scale_factor=2, image_token_id=fast.convert_tokens_to_ids("<image>"),
    ).save_pretrained(folder)
    return folder


def tiny_smolvla(root: Path, *, chunk_size: int = 4, num_steps: int = 3, seed: int = 0,
                 cameras: tuple[str, ...] = ("agentview",), image_size: int = 32,
                 stats: bool = True):
    """A `LeRobotSmolVLA` around a tiny random SmolVLA (statistics: zero mean, unit std,
    unless `stats` is False)."""
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.policies.smolvla.processor_smolvla import make_smolvla_pre_post_processors

    from smoothvla.policies.lerobot_smolvla import (LeRobotSmolVLA, SmolVLAAdapterConfig,
                                                    retarget_features)

    config = SmolVLAConfig(vlm_model_name=str(tiny_vlm_folder(root)), load_vlm_weights=False,
                           chunk_size=chunk_size, n_action_steps=chunk_size, num_steps=num_steps,
                           resize_imgs_with_padding=(32, 32), num_vlm_layers=2,
                           tokenizer_max_length=16, device="cpu")
    retarget_features(config, list(cameras), image_size)
    torch.manual_seed(seed)
    inner = SmolVLAPolicy(config)
    inner.eval()
    table = None
    if stats:
        table = {"observation.state": {"mean": torch.zeros(8), "std": torch.ones(8)},
                 "action": {"mean": torch.zeros(7), "std": torch.full((7,), 0.5)}}
    pre, post = make_smolvla_pre_post_processors(config, table)
    return LeRobotSmolVLA(inner, pre, post, SmolVLAAdapterConfig(camera_map={c: c for c in cameras}))


def observations(n: int, cameras: tuple[str, ...] = ("agentview",), size: int = 32,
                 seed: int = 0) -> list[dict]:
    """n random observations as the envs return them."""
    rng = np.random.default_rng(seed)
    return [{"rgb": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in cameras},
             "proprio": rng.normal(size=8).astype(np.float32),
             "instruction": WORDS[i % len(WORDS)],
             "prev_actions": np.zeros((16, 7), np.float32)} for i in range(n)]


def write_demos(path: Path, task_id: str, n_demos: int = 2, steps: int = 8,
                size: int = 32) -> Path:
    """LIBERO-layout demos of `task_id` with random images of both cameras."""
    from smoothvla.data import Demo, DemoWriter

    rng = np.random.default_rng(0)
    with DemoWriter(path) as writer:
        for i in range(n_demos):
            t = np.arange(steps)[:, None] / steps
            actions = np.concatenate([np.sin(3 * t + np.arange(6)), -np.ones((steps, 1))], 1) * 0.5
            obs = {f"{c}_rgb": rng.integers(0, 256, (steps, size, size, 3), dtype=np.uint8)
                   for c in ("agentview", "eye_in_hand")}
            obs.update(ee_pos=np.cumsum(actions[:, :3], 0) * 0.01, ee_ori=np.zeros((steps, 3)),
                       gripper_states=np.full((steps, 2), 0.04), joint_states=np.zeros((steps, 7)))
            writer.add(Demo(actions=actions, obs=obs, attrs={
                "instruction": WORDS[i], "task_id": task_id, "init_id": i, "seed": i}))
    return path
