#!/usr/bin/env bash
# The execution schemes measured on the shipped SFT policy (docs/RESULTS.md, "Smoothness"):
# greedy, init states 0-24 of the demo's two tabletop-object tasks (50 episodes per scheme),
# one results file, then the report. About 20 minutes on 2 CPU cores.
# Run from the repository root: bash configs/smoothness-execution.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/smoothness-execution}
run() {  # LABEL, then --execution.* flags
    local label=$1; shift
    .venv/bin/smoothvla eval --checkpoints "$label=smoothvla:demo-token" \
        --tasks pick-ketchup-place-basket pick-milk-place-basket --num-init-states 25 \
        --workers 2 --envs-per-worker 5 --record-paths 2 --out "$out/results.jsonl" "$@"
}
run sft
run sft+ensemble_1 --execution.scheme ensemble --execution.steps 1
run sft+ensemble_2 --execution.scheme ensemble --execution.steps 2
run sft+blend_4 --execution.scheme blend --execution.steps 4
run sft+receding_4 --execution.scheme receding --execution.steps 4
.venv/bin/smoothvla report --results "$out/results.jsonl" --out "$out/report"
