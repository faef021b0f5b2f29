#!/usr/bin/env bash
# The SFT variants of docs/RESULTS.md, "Smoothness" (its last four rows): the recipe of
# configs/demo-sft.sh (two tabletop-object tasks, 50 demos each, token head, last two vision
# blocks tuned, shift augmentation, 2000 steps at batch 64) with the DCT head
# (configs/sft/demo-dct.toml), with the SFT smoothness term at weight 10
# (configs/sft/demo-token-smooth10.toml), and with one action of history
# (configs/sft/demo-token-history.toml); then each evaluated as configs/smoothness-execution.sh
# does (greedy, init states 0-24 of both tasks, 50 episodes), the history policy also with
# temporal ensembling every step. Measured 2026-12-03 on a 2-core CPU VM: about 35 min per SFT
# run on one core (6 min of feature encoding, 24 min of training), about 40 s per evaluation
# with whole chunks and 3 min with ensembling every step.
# Run from the repository root: bash configs/smoothness-sft-variants.sh [OUT_DIR]
set -euo pipefail
out=${1:-runs/smoothness-sft-variants}
smoothvla() { .venv/bin/smoothvla "$@"; }
tasks="pick-ketchup-place-basket pick-milk-place-basket"
[ -f "$out/demos.hdf5" ] || smoothvla collect --suite tabletop-object --tasks $tasks --episodes-per-task 50 --workers 2 \
    --out "$out/demos.hdf5" --resume
sft() {  # NAME CONFIG
    smoothvla sft --config "configs/sft/$2.toml" --data "$out/demos.hdf5" --run-dir "$out/$1"
}
sft dct demo-dct
sft smooth10 demo-token-smooth10
sft prev1 demo-token-history
ev() {  # LABEL CHECKPOINT, then --execution.* flags
    local label=$1 ckpt=$2; shift 2
    smoothvla eval --checkpoints "$label=$ckpt" --tasks $tasks --num-init-states 25 \
        --workers 2 --envs-per-worker 5 --record-paths 2 --out "$out/results.jsonl" "$@"
}
for name in dct smooth10 prev1; do ev "$name" "$out/$name/checkpoints/step_0002000"; done
ev prev1+ensemble_1 "$out/prev1/checkpoints/step_0002000" --execution.scheme ensemble --execution.steps 1
smoothvla report --results "$out/results.jsonl" --out "$out/report"
