"""``LightningSpanProcessor``: forwards finished OpenTelemetry spans to a store in batches.

``on_end`` runs on the agent's hot path (in whatever thread ended the span): it takes a
cheap capture of the span (``capture_opentelemetry``: a tuple, no copies, so the SDK's
per-span objects are freed at once), appends it to the buffer of its trace and, once a
batch is full (16 batches when the exporter is on another thread), wakes the trace's
exporter task. The exporter runs on the event loop that owns the store, converts a batch
at a time (``spans_from_captures``) and stores it in one ``add_many_spans`` call (sequence
id 0: the store allocates); every store call has a deadline. Failures are logged and
counted, and :meth:`LightningSpanProcessor.finish` raises
``StoreUnavailableError`` when any span of the trace could not be stored.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from agentlightning_core.errors import StoreUnavailableError
from agentlightning_core.spans import OtelCapture, Span, capture_opentelemetry, spans_from_captures

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span as SdkSpan

    from agentlightning_core.store.base import LightningStore

__all__ = ["LightningSpanProcessor", "ProcessorStats", "TraceBuffer"]

logger = logging.getLogger(__name__)

_LOCAL_ROLLOUT = "local-rollout"
_LOCAL_ATTEMPT = "local-attempt"
# A trace exported by a thread other than the agent's wakes the exporter once this many
# batches are pending (capped by max_buffer); the exporter then stores them all.
_CROSS_THREAD_WAKE_BATCHES = 16


@attrs.define
class ProcessorStats:
    """Counters of the processor since it was created (read them, don't write them)."""

    spans_received: int = 0
    spans_stored: int = 0
    spans_duplicate: int = 0
    spans_failed: int = 0
    spans_dropped_buffer_full: int = 0
    spans_unattributed: int = 0
    spans_late: int = 0
    batches: int = 0
    export_errors: int = 0


class TraceBuffer:
    """The spans of one open trace context on their way to the store."""

    def __init__(
        self,
        *,
        trace_id: int,
        rollout_id: str | None,
        attempt_id: str | None,
        store: LightningStore | None,
        loop: asyncio.AbstractEventLoop,
        cross_thread: bool = False,
    ) -> None:
        self.trace_id = trace_id
        self.rollout_id = rollout_id or _LOCAL_ROLLOUT
        self.attempt_id = attempt_id or _LOCAL_ATTEMPT
        self.store = store
        self.loop = loop
        self.cross_thread = cross_thread
        self.wake_at = 0  # pending spans that wake the exporter; set by LightningSpanProcessor.open
        self.pending: list[OtelCapture] = []
        self.stored: list[Span] = []
        self.errors: list[str] = []
        self.failed = 0
        self.dropped = 0
        self.wake_requested = False
        self.closing = False
        self.local_sequence = 0
        # the exporter task starts with the first full batch (most traces never fill one;
        # ``finish`` then stores them directly, without a task)
        self.event: asyncio.Event | None = None
        self.task: asyncio.Task[None] | None = None


class LightningSpanProcessor(SpanProcessor):
    """Routes each finished span to the buffer of its trace (by trace id) and exports batches.

    :param batch_size: spans per store call; a full batch wakes the exporter (16 full
        batches when the exporter runs on another thread than the agent, see ``open``).
    :param max_buffer: spans a trace may hold unexported; beyond it spans are dropped,
        counted and reported by :meth:`finish`.
    :param timeout: seconds allowed for each store call and for the final flush.
    """

    def __init__(self, *, batch_size: int = 256, max_buffer: int = 65536, timeout: float = 30.0) -> None:
        if batch_size < 1 or max_buffer < batch_size:
            raise ValueError(
                f"Need 1 <= batch_size <= max_buffer, got batch_size={batch_size!r}, max_buffer={max_buffer!r}"
            )
        if timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.batch_size = batch_size
        self.max_buffer = max_buffer
        self.timeout = timeout
        self.stats = ProcessorStats()
        self._lock = threading.Lock()
        self._traces: dict[int, TraceBuffer] = {}
        self._closed_ids: collections.deque[int] = collections.deque(maxlen=4096)

    # --- SpanProcessor interface (called by the SDK, any thread) -------------------------

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        try:
            capture = capture_opentelemetry(span)
        except ValueError as exc:
            with self._lock:
                self.stats.spans_received += 1
                self.stats.spans_unattributed += 1
            logger.warning("%s", exc)
            return
        trace_id = capture[0]
        with self._lock:
            self.stats.spans_received += 1
            buf = self._traces.get(trace_id)
            if buf is not None and len(pending := buf.pending) < self.max_buffer:
                # the hot path: an open trace with room in its buffer
                pending.append(capture)
                if len(pending) < buf.wake_at or buf.wake_requested:
                    return
                buf.wake_requested = True
            else:
                buf = self._add_unrouted(span, buf, capture)
                if buf is None:
                    return
        buf.loop.call_soon_threadsafe(self._wake, buf)

    def _add_unrouted(
        self, span: ReadableSpan, buf: TraceBuffer | None, capture: OtelCapture
    ) -> TraceBuffer | None:
        """``on_end`` (holding the lock) for a span of no open trace, or a full buffer.

        Returns the buffer whose exporter must be woken, if any.
        """
        if buf is None:
            if capture[0] in self._closed_ids:
                self.stats.spans_late += 1
                logger.warning(
                    "Span %r ended after its trace context closed; it is not stored. "
                    "End every span before leaving trace_context().",
                    span.name,
                )
                return None
            if len(self._traces) != 1:
                self.stats.spans_unattributed += 1
                logger.warning(
                    "Span %r belongs to no open trace context (%d open); it is not stored.",
                    span.name,
                    len(self._traces),
                )
                return None
            # A span started without our context (e.g. in a plain thread): the only open trace.
            buf = next(iter(self._traces.values()))
        if len(buf.pending) >= self.max_buffer:
            buf.dropped += 1
            self.stats.spans_dropped_buffer_full += 1
            if buf.dropped == 1:
                logger.error(
                    "Span buffer of rollout %s attempt %s is full (max_buffer=%d): the store is not "
                    "keeping up; dropping spans. Raise max_buffer or check the store.",
                    buf.rollout_id,
                    buf.attempt_id,
                    self.max_buffer,
                )
            return None
        buf.pending.append(capture)
        if len(buf.pending) < buf.wake_at or buf.wake_requested:
            return None
        buf.wake_requested = True
        return buf

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # --- trace lifecycle (called by the tracer) ------------------------------------------

    def open(self, buf: TraceBuffer) -> None:
        # Waking an exporter on another thread costs GIL hand-offs while the agent runs
        # (~3 us per span at one wake per 256 spans): such traces wake it less often.
        buf.wake_at = (
            min(self.batch_size * _CROSS_THREAD_WAKE_BATCHES, self.max_buffer)
            if buf.cross_thread
            else self.batch_size
        )
        with self._lock:
            if buf.trace_id in self._traces:
                raise ValueError(f"Trace {buf.trace_id:032x} is already open")
            self._traces[buf.trace_id] = buf

    def close(self, buf: TraceBuffer) -> None:
        """Stop routing spans to ``buf`` (later spans of its trace count as late)."""
        with self._lock:
            self._traces.pop(buf.trace_id, None)
            self._closed_ids.append(buf.trace_id)

    async def finish(self, buf: TraceBuffer, *, raise_on_error: bool = True) -> list[Span]:
        """Close ``buf``, export what is left within the deadline; runs on ``buf.loop``.

        Returns the stored spans in sequence order. Raises ``StoreUnavailableError`` when
        spans were lost (store errors, deadline, full buffer) and ``raise_on_error``.
        """
        self.close(buf)  # no span is added to ``buf.pending`` after this
        buf.closing = True
        task = buf.task
        with anyio.CancelScope(shield=True), anyio.move_on_after(self.timeout) as scope:
            if task is not None:
                assert buf.event is not None
                buf.event.set()
                await task
            await self._drain(buf)
        if scope.cancelled_caught:
            if task is not None:
                task.cancel()
            self._record_failure(buf, buf.pending, f"flush did not finish within {self.timeout}s")
            buf.pending = []
        buf.stored.sort(key=lambda s: s.sequence_id)
        lost = buf.failed + buf.dropped
        if lost:
            msg = (
                f"{lost} span(s) of rollout {buf.rollout_id!r} attempt {buf.attempt_id!r} were not stored "
                f"({buf.failed} failed, {buf.dropped} dropped from a full buffer); first error: "
                f"{buf.errors[0] if buf.errors else 'buffer full'}. Check that the store "
                f"{type(buf.store).__name__} is reachable, or raise the tracer's timeout/max_buffer."
            )
            if raise_on_error:
                raise StoreUnavailableError(msg)
            logger.error(msg)
        return buf.stored

    # --- export --------------------------------------------------------------------------

    def _wake(self, buf: TraceBuffer) -> None:
        """A batch is full: run the exporter task of ``buf`` (on ``buf.loop``; started once)."""
        if buf.closing:
            return  # finish() stores the rest
        if buf.task is None:
            buf.event = asyncio.Event()
            buf.task = buf.loop.create_task(self._export_loop(buf, buf.event))
        else:
            assert buf.event is not None
        buf.event.set()

    async def _export_loop(self, buf: TraceBuffer, event: asyncio.Event) -> None:
        while not buf.closing:
            await event.wait()
            event.clear()
            await self._drain(buf)

    async def _drain(self, buf: TraceBuffer) -> None:
        """Export the pending spans of ``buf``, a batch per store call."""
        while True:
            with self._lock:
                batch = buf.pending[: self.batch_size]
                del buf.pending[: self.batch_size]
                if not buf.pending:
                    buf.wake_requested = False
            if not batch:
                return
            await self._export(buf, batch)

    async def _export(self, buf: TraceBuffer, batch: list[OtelCapture]) -> None:
        store = buf.store
        if store is None:
            buf.stored.extend(self._convert(buf, batch, buf.local_sequence + 1))
            buf.local_sequence += len(batch)
            self.stats.spans_stored += len(batch)
            return
        try:
            # sequence_id 0 asks the store to allocate the next id (store.policy.next_sequence_id).
            spans = self._convert(buf, batch, None)
            # asyncio.timeout: a third of the cost of anyio.fail_after (the loop is asyncio's)
            async with asyncio.timeout(self.timeout):
                stored = await store.add_many_spans(spans)
        except asyncio.CancelledError:
            self._record_failure(buf, batch, f"flush did not finish within {self.timeout}s")
            raise
        except Exception as exc:
            reason = (
                f"store call timed out after {self.timeout}s"
                if isinstance(exc, TimeoutError)
                else f"{type(exc).__name__}: {exc}"
            )
            self._record_failure(buf, batch, reason)
            return
        self.stats.batches += 1
        self.stats.spans_stored += len(stored)
        self.stats.spans_duplicate += len(batch) - len(stored)
        buf.stored.extend(stored)

    def _convert(
        self, buf: TraceBuffer, batch: list[OtelCapture], first_sequence_id: int | None
    ) -> list[Span]:
        return spans_from_captures(
            batch, rollout_id=buf.rollout_id, attempt_id=buf.attempt_id, first_sequence_id=first_sequence_id
        )

    def _record_failure(self, buf: TraceBuffer, batch: list[Any], reason: str) -> None:
        if not batch:
            return
        buf.failed += len(batch)
        buf.errors.append(reason)
        self.stats.spans_failed += len(batch)
        self.stats.export_errors += 1
        logger.error(
            "Could not store %d span(s) of rollout %s attempt %s: %s",
            len(batch),
            buf.rollout_id,
            buf.attempt_id,
            reason,
        )
