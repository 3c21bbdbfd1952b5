"""Algorithm components: the :class:`Algorithm` base, :class:`FastAlgorithm` and ``@algo``."""

from agentlightning_core.algorithm.base import Algorithm
from agentlightning_core.algorithm.decorator import FunctionalAlgorithm, algo
from agentlightning_core.algorithm.fast import FastAlgorithm

__all__ = ["Algorithm", "FastAlgorithm", "FunctionalAlgorithm", "algo"]
