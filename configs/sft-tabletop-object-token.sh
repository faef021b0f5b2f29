#!/usr/bin/env bash
# The token-head SFT recipe on all ten tabletop-object tasks (docs/policies.md): 50 expert
# demonstrations per task, SFT as configs/sft/tabletop-object-token.toml says (the last two
# vision blocks tuned, shift augmentation from the first step, batch 256, 2000 steps), then
# greedy evaluation on the 500 held-in episodes (init states 0-49 of every task, the states the
# demos started from). Measured 2026-11-23 on a 2-core CPU VM: 405 / 500 (81.0%) held-in, mean
# jerk 15.5 m/s^3; about 2 h 5 min from nothing (demos 2 min, two-view feature cache about 30
# min, training 89 min) plus 5-7 min of evaluation. One training seed; another seed may land
# a few points lower (docs/policies.md).
# Run from the repository root: bash configs/sft-tabletop-object-token.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/sft-tabletop-object-token}
smoothvla() { .venv/bin/smoothvla "$@"; }
[ -f "$out/demos.hdf5" ] || smoothvla collect --suite tabletop-object --episodes-per-task 50 --workers 2 --out "$out/demos.hdf5" --resume
smoothvla sft --config configs/sft/tabletop-object-token.toml --data "$out/demos.hdf5" \
    --run-dir "$out/sft"
smoothvla eval --checkpoints token="$out/sft/checkpoints/step_0002000" --suite tabletop-object \
    --num-init-states 50 --workers 2 --envs-per-worker 5 --out "$out/eval.jsonl"
