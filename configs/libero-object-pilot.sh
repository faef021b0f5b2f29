#!/usr/bin/env bash
# Real LIBERO-Object at a pilot budget (docs/libero.md, "Reproduce the LIBERO runs"): 20
# scripted-expert demonstrations per task (both cameras at 128 px) from layouts LIBERO's
# placement samples (init ids 50-69), SFT of the token head as
# configs/sft/libero-object-token-pilot.toml says (1000 steps), then greedy evaluation of
# that policy on the 500 official episodes (50 init states x 10 tasks, none of them seen in
# training) into OUT_DIR/eval-sft.jsonl. Every stage resumes after a kill and keeps what a
# finished stage produced.
# Run from the repository root (needs pip install -e '.[libero]'):
#   bash configs/libero-object-pilot.sh [OUT_DIR]  (WORKERS=N for N env worker processes)
set -euo pipefail
out=${1:-runs/libero-object-pilot}
workers=${WORKERS:-2}
smoothvla() { .venv/bin/smoothvla "$@"; }
sft="$out/sft/checkpoints/step_0001000"
[ -f "$out/demos.hdf5" ] || smoothvla collect --suite libero-object --episodes-per-task 20 \
    --init-offset 50 --cameras agentview eye_in_hand --image-size 128 --workers "$workers" \
    --out "$out/demos.hdf5" --resume
smoothvla sft --config configs/sft/libero-object-token-pilot.toml --data "$out/demos.hdf5" \
    --run-dir "$out/sft" --resume
smoothvla eval --checkpoints sft="$sft" --suite libero-object --num-init-states 50 \
    --workers "$workers" --envs-per-worker 5 --out "$out/eval-sft.jsonl"
