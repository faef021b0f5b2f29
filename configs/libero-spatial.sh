#!/usr/bin/env bash
# Real LIBERO-Spatial, SFT and its evaluation (docs/libero.md, "Reproduce the LIBERO runs"):
# 50 scripted-expert demonstrations per task (both cameras at 128 px) from layouts that
# LIBERO's placement samples (init ids 50-99), none of the official init states the
# evaluation uses (on those the expert solved 494 of 500; failures are not written), SFT of the token
# head as configs/sft/libero-spatial-token.toml says (the best measured tabletop recipe), then
# greedy evaluation on the 500 official episodes (50 init states x 10 tasks) into
# OUT_DIR/eval-sft.jsonl. Every stage resumes after a kill and keeps what a finished stage
# produced. Not run yet: no number is claimed. Estimated on 2 CPU cores from
# docs/BENCHMARKS.md's LIBERO step rates: demos about 1.5 h, SFT about 2-3 h, evaluation
# about 30 min (the LIBERO-Object pilot's took 31 with whole chunks).
# Run from the repository root (needs pip install -e '.[libero]'):
#   bash configs/libero-spatial.sh [OUT_DIR]       (WORKERS=N for N env worker processes)
set -euo pipefail
out=${1:-runs/libero-spatial}
workers=${WORKERS:-2}
smoothvla() { .venv/bin/smoothvla "$@"; }
sft="$out/sft/checkpoints/step_0002000"
[ -f "$out/demos.hdf5" ] || smoothvla collect --suite libero-spatial --episodes-per-task 50 \
    --init-offset 50 --cameras agentview eye_in_hand --image-size 128 --workers "$workers" \
    --out "$out/demos.hdf5" --resume
smoothvla sft --config configs/sft/libero-spatial-token.toml --data "$out/demos.hdf5" \
    --run-dir "$out/sft" --resume
smoothvla eval --checkpoints sft="$sft" --suite libero-spatial --num-init-states 50 \
    --workers "$workers" --envs-per-worker 5 --out "$out/eval-sft.jsonl"
