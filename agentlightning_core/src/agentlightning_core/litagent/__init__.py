"""Agents: the :class:`LitAgent` base class and decorators turning functions into agents."""

from agentlightning_core.litagent.base import LitAgent, RolloutRawResult
from agentlightning_core.litagent.decorators import FunctionalLitAgent, llm_rollout, prompt_rollout, rollout

__all__ = ["FunctionalLitAgent", "LitAgent", "RolloutRawResult", "llm_rollout", "prompt_rollout", "rollout"]
