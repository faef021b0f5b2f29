#!/usr/bin/env bash
# Reproduces the SFT checkpoints shipped with smoothvla (src/smoothvla/assets), the starting
# policies of `make demo` and of configs/study-smoothness*.toml: 50 expert demonstrations on
# each of two tabletop-object tasks, then SFT as configs/sft/NAME.toml says (the token head with
# the last two vision blocks tuned and shift augmentation, 2000 steps at batch 64). About 35
# minutes on one CPU core (measured: 6 min of feature encoding + 24 min of training).
# Run from the repository root:
#   bash configs/demo-sft.sh                                        # smoothvla:demo-token
#   bash configs/demo-sft.sh runs/demo-sft-history demo-token-history  # smoothvla:demo-token-history
# Flags after the two arguments go to `smoothvla sft`.
set -euo pipefail
out=${1:-runs/demo-sft}
name=${2:-demo-token}
shift $(( $# < 2 ? $# : 2 ))
smoothvla() { .venv/bin/smoothvla "$@"; }
[ -f "$out/demos.hdf5" ] || smoothvla collect --suite tabletop-object \
    --tasks pick-ketchup-place-basket pick-milk-place-basket \
    --episodes-per-task 50 --workers 2 --out "$out/demos.hdf5" --resume
smoothvla sft --config "configs/sft/$name.toml" --data "$out/demos.hdf5" --run-dir "$out/sft" "$@"
# The shipped copy keeps the trainable weights only; the frozen encoder comes from its package.
.venv/bin/python -c "import sys; from smoothvla.policies import load_policy; \
load_policy(sys.argv[1]).save(sys.argv[2], trainable_only=True)" \
    "$out/sft/checkpoints/step_0002000" "src/smoothvla/assets/$name"
