"""The algorithm contract: improve resources from what runners record."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from typing import Any

__all__ = ["Algorithm"]


class Algorithm(ABC):
    """Base of algorithms. ``run`` may be a plain or an ``async`` method."""

    @abstractmethod
    def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> Awaitable[None] | None:
        """Drive training: enqueue rollouts, read results, publish improved resources."""
