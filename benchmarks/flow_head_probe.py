"""Is the flow head's closed-loop failure in its backbone or in the head? A probe.

    .venv/bin/python benchmarks/flow_head_probe.py --data obj50.hdf5 \
        --token-checkpoint runs/sft-tok/checkpoints/step_0002000 \
        --feature-cache-dir runs/sft-tok/features --steps 20000 --out runs/flow-probe
    smoothvla eval --checkpoints probe=runs/flow-probe/flow_step_0020000 --num-init-states 10

A token-head SFT checkpoint's backbone (vision tail, fusion transformer) is frozen and a fresh
flow head is trained on top of it: the hidden states at the action queries h (N, k, d) are
computed once per demo frame (the backbone does not change), then only the head trains, at
about 40 ms per batch of 256 on one core. The result is an ordinary checkpoint with the
token checkpoint's backbone and normalizer and a flow head. If it succeeds about as often as
the token head, the end-to-end flow model's failure came from what its backbone learned; if
it fails as the end-to-end flow model does, the head itself is the problem.

`--tau beta` samples the flow time as pi0 does (tau = 0.999 (1 - u), u ~ Beta(1.5, 1):
more weight on the noisy end) instead of uniformly.
Results: docs/policies.md ("sixth round").
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from smoothvla.algorithms.sft import SFTConfig, attach_features, chunk_targets, load_frames
from smoothvla.policies.vla import CompactVLA, load_policy


def flow_probe_policy(token_ckpt: str) -> CompactVLA:
    """The token checkpoint's policy with its head replaced by a fresh flow head."""
    token = load_policy(token_ckpt)
    policy = CompactVLA(replace(token.cfg, head="flow"), token.normalizer)
    backbone = {k: v for k, v in token.state_dict().items() if not k.startswith("head.")}
    missing, unexpected = policy.load_state_dict(backbone, strict=False)
    if unexpected or not all(k.startswith("head.") for k in missing):
        raise ValueError(f"{token_ckpt}: backbone does not match (missing {missing[:5]}, unexpected {unexpected[:5]})")
    return policy.eval()


def hidden_states(policy: CompactVLA, frames, lang: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """Backbone output for every frame (unshifted view 0) -> (N, k, d)."""
    n = len(frames.actions)
    out = torch.empty(n, policy.chunk_size, policy.cfg.d_model)
    with torch.no_grad():
        for s in range(0, n, batch):
            idx = np.arange(s, min(n, s + batch))
            vis = np.asarray(frames.vis[0][idx, 0]).astype(np.float32)
            feats = {"vis_feat": torch.as_tensor(vis), "lang_emb": lang[frames.instruction_id[idx]],
                     "proprio": torch.as_tensor(frames.proprio[idx])}
            out[idx] = policy.backbone(feats)
    return out


def pi0_tau(batch: int) -> torch.Tensor:
    """pi0's flow times (B,): tau = 0.999 (1 - u), u ~ Beta(1.5, 1), denser at the noisy end."""
    return 0.999 * (1 - torch.distributions.Beta(1.5, 1.0).sample((batch,)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="HDF5 demos the token checkpoint was trained on")
    parser.add_argument("--token-checkpoint", required=True)
    parser.add_argument("--feature-cache-dir", required=True, help="the SFT run's feature cache (reused, or filled)")
    parser.add_argument("--out", required=True, help="folder for the flow checkpoint")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak; 200 warm-up steps, cosine to 0")
    parser.add_argument("--tau", choices=("uniform", "beta"), default="uniform")
    parser.add_argument("--aug-views", type=int, default=1,
                        help="views per frame in the feature cache (the SFT run's --aug-views, to reuse its cache); "
                             "the probe reads view 0")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)

    policy = flow_probe_policy(args.token_checkpoint)
    sft_cfg = SFTConfig(data=(args.data,), feature_cache_dir=args.feature_cache_dir,
                        augment=args.aug_views > 1, aug_views=args.aug_views)
    frames = load_frames(sft_cfg.data, policy.cfg.cameras, with_images=False)
    attach_features(policy, frames, sft_cfg, Path(args.out))
    t0 = time.time()
    h_all = hidden_states(policy, frames, policy.text.encode(frames.instructions))
    print(f"hidden states of {len(h_all)} frames: {time.time() - t0:.0f} s", flush=True)

    head = policy.head.train()
    optimizer = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    norm = policy.normalizer
    t0 = time.time()
    for step in range(args.steps):
        idx = np.sort(np.random.default_rng([0, step]).integers(0, len(h_all), args.batch_size))
        actions, mask = chunk_targets(frames, idx, policy.chunk_size)
        target, mask = norm.normalize_actions(torch.as_tensor(actions)), torch.as_tensor(mask)
        tau = pi0_tau(len(idx)) if args.tau == "beta" else None
        loss = head.loss(h_all[idx], target, mask, tau)[0]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if (step + 1) % 1000 == 0:
            print(f"step {step + 1}: flow loss {float(loss.detach()):.4f}, {time.time() - t0:.0f} s", flush=True)
    out = Path(args.out) / f"flow_step_{args.steps:07d}"
    policy.eval().save(out)
    print(f"saved {out}")


if __name__ == "__main__":
    main()
