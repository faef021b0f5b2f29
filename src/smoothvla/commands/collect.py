"""`smoothvla collect`: scripted-expert demonstrations into a LIBERO-layout HDF5 file.

Episodes run in spawned worker processes; the main process writes successful ones in a
fixed order, so the same flags give the same file whatever the number of workers. Finished
episodes are kept in `OUT.parts/` as they come; after a kill, the same command with
`--resume` runs only the missing ones. The work is
`smoothvla.experts.collect.collect_demos`, which the study calls too.
"""

from __future__ import annotations

from smoothvla.experts.collect import CollectConfig as Config
from smoothvla.experts.collect import collect_demos


def run(cfg: Config) -> int:
    return collect_demos(cfg)
