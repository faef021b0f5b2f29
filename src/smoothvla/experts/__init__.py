"""Scripted experts: jerk-limited motion, skills per plan stage, and the idle-action filter."""

from smoothvla.experts.expert import Expert, ExpertConfig, ExpertError, make_expert
from smoothvla.experts.motion import MotionLimits, plan_segment, pose_action

__all__ = [
    "Expert",
    "ExpertConfig",
    "ExpertError",
    "MotionLimits",
    "make_expert",
    "plan_segment",
    "pose_action",
]
