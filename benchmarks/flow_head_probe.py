"""The flow-head probe: a fresh flow head trained alone on a token checkpoint's frozen backbone.

    .venv/bin/python benchmarks/flow_head_probe.py --data obj50.hdf5 \
        --token-checkpoint runs/sft-tok/checkpoints/step_0002000 \
        --feature-cache-dir runs/sft-tok/features --aug-views 2 --steps 20000 --out runs/flow-probe
    smoothvla eval --checkpoints probe=runs/flow-probe/checkpoints/step_0020000 --num-init-states 10

A thin wrapper of `smoothvla sft --init-from CKPT --init-weights backbone --head-only`, the
probe stage of the flow-head recipe (configs/sft/tabletop-object-flow-probe.toml): the
backbone's states at the action queries are computed once per demo frame (view 0 of the
feature cache), then only the head trains, about 60 ms per batch of 256 on one core. The
result is an ordinary checkpoint with the token checkpoint's backbone and normalizer and a
flow head with the default settings (2 layers, 10 Euler steps). If it
succeeds about as often as the token head, an end-to-end flow model's failure came from what
its backbone learned; if it fails as the end-to-end model does, the head itself is the problem.

The schedule is SFT's (200 warm-up steps, then a cosine to 0; no gradient clipping), and the
head's noise follows SFT's per-step seeding; the measurements of docs/notes/ that cite this
script ran an earlier version with its own loop (the same batches, other noise draws, the
cosine counted from step 0), and its `--tau beta` option is gone.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="HDF5 demos the token checkpoint was trained on")
    parser.add_argument("--token-checkpoint", required=True)
    parser.add_argument("--feature-cache-dir", required=True, help="the SFT run's feature cache (reused, or filled)")
    parser.add_argument("--out", required=True, help="SFT run folder for the flow checkpoint")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3, help="peak; 200 warm-up steps, cosine to 0")
    parser.add_argument("--aug-views", type=int, default=1,
                        help="views per frame in the feature cache (the SFT run's --aug-views, to reuse its cache); "
                             "the probe reads view 0")
    args = parser.parse_args()

    from smoothvla.algorithms.sft import SFTConfig, train
    from smoothvla.policies.vla import load_policy

    token = load_policy(args.token_checkpoint).cfg
    cfg = SFTConfig(data=(args.data,), run_dir=args.out, init_from=args.token_checkpoint,
                    init_weights="backbone", head_only=True,
                    policy=token.with_head("flow"),
                    steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=200,
                    min_lr_ratio=0.0, grad_clip=0.0, augment=args.aug_views > 1,
                    aug_views=args.aug_views, feature_cache_dir=args.feature_cache_dir,
                    checkpoint_every=args.steps, eval_every=0, num_threads=1)
    print(f"saved {train(cfg)}")


if __name__ == "__main__":
    main()
