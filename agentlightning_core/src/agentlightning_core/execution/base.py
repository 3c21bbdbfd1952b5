"""The execution strategy contract: how the algorithm and runners are run together."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

__all__ = ["ExecutionStrategy"]


class ExecutionStrategy(ABC):
    """Runs an algorithm and its runners (in one process, across processes, ...)."""

    @abstractmethod
    def execute(self, *args: Any, **kwargs: Any) -> Any:
        """Run the algorithm and runners to completion."""
