"""Stand-in collect jobs for worker-lifetime tests (importable by spawned workers)."""

import time


def hang(job, cameras, image_size):
    time.sleep(600)


def fail(job, cameras, image_size):
    return dict(job=job, success=False, failure="stand-in failure")
