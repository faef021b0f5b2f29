#!/usr/bin/env bash
# GRPO on one task from the study's SFT policy (docs/RESULTS.md, "GRPO on one task from the
# 77.2% SFT policy"): GRPO-binary with training seeds 0 and 1 (configs/train/grpo-butter-binary.toml)
# and SmoothVLA-GRPO with seed 0 (configs/train/grpo-butter-smooth.toml), each 30 iterations
# x 4 groups x G = 8 on init states 0-19 of tabletop-object/pick-butter-place-basket-v1; then
# every policy sampled at 0.2 on the same 400 (init state, seed) episodes. Measured 2026-11-23
# on a 2-core CPU VM: 15-20 min per training run (the evaluation, 1,600 sampled episodes, was
# not timed).
# SFT: the policy of configs/sft-tabletop-object-token-gpu.sh (runs/sft-toktail).
# Run from the repository root: bash configs/grpo-butter.sh [SFT_CHECKPOINT [OUT_DIR]]
set -euo pipefail
sft=${1:-runs/sft-toktail}
out=${2:-runs/grpo-butter}
task=tabletop-object/pick-butter-place-basket-v1
smoothvla() { .venv/bin/smoothvla "$@"; }
grpo() {  # NAME CONFIG, then extra flags
    local name=$1 config=$2; shift 2
    smoothvla train --config "configs/train/$config.toml" --policy "$sft" --out-dir "$out/$name" "$@"
}
grpo grpo-binary-s0 grpo-butter-binary
grpo grpo-binary-s1 grpo-butter-binary --seed 1
grpo smoothvla-grpo-s0 grpo-butter-smooth
smoothvla eval --checkpoints sft="$sft" grpo-binary-s0="$out/grpo-binary-s0/policy" \
    grpo-binary-s1="$out/grpo-binary-s1/policy" smoothvla-grpo-s0="$out/smoothvla-grpo-s0/policy" \
    --tasks "$task" --num-init-states 20 --seeds $(seq 0 19) --sample --overrides.temperature 0.2 \
    --workers 2 --envs-per-worker 5 --out "$out/eval.jsonl"
smoothvla report --results "$out/eval.jsonl" --out "$out/report"
