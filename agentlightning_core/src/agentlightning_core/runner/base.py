"""The runner contract: take rollouts from the store and execute the agent on them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

__all__ = ["Runner"]

T_task = TypeVar("T_task")


class Runner(ABC, Generic[T_task]):
    """Base of runners: ``iter`` works the queue until stopped; ``step`` runs one task."""

    @abstractmethod
    async def iter(self) -> None:
        """Dequeue and execute rollouts until stopped or ``max_rollouts`` is reached."""

    @abstractmethod
    async def step(self, task: T_task) -> Any:
        """Run the agent on one task outside the queue, for debugging."""
