"""`Trajectory` lives in `smoothvla.trajectory` (a shared type); re-exported for old imports."""

from smoothvla.trajectory import Trajectory

__all__ = ["Trajectory"]
