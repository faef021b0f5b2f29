"""Evaluation over suites x tasks x initial states x perturbations, and its records."""

from smoothvla.eval.results import EpisodeResult, ResultsFile, continuous_grasp, read_results
from smoothvla.eval.stats import mean_ci, relative_drop, wilson_interval

__all__ = [
    "EpisodeResult",
    "ResultsFile",
    "continuous_grasp",
    "mean_ci",
    "read_results",
    "relative_drop",
    "wilson_interval",
]
