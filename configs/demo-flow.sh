#!/usr/bin/env bash
# A flow head on the demo's two tabletop-object tasks, and the flow-only execution scheme
# measured on it: prefix conditioning, real-time-chunking-style inpainting of the steps already
# committed (docs/RESULTS.md, "Smoothness"). The 100 demonstrations of configs/demo-sft.sh, a
# flow head probed on the frozen backbone of smoothvla:demo-token-history
# (configs/sft/demo-flow-history-probe.toml), then greedy evaluation with 30 Euler steps on
# init states 0-24 (50 episodes per scheme). About 30 minutes of training and 10 minutes per
# scheme on 2 CPU cores shared with other jobs.
# Run from the repository root: bash configs/demo-flow.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/demo-flow-history}
smoothvla() { .venv/bin/smoothvla "$@"; }
[ -f "$out/demos.hdf5" ] || smoothvla collect --suite tabletop-object \
    --tasks pick-ketchup-place-basket pick-milk-place-basket \
    --episodes-per-task 50 --workers 2 --out "$out/demos.hdf5" --resume
smoothvla sft --config configs/sft/demo-flow-history-probe.toml --data "$out/demos.hdf5" \
    --feature-cache-dir "$out/features" --run-dir "$out/probe" --resume
ck="$out/probe/checkpoints/step_0005000"
run() {  # LABEL, then --execution.* flags
    local label=$1; shift
    smoothvla eval --checkpoints "$label=$ck" --overrides.flow-steps 30 \
        --tasks pick-ketchup-place-basket pick-milk-place-basket --num-init-states 25 \
        --workers 2 --envs-per-worker 5 --record-paths 2 --out "$out/results.jsonl" "$@"
}
run flow
run flow+prefix_4 --execution.scheme prefix --execution.steps 4
run flow+receding_4 --execution.scheme receding --execution.steps 4
smoothvla report --results "$out/results.jsonl" --out "$out/report"
