"""Execution strategies: the contract here; ``shm`` and ``cs`` in their modules (imported on use:
``cs`` brings the HTTP server and client)."""

from agentlightning_core.execution.base import AlgorithmBundle, ExecutionStrategy, RunnerBundle, StopSignal

__all__ = ["AlgorithmBundle", "ExecutionStrategy", "RunnerBundle", "StopSignal"]
