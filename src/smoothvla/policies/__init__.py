"""Policies: the interface, pretrained encoders, the compact VLA and its action heads."""

from smoothvla.policies.base import ActionChunk, DemoBatch, Policy, SFTOutput
from smoothvla.policies.device import place, resolve_device
from smoothvla.policies.normalizer import MissingStatisticsError, Normalizer
from smoothvla.policies.vla import CompactVLA, VLAConfig, load_policy

__all__ = ["ActionChunk", "CompactVLA", "DemoBatch", "MissingStatisticsError", "Normalizer", "Policy",
           "SFTOutput", "VLAConfig", "load_policy", "place", "resolve_device"]
