"""Rollout records, collectors and worker pools."""

from smoothvla.rollout.trajectory import Trajectory

__all__ = ["Trajectory"]
