"""Runners: the :class:`Runner` contract and :class:`LitAgentRunner` (registered ``agent``)."""

from agentlightning_core.runner.agent import LitAgentRunner
from agentlightning_core.runner.base import Runner, StepResult

__all__ = ["LitAgentRunner", "Runner", "StepResult"]
