#!/bin/bash
# SFT on tabletop-object (10 tasks x 50 expert demos) with the token and the flow head side by
# side on one GPU, as run for docs/policies.md ("SFT on a GPU"). Run from the repository root
# after `. benchmarks/device/setup.sh`; SMOOTHVLA_TEXT_EMBEDDINGS may point at a file from
# `smoothvla.policies.encoders.save_text_embeddings` when MiniLM is not installed.
# Environment: LOGS (log folder), WORK (scratch), DEMOS (per task), STEPS, BATCH, WORKERS,
# EVAL_EVERY, CKPT_EVERY (default 2000), DEADLINE (epoch seconds by which training must stop), RUNS
# (names of the SFT runs trained side by side, default "token flow") and ARGS_<name> (their
# extra `smoothvla sft` flags; default --policy.head <name>).
LOGS=${LOGS:-/tmp/out}; WORK=${WORK:-/tmp/sftx}; mkdir -p "$LOGS" "$WORK"
STEPS=${STEPS:-16000}; BATCH=${BATCH:-64}; WORKERS=${WORKERS:-14}; DEMOS=${DEMOS:-50}
RUNS=${RUNS:-token flow}
DEADLINE=${DEADLINE:-$(( $(date +%s) + 3600 ))}
t0=$(date +%s)
timeout 300 python3 -m smoothvla.cli collect --suite tabletop-object --episodes-per-task "$DEMOS" \
    --workers "$WORKERS" --out "$WORK/obj50.hdf5" > "$WORK/collect.log" 2>&1
rc=$?
{ echo "collect: rc $rc, $(( $(date +%s) - t0 )) s"; tail -4 "$WORK/collect.log"; } >> "$LOGS/times.txt"
[ $rc = 0 ] || exit 1
for run in $RUNS; do
  args_var="ARGS_$run"; args=${!args_var:---policy.head $run}
  ( s=$(date +%s)
    timeout $(( DEADLINE - s )) python3 -m smoothvla.cli sft --data "$WORK/obj50.hdf5" \
      --run-dir "$WORK/sft-$run" $args --steps "$STEPS" --batch-size "$BATCH" \
      --device cuda --eval-every "${EVAL_EVERY:-$(( STEPS / 2 ))}" --eval-episodes 30 --checkpoint-every "${CKPT_EVERY:-2000}" \
      --no-progress > "$LOGS/sft-$run.log" 2>&1
    echo "sft $run: rc $? $(( $(date +%s) - s )) s" >> "$LOGS/times.txt" ) &
done
wait
