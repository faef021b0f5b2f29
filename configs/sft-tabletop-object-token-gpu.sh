#!/usr/bin/env bash
# The SFT policy of the earlier study (configs/study-cpu.toml, sft_checkpoint): the token head
# on all ten tabletop-object tasks, 50 expert demonstrations per task, SFT as
# configs/sft/tabletop-object-token-gpu.toml says (the last two vision blocks tuned, no
# augmentation, batch 256, a 7000-step cosine schedule), of which the step-2000 checkpoint is
# the policy (the measured run was stopped there). Measured 2026-11-23: trained on one H100
# (2000 steps in about 1.5 min, 7000 in about 5), evaluated on a 2-core CPU VM: 386 / 500
# (77.2%) held-in, mean jerk 17.6. On a CPU the 2000 steps alone take about 1.7 h (3.1 s per
# step, with --device cpu); use a GPU.
# Run from the repository root: bash configs/sft-tabletop-object-token-gpu.sh [OUT_DIR [POLICY_DIR]]
set -euo pipefail
out=${1:-runs/sft-tabletop-object-token-gpu}
policy=${2:-runs/sft-toktail}   # where configs/study-cpu.toml looks for it
smoothvla() { .venv/bin/smoothvla "$@"; }
[ -f "$out/demos.hdf5" ] || smoothvla collect --suite tabletop-object --episodes-per-task 50 --workers 8 --out "$out/demos.hdf5" --resume
smoothvla sft --config configs/sft/tabletop-object-token-gpu.toml --data "$out/demos.hdf5" \
    --run-dir "$out/sft"
rm -rf "$policy" && mkdir -p "$(dirname "$policy")" && cp -r "$out/sft/checkpoints/step_0002000" "$policy"
smoothvla eval --checkpoints token="$policy" --suite tabletop-object --num-init-states 50 \
    --workers 2 --envs-per-worker 5 --out "$out/eval.jsonl"
