"""The tracer contract: record what an agent does as spans and hand them to the store."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import AbstractAsyncContextManager, AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol

from agentlightning_core.spans import Span

if TYPE_CHECKING:
    from agentlightning_core.store.base import LightningStore

__all__ = ["SpanHandle", "TraceContext", "Tracer", "active_tracer", "use_tracer"]


class SpanHandle(Protocol):
    """What :meth:`Tracer.create_span` yields: an open span that accepts attributes.

    OpenTelemetry SDK spans satisfy it.
    """

    def set_attribute(self, key: str, value: Any) -> None: ...

    def set_attributes(self, attributes: Mapping[str, Any]) -> None: ...

    def record_exception(self, exception: BaseException) -> None: ...


class TraceContext(
    AbstractContextManager["TraceContext"], AbstractAsyncContextManager["TraceContext"], Protocol
):
    """What :meth:`Tracer.trace_context` returns: usable with ``with`` and ``async with``.

    On exit every span recorded inside has been handed to the store (when the tracer has
    one) and :attr:`spans` holds them: each context its own, however many are open at once.
    """

    spans: list[Span]
    """The spans recorded inside, in sequence order (empty until the block exits)."""


class Tracer(ABC):
    """Base of tracers. Lifecycle: ``init`` once, ``init_worker`` per runner, then traces,
    ``teardown_worker`` and ``teardown``."""

    def init(self) -> None:
        """Prepare process-wide state (called once in the main process)."""

    def init_worker(self, worker_id: str, store: LightningStore | None = None) -> None:
        """Prepare a runner's tracing; ``store`` receives the spans of every later trace."""

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
        """Open a trace for one attempt; spans go to the store given to :meth:`init_worker`
        (or to ``store``, for a trace outside a runner) under these ids."""

    @abstractmethod
    def get_last_trace(self) -> list[Span]:
        """The spans of the most recently closed trace context, in sequence order.

        Only meaningful while one trace is open at a time; code running several concurrently
        (the runner) reads each context's :attr:`TraceContext.spans` instead.
        """

    @abstractmethod
    def create_span(
        self, name: str, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[SpanHandle]:
        """Start a child span of the current trace for the duration of the block."""

    def get_langchain_handler(self) -> Any:
        """A LangChain callback handler recording the runs it sees into this tracer's traces
        (pass it in ``config={"callbacks": [...]}``). Needs the agentlightning-langchain
        distribution; without it the error says how to install it."""
        from agentlightning_core.plugins import integration

        return integration("langchain")(self)

    def operation_context(
        self, name: str, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[SpanHandle]:
        """A span for a named operation of the agent (defaults to :meth:`create_span`)."""
        return self.create_span(name, attributes)


_active: ContextVar[Tracer | None] = ContextVar("agentlightning_active_tracer", default=None)
_open_lock = threading.Lock()
_open: list[Tracer] = []


def active_tracer() -> Tracer | None:
    """The tracer whose trace context encloses the caller.

    Looked up in the current context first; code running where the context was not
    propagated (a plain ``threading.Thread``) gets the only open trace context of the
    process, if exactly one is open. None otherwise.
    """
    tracer = _active.get()
    if tracer is not None:
        return tracer
    with _open_lock:
        return _open[0] if len(_open) == 1 else None


@contextmanager
def use_tracer(tracer: Tracer) -> Iterator[None]:
    """Make ``tracer`` the active tracer for the block (tracers call this in ``trace_context``)."""
    token = _active.set(tracer)
    with _open_lock:
        _open.append(tracer)
    try:
        yield
    finally:
        with _open_lock:
            _open.remove(tracer)
        _active.reset(token)
