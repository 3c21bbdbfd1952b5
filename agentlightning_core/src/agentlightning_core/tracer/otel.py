"""``OtelTracer``: OpenTelemetry SDK spans, forwarded to the store by a ``LightningSpanProcessor``.

The tracer owns a ``TracerProvider`` (the application's global provider is left alone
unless ``set_global_provider=True``). Each trace context opens a root span in a fresh
trace; every span of that trace (LLM calls captured from the ``openai`` client, emitted
rewards, the agent's own spans) is routed to the attempt's store.

``async with`` exports on the running event loop (the store's loop). A plain ``with``
exports on a private event-loop thread of the tracer, so sync code works without a loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, ExitStack
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from agentlightning_core import semconv
from agentlightning_core.otlp_export import OtlpSpec, otlp_exporter
from agentlightning_core.spans import Span
from agentlightning_core.tracer.base import SpanHandle, Tracer, use_tracer
from agentlightning_core.tracer.processor import LightningSpanProcessor, ProcessorStats, TraceBuffer

if TYPE_CHECKING:
    from agentlightning_core.store.base import LightningStore

__all__ = ["OtelTracer"]

logger = logging.getLogger(__name__)


class _LoopThread:
    """An asyncio event loop running in a daemon thread (for plain ``with`` trace contexts)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="agl-otel-export", daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float) -> Any:
        fut: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()


class OtelTracer(Tracer):
    """The default tracer (registered as ``otel``).

    :param instrument_openai: capture calls of the ``openai`` client (when installed).
    :param set_global_provider: also install this tracer's provider as OpenTelemetry's
        global one, so libraries that use the global tracer record into the store.
    :param batch_size: spans per store call.
    :param max_buffer: unexported spans a trace may hold before spans are dropped (reported).
    :param timeout: seconds allowed for each store call and for the flush at the end of a trace.
    :param raise_on_export_error: raise ``StoreUnavailableError`` when a trace context closes
        with spans that could not be stored (otherwise only logged and counted in ``stats``).
    :param otlp: also forward each trace's spans, when its context closes, to an OTLP/HTTP
        endpoint: a URL, a dict of :class:`~agentlightning_core.otlp_export.OtlpExporter`
        arguments, an exporter, or True for the ``OTEL_EXPORTER_OTLP_*`` variables (docs/otlp.md).
    """

    def __init__(
        self,
        *,
        instrument_openai: bool = True,
        set_global_provider: bool = False,
        batch_size: int = 256,
        max_buffer: int = 65536,
        timeout: float = 30.0,
        raise_on_export_error: bool = True,
        resource_attributes: Mapping[str, Any] | None = None,
        otlp: OtlpSpec = None,
    ) -> None:
        self.instrument_openai = instrument_openai
        self.set_global_provider = set_global_provider
        self.raise_on_export_error = raise_on_export_error
        self.processor = LightningSpanProcessor(batch_size=batch_size, max_buffer=max_buffer, timeout=timeout)
        # Every span of an attempt is training data: record all of them, whatever
        # OTEL_TRACES_SAMPLER says (the SDK default, ParentBased, also costs ~1 us more per span).
        self.provider = TracerProvider(
            sampler=ALWAYS_ON,
            resource=Resource.create({"service.name": "agentlightning", **(resource_attributes or {})}),
        )
        self.provider.add_span_processor(self.processor)
        self.otel_tracer: otel_trace.Tracer = self.provider.get_tracer("agentlightning")
        self.worker_id: str | None = None
        self.store: LightningStore | None = None
        self._initialized = False
        self._instrumented = False
        self._loop_thread: _LoopThread | None = None
        self._lock = threading.Lock()
        self._last_trace: list[Span] = []
        self.otlp = otlp_exporter(otlp)

    @property
    def stats(self) -> ProcessorStats:
        return self.processor.stats

    # --- lifecycle -----------------------------------------------------------------------

    def init(self) -> None:
        with self._lock:
            if self._initialized:
                return
            self._initialized = True
            if self.set_global_provider:
                otel_trace.set_tracer_provider(self.provider)
            if self.instrument_openai:
                from agentlightning_core.tracer._openai_capture import instrument_openai

                self._instrumented = instrument_openai()

    def init_worker(self, worker_id: str, store: LightningStore | None = None) -> None:
        self.init()
        self.worker_id = worker_id
        self.store = store

    def teardown_worker(self, worker_id: str) -> None:
        with self._lock:
            loop_thread, self._loop_thread = self._loop_thread, None
        if loop_thread is not None:
            loop_thread.stop()
        self.store = None
        if self.otlp is not None:
            self.otlp.flush(self.otlp.timeout)

    def teardown(self) -> None:
        self.teardown_worker(self.worker_id or "")
        with self._lock:
            if self._instrumented:
                from agentlightning_core.tracer._openai_capture import uninstrument_openai

                uninstrument_openai()
                self._instrumented = False
            self._initialized = False
        self.provider.shutdown()
        if self.otlp is not None:
            self.otlp.close()

    # --- tracing -------------------------------------------------------------------------

    def trace_context(
        self,
        name: str | None = None,
        *,
        store: LightningStore | None = None,
        rollout_id: str | None = None,
        attempt_id: str | None = None,
    ) -> _OtelTraceContext:
        return _OtelTraceContext(
            self, name, store if store is not None else self.store, rollout_id, attempt_id
        )

    def get_last_trace(self) -> list[Span]:
        return list(self._last_trace)

    def create_span(
        self, name: str, attributes: Mapping[str, Any] | None = None
    ) -> AbstractContextManager[SpanHandle]:
        return _CurrentSpan(self.otel_tracer, name, attributes)

    def _sync_loop(self) -> _LoopThread:
        with self._lock:
            if self._loop_thread is None:
                self._loop_thread = _LoopThread()
            return self._loop_thread


class _CurrentSpan:
    """A span made current for a block; exceptions are recorded and set the error status.

    (``start_as_current_span`` does the same through two generator-based context managers;
    this class costs a few microseconds less per span.)
    """

    __slots__ = ("_attributes", "_name", "_span", "_token", "_tracer")

    def __init__(self, tracer: otel_trace.Tracer, name: str, attributes: Mapping[str, Any] | None) -> None:
        self._tracer = tracer
        self._name = name
        self._attributes = attributes
        self._span: Any = None
        self._token: Any = None

    def __enter__(self) -> SpanHandle:
        span = self._tracer.start_span(self._name, attributes=self._attributes)
        self._span = span
        self._token = otel_context.attach(otel_trace.set_span_in_context(span))
        handle: SpanHandle = span
        return handle

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        span = self._span
        try:
            if exc is not None:
                span.record_exception(exc)
                span.set_status(
                    otel_trace.Status(otel_trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
                )
        finally:
            otel_context.detach(self._token)
            span.end()


class _OtelTraceContext:
    """One trace of an attempt; usable once, with ``with`` or ``async with``."""

    def __init__(
        self,
        tracer: OtelTracer,
        name: str | None,
        store: LightningStore | None,
        rollout_id: str | None,
        attempt_id: str | None,
    ) -> None:
        self._tracer = tracer
        self._name = name or semconv.TRACE_ROOT_SPAN
        self._store = store
        self._rollout_id = rollout_id
        self._attempt_id = attempt_id
        self._stack = ExitStack()
        self._root: Any = None
        self._buf: TraceBuffer | None = None
        self.spans: list[Span] = []

    def _begin(self, loop: asyncio.AbstractEventLoop, *, cross_thread: bool) -> TraceBuffer:
        tracer = self._tracer
        tracer.init()
        attributes: dict[str, Any] = {}
        if self._rollout_id:
            attributes[semconv.ROLLOUT_ID] = self._rollout_id
        if self._attempt_id:
            attributes[semconv.ATTEMPT_ID] = self._attempt_id
        # A fresh trace (empty parent context) so the trace id identifies this attempt.
        root = tracer.otel_tracer.start_span(
            self._name, context=otel_context.Context(), attributes=attributes
        )
        buf = TraceBuffer(
            trace_id=root.get_span_context().trace_id,
            rollout_id=self._rollout_id,
            attempt_id=self._attempt_id,
            store=self._store,
            loop=loop,
            cross_thread=cross_thread,
        )
        tracer.processor.open(buf)
        self._root, self._buf = root, buf
        return buf

    def _enter_context(self) -> None:
        token = otel_context.attach(otel_trace.set_span_in_context(self._root))
        self._stack.callback(otel_context.detach, token)
        self._stack.enter_context(use_tracer(self._tracer))

    def _end_root(self, exc: BaseException | None) -> None:
        self._stack.close()
        if exc is not None:
            self._root.record_exception(exc)
            self._root.set_status(
                otel_trace.Status(otel_trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}")
            )
        self._root.end()

    def _done(self, spans: list[Span]) -> None:
        self.spans = spans
        self._tracer._last_trace = spans
        if self._tracer.otlp is not None:
            self._tracer.otlp.submit(spans)

    # --- sync ----------------------------------------------------------------------------

    def __enter__(self) -> Self:
        loop_thread = self._tracer._sync_loop()
        self._begin(loop_thread.loop, cross_thread=True)
        self._enter_context()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._buf is not None
        self._end_root(exc)
        processor = self._tracer.processor
        raise_errors = self._tracer.raise_on_export_error and exc is None
        loop_thread = self._tracer._sync_loop()
        try:
            loop_thread.run(processor.finish(self._buf, raise_on_error=raise_errors), processor.timeout + 5.0)
        except concurrent.futures.TimeoutError:
            logger.error("Flushing trace %r did not finish in time; spans may be missing", self._name)
        finally:
            self._done(list(self._buf.stored))

    # --- async ---------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "OtelTracer's `async with trace_context()` needs the asyncio event loop; "
                "use a plain `with` under other async backends"
            ) from None
        self._begin(loop, cross_thread=False)
        self._enter_context()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._buf is not None
        self._end_root(exc)
        raise_errors = self._tracer.raise_on_export_error and exc is None
        try:
            await self._tracer.processor.finish(self._buf, raise_on_error=raise_errors)
        finally:
            self._done(list(self._buf.stored))
