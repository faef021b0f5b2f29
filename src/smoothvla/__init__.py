"""smoothvla: RL fine-tuning of VLA policies that keeps motion smooth."""

__version__ = "0.1.0"
