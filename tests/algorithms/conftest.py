import sys
from pathlib import Path

import pytest
import torch

from smoothvla.rollout.collector import Collector, GroupRequest
from smoothvla.rollout.fake_env import make_point_mass
from smoothvla.rollout.fake_policy import GaussianChunkPolicy
from smoothvla.rollout.pool import InProcessPool

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))  # fake_run.py
TASK = "fake-reach/point-mass-v1"


@pytest.fixture
def collect_groups():
    """collect(policy, init_ids, size, seed) -> trajectories of one group per init id."""

    def run(policy, init_ids=(0,), size=4, seed=0, **env_options):
        groups = [GroupRequest(TASK, i, 50 + i, size) for i in init_ids]
        with InProcessPool(
            len(groups) * size, env_factory=make_point_mass, env_options=env_options
        ) as pool:
            return Collector(policy, pool).collect(groups, seed=seed).trajectories

    return run


@pytest.fixture
def fake_policy():
    return GaussianChunkPolicy(seed=1)
