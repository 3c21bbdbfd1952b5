"""``NoOpTracer`` (registered as ``noop``): records nothing; for tests and dry runs."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from agentlightning_core.spans import Span
from agentlightning_core.tracer.base import SpanHandle, Tracer, use_tracer

if TYPE_CHECKING:
    from agentlightning_core.store.base import LightningStore

__all__ = ["NoOpSpan", "NoOpTracer"]


class NoOpSpan:
    """A span handle that ignores everything."""

    def set_attribute(self, key: str, value: Any) -> None:
        return None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        return None

    def record_exception(self, exception: BaseException) -> None:
        return None


_NOOP_SPAN = NoOpSpan()


class _NoOpTraceContext:
    def __init__(self, tracer: NoOpTracer) -> None:
        self._tracer = tracer
        self._stack = ExitStack()
        self.spans: list[Span] = []

    def __enter__(self) -> Self:
        self._stack.enter_context(use_tracer(self._tracer))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)


class NoOpTracer(Tracer):
    """Opens trace contexts that record no span; emitters inside them do nothing."""

    def trace_context(
        self,
        name: str | None = None,
        *,
        store: LightningStore | None = None,
        rollout_id: str | None = None,
        attempt_id: str | None = None,
    ) -> _NoOpTraceContext:
        return _NoOpTraceContext(self)

    def get_last_trace(self) -> list[Span]:
        return []

    def create_span(
        self, name: str, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[SpanHandle]:
        return _noop_span()


@contextmanager
def _noop_span() -> Iterator[SpanHandle]:
    yield _NOOP_SPAN
