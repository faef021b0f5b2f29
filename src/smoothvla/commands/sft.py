"""`smoothvla sft --data FILE.hdf5 ...`: supervised fine-tuning (see algorithms/sft.py)."""

from __future__ import annotations

import sys
from pathlib import Path

from smoothvla.algorithms.sft import SFTConfig as Config
from smoothvla.algorithms.sft import train
from smoothvla.io import check_writable_output, remove_stale_temp_files

__all__ = ["Config", "run"]


def run(cfg: Config) -> int:
    check_writable_output(cfg.run_dir, "folder")
    if cfg.feature_cache_dir:
        check_writable_output(cfg.feature_cache_dir, "folder")
    # what a killed earlier run left: a half-written feature cache (~100 MB), checkpoints
    for folder in (cfg.feature_cache_dir or Path(cfg.run_dir) / "features",
                   Path(cfg.run_dir) / "checkpoints"):
        remove_stale_temp_files(folder)
    final = train(cfg)
    print(f"sft: final checkpoint {final}", file=sys.stderr)
    print(final)
    return 0
