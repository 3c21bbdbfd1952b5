"""Adapters turn recorded data (spans) into what an algorithm learns from."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, Literal, TypeVar

import attrs

from agentlightning_core.errors import AgentLightningError
from agentlightning_core.spans import Span

__all__ = ["Adapter", "AdapterStats", "BadDataPolicy", "BadTraceError", "TraceAdapter"]

logger = logging.getLogger(__name__)

BadDataPolicy = Literal["raise", "drop"]
_POLICIES = ("raise", "drop")


class BadTraceError(AgentLightningError, ValueError):
    """A trace an adapter cannot turn into learning data (no LLM call, no reward, ...).

    ``reason`` is the bad-data reason (``no_llm_call``, ``no_reward``, ...), as counted in
    ``AdapterStats.drop_counts`` under the ``drop`` policy.
    """

    def __init__(self, message: str, reason: str = "bad_trace") -> None:
        super().__init__(message)
        self.reason = reason


@attrs.define
class AdapterStats:
    """What an adapter produced and what it dropped, by reason (``drop_counts``)."""

    traces: int = 0
    outputs: int = 0
    drop_counts: dict[str, int] = attrs.field(factory=dict)

    @property
    def dropped(self) -> int:
        return sum(self.drop_counts.values())

    def reset(self) -> None:
        self.traces = self.outputs = 0
        self.drop_counts.clear()


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
    """An adapter from the spans of one rollout attempt.

    Bad data (a trace without LLM calls, an LLM call without prompt or response, a rollout
    without reward) is handled by ``on_bad_data``: ``"raise"`` (default) raises
    :class:`BadTraceError`; ``"drop"`` skips it, logs a warning and counts it in
    ``stats.drop_counts`` under the reason.
    """

    def __init__(self, *, on_bad_data: BadDataPolicy = "raise") -> None:
        if on_bad_data not in _POLICIES:
            raise ValueError(f"on_bad_data must be 'raise' or 'drop', got {on_bad_data!r}")
        self.on_bad_data: BadDataPolicy = on_bad_data
        self.stats = AdapterStats()

    def bad_data(self, reason: str, message: str) -> None:
        """Report bad data: raise under the ``raise`` policy, else count and log it."""
        if self.on_bad_data == "raise":
            raise BadTraceError(
                f"{message} (reason: {reason}). To skip such data and count it instead, give "
                f"Trainer(adapter={{'type': {self.registered_name()!r}, 'on_bad_data': 'drop'}})",
                reason,
            )
        self.skip(reason, message, level=logging.WARNING)

    def skip(self, reason: str, message: str, *, level: int = logging.INFO) -> None:
        """Count and log data skipped whatever the policy (e.g. an LLM call that failed).

        Only the first drop of each reason is logged at ``level``; later ones at DEBUG
        (``stats.drop_counts`` has the totals).
        """
        count = self.stats.drop_counts[reason] = self.stats.drop_counts.get(reason, 0) + 1
        logger.log(
            level if count == 1 else logging.DEBUG,
            "%s: dropped (%s; %d so far%s)",
            type(self).__name__,
            message,
            count,
            "; later drops of this reason are logged at DEBUG" if count == 1 else "",
        )

    def registered_name(self) -> str:
        """The name this adapter's class is registered under (else its import path)."""
        from agentlightning_core.plugins import get_registry

        cls = type(self)
        path = f"{cls.__module__}:{cls.__qualname__}"
        for name, reg in get_registry()["adapter"].items():
            if reg.factory is cls or reg.factory == path:
                return name
        return path
