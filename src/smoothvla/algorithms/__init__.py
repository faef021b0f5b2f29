"""RL and SFT algorithms: one readable file each, shared math in losses.py."""
