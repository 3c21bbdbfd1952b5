"""Agent Lightning APO: automatic prompt optimization (registered as the ``apo`` algorithm)."""

from agentlightning_apo.apo import APO, Selection
from agentlightning_apo.history import Candidate, RunStats
from agentlightning_apo.proposer import APOError, EditMode, MetaPrompts

__all__ = ["APO", "APOError", "Candidate", "EditMode", "MetaPrompts", "RunStats", "Selection"]
