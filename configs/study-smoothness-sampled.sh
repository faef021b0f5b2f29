#!/usr/bin/env bash
# The smoothness study's policies acting as they were trained: sampled at the RL rollouts'
# temperature (0.2) instead of greedily (docs/RESULTS.md, "Smoothness"), one training seed,
# init states 0-24 of the study's two tasks (50 episodes per policy, the same sampling seed
# for every policy). Run it after `smoothvla demo --config configs/study-smoothness.toml` has
# trained that seed. About 6 minutes per policy on 2 CPU cores.
# Run from the repository root: bash configs/study-smoothness-sampled.sh [SEED] [STUDY_DIR]
set -euo pipefail
seed=${1:-0}
study=${2:-runs/study-smoothness}
for p in sft grpo-binary smoothvla-grpo grpo-decoupled grpo-chunk-credit ppo-dense-jerk; do
    ck="$study/$p-s$seed/policy"
    [ "$p" = sft ] && ck=smoothvla:demo-token-history
    .venv/bin/smoothvla eval --checkpoints "$p=$ck" \
        --tasks pick-ketchup-place-basket pick-milk-place-basket --num-init-states 25 \
        --workers 2 --envs-per-worker 5 --sample --overrides.temperature 0.2 --sampling-seed 0 \
        --out "$study/sampled-s$seed.jsonl"
done
.venv/bin/smoothvla report --results "$study/sampled-s$seed.jsonl" --out "$study/sampled-s$seed-report"
