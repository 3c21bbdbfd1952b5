"""Agent Lightning Baseline algorithm (registered as ``baseline``)."""

from agentlightning_baseline.baseline import Baseline, EpochStats

__all__ = ["Baseline", "EpochStats"]
