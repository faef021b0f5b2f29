"""The shared vocabulary of envs, policies and rollouts (NumPy-free, imports nothing).

Observation (one control step, what a policy sees):
    rgb:          {camera name: uint8 (H, W, 3)}, upright images
    proprio:      float32 (8,): ee position (3), ee orientation as axis-angle (3), gripper (2)
    instruction:  str
    prev_actions: float32 (H, 7): the last H executed actions (clipped to [-1, 1]), oldest
                  first, zeros before the episode start (added by `envs.base.ActionHistory`)
Action: float (7,) in [-1, 1]: ee position delta (3), rotation delta (3), gripper (1;
-1 open, +1 close), as LIBERO's OSC_POSE delta control.
"""

from __future__ import annotations

from typing import Any

ACTION_DIM = 7
"""Dimensions of one action: position delta (3), rotation delta (3), gripper (1)."""
Observation = dict[str, Any]
