#!/usr/bin/env bash
# Real LIBERO-Object, every stage (docs/libero.md, "Reproduce the LIBERO runs"):
#  1. 50 scripted-expert demonstrations per task (both cameras at 128 px) from layouts that
#     LIBERO's placement samples (init ids 50-99), none of the 50 official init states that
#     step 3 evaluates on;
#  2. SFT of the token head as configs/sft/libero-object-token.toml says (the best measured
#     tabletop recipe);
#  3. greedy evaluation of that policy on the 500 official episodes (50 init states x 10 tasks)
#     into OUT_DIR/eval-sft.jsonl;
#  4. the tasks the RL study trains on, chosen from that evaluation (smoothvla.eval.select:
#     success strictly between 10% and 90%, at most 3, nearest 50% first; else the weakest
#     that succeed at all);
#  5. the RL study of configs/study-libero-object.toml on those tasks, from that policy.
# Every stage resumes after a kill and keeps what a finished stage produced, so running the
# script again continues where it stopped. Not run yet: no number is claimed. Estimated on
# 2 CPU cores from docs/BENCHMARKS.md's LIBERO step rates: demos about 1.5 h, SFT about
# 2-3 h (the tabletop recipe took about 2 h), evaluation about 31 min (as the pilot's took), the study
# about half a day.
# Run from the repository root (needs pip install -e '.[libero]'):
#   bash configs/libero-object.sh [OUT_DIR]        (WORKERS=N for N env worker processes)
set -euo pipefail
out=${1:-runs/libero-object}
workers=${WORKERS:-2}
smoothvla() { .venv/bin/smoothvla "$@"; }
sft="$out/sft/checkpoints/step_0002000"
# collect --resume finishes a killed collection; a finished file is kept as it is
[ -f "$out/demos.hdf5" ] || smoothvla collect --suite libero-object --episodes-per-task 50 \
    --init-offset 50 --cameras agentview eye_in_hand --image-size 128 --workers "$workers" \
    --out "$out/demos.hdf5" --resume
smoothvla sft --config configs/sft/libero-object-token.toml --data "$out/demos.hdf5" \
    --run-dir "$out/sft" --resume
smoothvla eval --checkpoints sft="$sft" --suite libero-object --num-init-states 50 \
    --workers "$workers" --envs-per-worker 5 --out "$out/eval-sft.jsonl"
tasks=$(.venv/bin/python -m smoothvla.eval.select --results "$out/eval-sft.jsonl" --policy sft \
    --low 0.1 --high 0.9 --max-tasks 3)
mapfile -t tasks <<< "$tasks"
smoothvla demo --config configs/study-libero-object.toml --study.out "$out/study" \
    --study.sft-checkpoint "$sft" --study.tasks "${tasks[@]}" --study.workers "$workers"
