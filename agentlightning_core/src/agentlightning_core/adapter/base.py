"""Adapters turn recorded data (spans) into what an algorithm learns from."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar

from agentlightning_core.spans import Span

__all__ = ["Adapter", "TraceAdapter"]

T_from = TypeVar("T_from")
T_to = TypeVar("T_to")


class Adapter(ABC, Generic[T_from, T_to]):
    """Converts ``T_from`` into ``T_to``; calling the adapter is the same as :meth:`adapt`."""

    def __call__(self, source: T_from) -> T_to:
        return self.adapt(source)

    @abstractmethod
    def adapt(self, source: T_from) -> T_to:
        """Convert one source value."""


class TraceAdapter(Adapter[Sequence[Span], T_to], Generic[T_to]):
    """An adapter from the spans of one rollout attempt."""
