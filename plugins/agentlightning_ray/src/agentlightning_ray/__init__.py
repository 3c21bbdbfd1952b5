"""Agent Lightning on Ray: the ``ray`` execution strategy (runners as Ray actors)."""

from agentlightning_ray.strategy import RayExecutionStrategy, RunnerActorError

__all__ = ["RayExecutionStrategy", "RunnerActorError"]
