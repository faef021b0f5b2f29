"""SFT that starts from part of another checkpoint, and SFT of the action head alone.

`SFTConfig.init_weights` says what `init_from` contributes:
- "all": the checkpoint as it is (architecture, weights, normalizer);
- "backbone": everything but its heads (vision tail, fusion transformer, projections, action
  queries) and its normalizer, under fresh heads described by the head fields of
  `SFTConfig.policy` (`HEAD_FIELDS`; every other architecture field is the checkpoint's);
- "aux-token-head": its auxiliary token head (`VLAConfig.aux_token`) becomes the
  action head: a token policy on the same backbone; the checkpoint's own head is dropped.

`SFTConfig.head_only` trains the action head alone on the frozen backbone. The head's input
(`CompactVLA.head_states`) is computed once per demo frame, from the unshifted view of the
feature cache, and each step then runs the head only: about 50 ms per batch of 256 on one CPU
core, against about 2.2 s end to end. The flow-head recipe (docs/recipes.md) trains a fresh
flow head this way on a token backbone before it trains end to end.

With `steps = 0` and `init_from`, SFT saves the starting policy as checkpoint step 0 and
stops: a conversion, e.g. the auxiliary token head of a co-trained run as a token policy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from smoothvla.errors import UserError
from smoothvla.io import atomic_write_text
from smoothvla.policies.head_configs import HEAD_CONFIGS, TokenHeadConfig
from smoothvla.policies.vla import CompactVLA, load_policy

if TYPE_CHECKING:
    from smoothvla.algorithms.sft import Frames, SFTConfig

HEAD_FIELDS = ("head", *HEAD_CONFIGS, "aux_token", "value_head")
"""VLAConfig fields that describe the heads; with init_weights 'backbone' they come from
SFTConfig.policy, every other field from the checkpoint."""
HEAD_PREFIXES = ("head.", "aux_head.", "value_head.")
"""State-dict prefixes of the heads: what init_weights 'backbone' leaves behind."""


# ---------------------------------------------------------------------------------------------
# Which weights to start from
# ---------------------------------------------------------------------------------------------
def initial_policy(cfg: SFTConfig) -> CompactVLA:
    """The policy SFT starts from with `cfg.init_from` (see the module docstring); a LeRobot
    SmolVLA folder starts a `LeRobotSmolVLA` (`lerobot_smolvla.start_from`)."""
    from smoothvla.policies import lerobot_smolvla

    if lerobot_smolvla.is_lerobot_smolvla(cfg.init_from):
        if cfg.init_weights != "all":
            raise UserError(f"--init-weights {cfg.init_weights} selects parts of a compact VLA; "
                            f"{cfg.init_from} is a LeRobot SmolVLA (use init_weights 'all')")
        return lerobot_smolvla.start_from(cfg.init_from)  # type: ignore[return-value]
    source = load_policy(cfg.init_from)
    if cfg.init_weights == "all":
        return source
    state = source.state_dict()
    if cfg.init_weights == "backbone":
        arch = replace(source.cfg, **{f: getattr(cfg.policy, f) for f in HEAD_FIELDS})
        state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    elif cfg.init_weights == "aux-token-head":
        if source.aux_head is None:
            raise UserError(f"{cfg.init_from}: the checkpoint has no auxiliary token head "
                            "(it was not trained with policy.aux_token.weight > 0)")
        arch = replace(source.cfg.with_head("token", TokenHeadConfig(bins=source.cfg.aux_token.bins)),
                       value_head=False)
        state = {"head." + k.removeprefix("aux_head.") if k.startswith("aux_head.") else k: v
                 for k, v in state.items() if not k.startswith(("head.", "value_head."))}
    else:  # SFTConfig checks the value; a new one needs a branch here
        raise ValueError(f"unknown init_weights {cfg.init_weights!r}")
    policy = CompactVLA(arch, source.normalizer)
    missing, unexpected = policy.load_state_dict(state, strict=False)
    not_head = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
    if unexpected or not_head:
        raise ValueError(f"{cfg.init_from}: weights do not fit the new policy (missing "
                         f"{not_head[:5]}, unexpected {unexpected[:5]})")  # a bug, not input
    return policy


def save_start(run_dir: Path, policy: CompactVLA, cfg: SFTConfig) -> Path:
    """`steps = 0`: the starting policy saved as checkpoint step 0 (a conversion)."""
    from smoothvla.algorithms.sft import lr_lambda, save_checkpoint

    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    atomic_write_text(run_dir / "sft_config.json", json.dumps(asdict(cfg), indent=1))
    return save_checkpoint(run_dir, policy, optimizer, scheduler, 0, cfg)


# ---------------------------------------------------------------------------------------------
# The action head alone
# ---------------------------------------------------------------------------------------------
def freeze_all_but_head(policy: CompactVLA) -> None:
    """Only the action head's parameters (those it trains already) keep requires_grad."""
    for name, p in policy.named_parameters():
        p.requires_grad_(p.requires_grad and name.startswith("head."))


@torch.no_grad()
def head_inputs(policy: CompactVLA, frames: Frames, lang: torch.Tensor,
                batch: int = 512) -> torch.Tensor:
    """What the action head reads for every frame, from view 0 (unshifted) of the cached
    features: (N, k, d), or (N, T, d) for a flow head with flow.context; float32 on the CPU.
    lang (I, L): the instructions' embeddings."""
    from smoothvla.algorithms.sft import previous_actions

    if frames.vis is None:
        raise UserError("head_only trains on cached features: leave cache_features on")
    was_training = policy.training
    policy.eval()
    device = policy.device
    out = []
    for f, feats in enumerate(frames.vis):
        first = int(frames.vis_offsets[f])
        for s in range(0, len(feats), batch):
            rows = np.arange(s, min(len(feats), s + batch))
            idx = first + rows
            inputs = {"vis_feat": torch.as_tensor(np.asarray(feats[rows, 0], np.float32)),
                      "lang_emb": lang[frames.instruction_id[idx]],
                      "proprio": torch.as_tensor(frames.proprio[idx])}
            if policy.cfg.prev_actions:
                inputs["prev_actions"] = torch.as_tensor(
                    previous_actions(frames, idx, policy.cfg.prev_actions))
            out.append(policy.head_states({k: v.to(device) for k, v in inputs.items()}).cpu())
    policy.train(was_training)
    return torch.cat(out)


def head_only_step(policy: CompactVLA, inputs: torch.Tensor, frames: Frames, optimizer,
                   scheduler, cfg: SFTConfig, step: int) -> dict[str, Any]:
    """One optimizer step of the action head on the batch of step `step` (the frames
    `make_batch` draws; inputs (N, ., d) from `head_inputs`); returns named metrics."""
    from smoothvla.algorithms.sft import chunk_jerk, chunk_targets, optimize

    torch.manual_seed(cfg.seed * 1_000_003 + step)  # the head's noise (flow tau, z)
    rng = np.random.default_rng([cfg.seed, step])
    idx = np.sort(rng.integers(0, len(frames.actions), cfg.batch_size))
    actions, mask = chunk_targets(frames, idx, policy.chunk_size)
    device, norm = policy.device, policy.normalizer
    target = norm.normalize_actions(torch.as_tensor(actions).to(device))
    mask = torch.as_tensor(mask).to(device)
    policy.head.train()
    loss, metrics, predicted = policy.head.loss(inputs[idx].to(device), target, mask)
    metrics = {"loss": float(loss.detach()), **metrics}
    if cfg.smooth_weight > 0:
        smooth = chunk_jerk(norm.denormalize_actions(predicted), mask)
        loss = loss + cfg.smooth_weight * smooth
        metrics["smooth"] = float(smooth.detach())
    return optimize(loss, [p for p in policy.head.parameters() if p.requires_grad], optimizer,
                    scheduler, cfg, metrics)
