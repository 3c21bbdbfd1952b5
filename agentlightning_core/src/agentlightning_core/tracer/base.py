"""The tracer contract: record what an agent does as spans and hand them to the store."""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

from agentlightning_core.spans import Span

if TYPE_CHECKING:
    from agentlightning_core.store.base import LightningStore

__all__ = ["TraceContext", "Tracer"]


class TraceContext(
    AbstractContextManager["TraceContext"], AbstractAsyncContextManager["TraceContext"], Protocol
):
    """What :meth:`Tracer.trace_context` returns: usable with ``with`` and ``async with``.

    On exit every span recorded inside has been handed to the store (when one was given)
    and is available from :meth:`Tracer.get_last_trace`.
    """


class Tracer(ABC):
    """Base of tracers. Lifecycle: ``init`` once, ``init_worker`` per runner, then traces,
    ``teardown_worker`` and ``teardown``."""

    def init(self) -> None:
        """Prepare process-wide state (called once in the main process)."""

    def init_worker(self, worker_id: str, store: LightningStore | None = None) -> None:
        """Prepare a runner's tracing; ``store`` receives the spans of later traces."""

    def teardown_worker(self, worker_id: str) -> None:
        """Flush and release what :meth:`init_worker` set up."""

    def teardown(self) -> None:
        """Release process-wide state."""

    @abstractmethod
    def trace_context(
        self,
        name: str | None = None,
        *,
        store: LightningStore | None = None,
        rollout_id: str | None = None,
        attempt_id: str | None = None,
    ) -> TraceContext:
        """Open a trace for one attempt; spans are sent to ``store`` under these ids."""

    @abstractmethod
    def get_last_trace(self) -> list[Span]:
        """The spans recorded by the most recently closed trace context, in sequence order."""

    @abstractmethod
    def create_span(self, name: str, attributes: dict[str, Any] | None = None) -> AbstractContextManager[Any]:
        """Start a child span of the current trace for the duration of the block."""

    def operation_context(
        self, name: str, attributes: dict[str, Any] | None = None
    ) -> AbstractContextManager[Any]:
        """A span for a named operation of the agent (defaults to :meth:`create_span`)."""
        return self.create_span(name, attributes)
