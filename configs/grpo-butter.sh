#!/usr/bin/env bash
# GRPO on one task from the study's SFT policy (docs/RESULTS.md, "GRPO on one task from the
# 77.2% SFT policy"): tabletop-object/pick-butter-place-basket-v1, init states 0-19, 30
# iterations x 4 groups x G = 8, rollouts at temperature 0.2, per-token ratio, KL 0.1 to the
# SFT policy, lr 1e-5. GRPO-binary with training seeds 0 and 1, SmoothVLA-GRPO (the hybrid
# reward, jerk unit from the SFT policy's rollouts) with seed 0; then every policy sampled at
# 0.2 on the same 400 (init state, seed) episodes. Measured 2026-11-23 on a 2-core CPU VM:
# 15-20 min per training run (the evaluation, 1,600 sampled episodes, was not timed).
# SFT: the policy of configs/sft-tabletop-object-token-gpu.sh (runs/sft-toktail).
# Run from the repository root: bash configs/grpo-butter.sh [SFT_CHECKPOINT [OUT_DIR]]
set -euo pipefail
sft=${1:-runs/sft-toktail}
out=${2:-runs/grpo-butter}
task=tabletop-object/pick-butter-place-basket-v1
smoothvla() { .venv/bin/smoothvla "$@"; }
grpo() {  # NAME SEED, then extra flags
    local name=$1 seed=$2; shift 2
    smoothvla train --policy "$sft" --tasks "$task" --init-ids $(seq 0 19) \
        --algorithm grpo --group-size 8 --groups-per-iteration 4 --max-resample-rounds 2 \
        --iterations 30 --workers 2 --envs-per-worker 4 --temperature 0.2 --grpo.lr 1e-5 \
        --grpo.ratio-level token --grpo.beta 0.1 --seed "$seed" --out-dir "$out/$name" "$@"
}
grpo grpo-binary-s0 0 --reward.name binary
grpo grpo-binary-s1 1 --reward.name binary
grpo smoothvla-grpo-s0 0 --reward.name smooth --reward.jerk-scale-from-policy
smoothvla eval --checkpoints sft="$sft" grpo-binary-s0="$out/grpo-binary-s0/policy" \
    grpo-binary-s1="$out/grpo-binary-s1/policy" smoothvla-grpo-s0="$out/smoothvla-grpo-s0/policy" \
    --tasks "$task" --num-init-states 20 --seeds $(seq 0 19) --temperature 0.2 \
    --workers 2 --envs-per-worker 5 --out "$out/eval.jsonl"
smoothvla report --results "$out/eval.jsonl" --out "$out/report"
