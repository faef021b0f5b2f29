"""Collect jobs for the kill tests, importable by spawned worker processes."""

import time

from smoothvla.experts.collect import run_job


def hang_from_episode_2(job, cameras, image_size):
    """The real expert episode for episodes 0 and 1 of a task; later ones hang (so a test can
    kill the run at a known point)."""
    if job.episode >= 2:
        time.sleep(600)
    return run_job(job, cameras, image_size)
