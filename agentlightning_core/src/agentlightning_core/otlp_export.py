"""Forward stored spans to any OTLP/HTTP endpoint (Jaeger, Phoenix, MLflow, a collector ...).

:class:`OtlpExporter` takes spans in the store's form (:class:`~agentlightning_core.spans.Span`),
queues them without ever blocking the caller, and exports them from a background thread with
OpenTelemetry's own OTLP/HTTP exporter (the ``otlp`` extra:
``pip install 'agentlightning-core[otlp]'``). Every exported span carries its rollout and
attempt ids as attributes; an attempt's root span also carries the trace's reward, and each
reward is recorded in the histogram metric ``agentlightning.reward`` (OTLP metrics). With
``openinference=True`` spans also get the OpenInference attributes Phoenix reads.

Both :class:`~agentlightning_core.tracer.otel.OtelTracer` and
:class:`~agentlightning_core.remote.server.LightningStoreServer` take ``otlp=``; see docs/otlp.md.
An endpoint that is down or slow is logged and counted in :attr:`OtlpExporter.stats`; spans
that do not fit the queue are dropped (counted), never waited for.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Self, TypeAlias, cast
from urllib.parse import urlsplit

import attrs
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from agentlightning_core import semconv
from agentlightning_core.spans import Span
from agentlightning_core.validation import check_positive_int

if TYPE_CHECKING:
    from agentlightning_core.store.base import LightningStore

__all__ = [
    "REWARD_METRIC",
    "REWARD_METRIC_KEY",
    "OtlpExporter",
    "OtlpSpec",
    "OtlpStats",
    "forwarding_store",
    "openinference_attributes",
    "otlp_exporter",
    "to_readable_span",
]

logger = logging.getLogger(__name__)

REWARD_METRIC = "agentlightning.reward"
"""Histogram of every reward forwarded (unit ``1``)."""
REWARD_METRIC_KEY = "agentlightning.reward.key"
"""Attribute of :data:`REWARD_METRIC`: ``value`` for the primary reward, else the dimension's name."""

_TRACES_PATH = "/v1/traces"
_METRICS_PATH = "/v1/metrics"
_INSTALL = "pip install 'agentlightning-core[otlp]'"


@attrs.define
class OtlpStats:
    """Counters of an exporter since it was created (read them, don't write them)."""

    spans_submitted: int = 0
    spans_exported: int = 0
    spans_failed: int = 0
    """Spans the endpoint did not accept (down, refused, timed out) or that could not be encoded."""
    spans_dropped: int = 0
    """Spans that found the queue full, or were still queued when the exporter closed."""
    export_errors: int = 0
    """Failed export requests."""
    rewards_recorded: int = 0


def _endpoints(endpoint: str | None, metrics_endpoint: str | None) -> tuple[str | None, str | None]:
    """The traces URL and the metrics URL from a base URL or a full ``.../v1/traces`` URL."""
    if endpoint is None:
        return None, metrics_endpoint  # the exporter reads OTEL_EXPORTER_OTLP_* (default localhost:4318)
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            f"OTLP endpoint {endpoint!r} is not an http(s) URL; give e.g. 'http://127.0.0.1:4318' "
            "or 'http://127.0.0.1:5000/v1/traces'"
        )
    base = endpoint.rstrip("/")
    if base.endswith(_TRACES_PATH):
        base = base[: -len(_TRACES_PATH)]
    return base + _TRACES_PATH, metrics_endpoint or base + _METRICS_PATH


class OtlpExporter:
    """Queues spans and exports them to an OTLP/HTTP endpoint from a background thread.

    :param endpoint: the collector's base URL (``http://host:4318``; ``/v1/traces`` and
        ``/v1/metrics`` are appended) or its full traces URL. None: OpenTelemetry's
        ``OTEL_EXPORTER_OTLP_*`` environment variables (default ``http://localhost:4318``).
    :param headers: sent with every request (e.g. ``{"x-mlflow-experiment-id": "1"}``);
        ``OTEL_EXPORTER_OTLP_HEADERS`` is read when None.
    :param timeout: seconds allowed for one export request, retries included.
    :param metrics: also export rewards as the ``agentlightning.reward`` histogram.
    :param metrics_endpoint: the metrics URL, when not ``<base>/v1/metrics``.
    :param metrics_interval: seconds between metric exports (and one at close).
    :param openinference: add the OpenInference attributes (Phoenix's span kinds, messages,
        token counts, ``session.id`` = rollout id).
    :param max_queue: spans waiting for export; more are dropped and counted.
    :param batch_size: spans per export request.
    :param resource_attributes: added to every span's resource (``service.name`` defaults to
        ``agentlightning`` for spans whose resource has none).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
        metrics: bool = True,
        metrics_endpoint: str | None = None,
        metrics_interval: float = 30.0,
        openinference: bool = False,
        max_queue: int = 65536,
        batch_size: int = 512,
        resource_attributes: Mapping[str, Any] | None = None,
    ) -> None:
        if not (isinstance(timeout, (int, float)) and timeout > 0):
            raise ValueError(f"OtlpExporter timeout must be a positive number of seconds, got {timeout!r}")
        if not (isinstance(metrics_interval, (int, float)) and metrics_interval > 0):
            raise ValueError(
                f"OtlpExporter metrics_interval must be a positive number of seconds, got {metrics_interval!r}"
            )
        check_positive_int("OtlpExporter batch_size", batch_size)
        check_positive_int("OtlpExporter max_queue", max_queue, minimum=batch_size)
        self.endpoint, self.metrics_endpoint = _endpoints(endpoint, metrics_endpoint)
        self.headers = dict(headers) if headers is not None else None
        self.timeout = float(timeout)
        self.metrics = metrics
        self.metrics_interval = float(metrics_interval)
        self.openinference = openinference
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.resource_attributes = dict(resource_attributes or {})
        self.stats = OtlpStats()
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._cond = threading.Condition()
        self._queue: collections.deque[Span] = collections.deque()
        self._in_flight = 0
        self._thread: threading.Thread | None = None
        self._closing = False
        self._span_exporter: Any = None
        self._meter_provider: Any = None
        self._histogram: Any = None
        self._failing = False
        self._last_resource: tuple[dict[str, Any] | None, Resource] = (None, Resource({}))
        self._trace_rewards: dict[str, dict[str, Any]] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Runner processes get their own queue and thread: only the settings are pickled.
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_") and k != "stats"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.stats = OtlpStats()
        self._init_runtime()

    def __repr__(self) -> str:
        return f"OtlpExporter(endpoint={self.endpoint!r}, metrics={self.metrics}, openinference={self.openinference})"

    # --- producer side (any thread, never blocks) ------------------------------------------

    def submit(self, spans: Iterable[Span]) -> None:
        """Queue ``spans`` for export; those that do not fit are dropped and counted."""
        with self._cond:
            if self._closing:
                return
            if self._thread is None:
                self._start()
            queue = self._queue
            before = len(queue)
            for span in spans:
                self.stats.spans_submitted += 1
                if len(queue) < self.max_queue:
                    queue.append(span)
                else:
                    self.stats.spans_dropped += 1
                    if self.stats.spans_dropped == 1:
                        logger.error(
                            "OTLP export queue is full (max_queue=%d): %s is not keeping up; dropping spans",
                            self.max_queue,
                            self.endpoint or "the OTLP endpoint",
                        )
            if len(queue) != before:
                self._cond.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued span was exported or failed; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._in_flight:
                if self._thread is None:
                    return False
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        if self._meter_provider is not None:
            self._meter_provider.force_flush(int(1000 * (self.timeout if timeout is None else timeout)))
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Export what is queued within ``timeout`` seconds, then stop (queued leftovers are
        dropped and counted). A later :meth:`submit` starts the exporter again."""
        self.flush(timeout)
        with self._cond:
            thread, self._thread = self._thread, None
            self._closing = True
            self.stats.spans_dropped += len(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        span_exporter, meter_provider = self._span_exporter, self._meter_provider
        if span_exporter is not None:
            span_exporter.shutdown()  # aborts retries of a request in flight
        if thread is not None:
            thread.join(timeout)
        if meter_provider is not None:
            try:
                meter_provider.shutdown(timeout_millis=int(1000 * timeout))
            except Exception as exc:  # the metrics endpoint is down: already logged by the SDK
                logger.debug("Closing the OTLP metric exporter: %r", exc)
        with self._cond:
            self._closing = False
            self._span_exporter = self._meter_provider = self._histogram = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- consumer side (the export thread) -------------------------------------------------

    def _start(self) -> None:
        """Create the OpenTelemetry exporters and the thread (called holding the lock)."""
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as exc:
            raise ImportError(
                f"Forwarding spans over OTLP needs OpenTelemetry's OTLP/HTTP exporter: {_INSTALL}"
            ) from exc
        self._span_exporter = OTLPSpanExporter(
            endpoint=self.endpoint, headers=self.headers, timeout=self.timeout
        )
        if self.metrics:
            self._start_metrics()
        self._thread = threading.Thread(target=self._run, name="agl-otlp-export", daemon=True)
        self._thread.start()

    def _start_metrics(self) -> None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        exporter = OTLPMetricExporter(
            endpoint=self.metrics_endpoint, headers=self.headers, timeout=self.timeout
        )
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=1000 * self.metrics_interval)
        resource = Resource({"service.name": "agentlightning", **self.resource_attributes})
        self._meter_provider = MeterProvider(metric_readers=[reader], resource=resource)
        self._histogram = self._meter_provider.get_meter("agentlightning").create_histogram(
            REWARD_METRIC, unit="1", description="Rewards of Agent Lightning rollouts"
        )

    def _run(self) -> None:
        cond = self._cond
        me = threading.current_thread()
        while True:
            with cond:
                while not self._queue and self._thread is me:
                    cond.wait()
                if self._thread is not me:
                    return  # closed
                n = min(len(self._queue), self.batch_size)
                batch = [self._queue.popleft() for _ in range(n)]
                self._in_flight = n
            try:
                self._export(batch)
            except Exception:  # never let the thread die: count the batch as failed
                logger.exception("Forwarding %d span(s) over OTLP failed", len(batch))
                self._failed(len(batch), "unexpected error")
            finally:
                with cond:
                    self._in_flight = 0
                    cond.notify_all()

    def _export(self, batch: list[Span]) -> None:
        from opentelemetry.sdk.trace.export import SpanExportResult

        readable: list[ReadableSpan] = []
        rewards = self._trace_rewards
        for span in batch:
            if span.name == semconv.REWARD_SPAN and semconv.REWARD_VALUE in span.attributes:
                if len(rewards) >= 4096:
                    rewards.clear()  # traces whose root span never came
                rewards[span.trace_id] = {
                    k: v for k, v in span.attributes.items() if k.startswith(semconv.REWARD_PREFIX)
                }
        for span in batch:
            # A reward span ends (and is stored) before its root: the root carries the reward.
            reward = rewards.pop(span.trace_id, None) if span.parent_id is None else None
            try:
                readable.append(self._readable(span, reward))
            except ValueError as exc:
                self._failed(1, str(exc))
        if readable:
            if self._span_exporter.export(readable) is SpanExportResult.SUCCESS:
                self.stats.spans_exported += len(readable)
                if self._failing:
                    self._failing = False
                    logger.info("OTLP endpoint %s accepts spans again", self.endpoint)
            else:
                self._failed(len(readable), "the endpoint did not accept the request")
        if self._histogram is not None:
            for span in batch:
                self._record_rewards(span)

    def _failed(self, count: int, reason: str) -> None:
        self.stats.spans_failed += count
        self.stats.export_errors += 1
        if not self._failing:
            self._failing = True
            logger.error(
                "Could not forward %d span(s) to OTLP endpoint %s: %s (further failures are only "
                "counted until it recovers; store ingestion is not affected)",
                count,
                self.endpoint or "(from OTEL_EXPORTER_OTLP_*)",
                reason,
            )

    def _record_rewards(self, span: Span) -> None:
        if span.name != semconv.REWARD_SPAN:
            return
        for key, value in span.attributes.items():
            if not key.startswith(semconv.REWARD_PREFIX) or key == semconv.REWARD_PRIMARY_KEY:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            self._histogram.record(float(value), {REWARD_METRIC_KEY: key[len(semconv.REWARD_PREFIX) :]})
            self.stats.rewards_recorded += 1

    def _resource(self, span: Span) -> Resource:
        # The spans of a batch nearly always share one resource: compare with the last one.
        if span.resource == self._last_resource[0]:
            return self._last_resource[1]
        attributes = {"service.name": "agentlightning", **span.resource, **self.resource_attributes}
        resource = _Resource(attributes)
        self._last_resource = (span.resource, resource)
        return resource

    def _readable(self, span: Span, reward: Mapping[str, Any] | None) -> ReadableSpan:
        extra: dict[str, Any] = {semconv.ROLLOUT_ID: span.rollout_id, semconv.ATTEMPT_ID: span.attempt_id}
        if reward:
            extra.update(reward)
        if self.openinference:
            extra.update(openinference_attributes(span))
        return to_readable_span(span, self._resource(span), extra)


class _Resource(Resource):
    """A resource that hashes once: OpenTelemetry's encoder hashes it per span (a JSON dump)."""

    def __init__(self, attributes: dict[str, Any]) -> None:
        super().__init__(attributes)
        self._hash = super().__hash__()

    def __hash__(self) -> int:
        return self._hash


def _hex_id(value: str | None, what: str, span: Span) -> int:
    try:
        number = int(value or "", 16)
    except ValueError:
        number = 0
    if number <= 0:
        raise ValueError(f"span {span.name!r} has a {what} that is not a hex number: {value!r}")
    return number


def to_readable_span(
    span: Span, resource: Resource, extra_attributes: Mapping[str, Any] | None = None
) -> ReadableSpan:
    """The OpenTelemetry SDK form of a stored span, as OpenTelemetry's exporters take it.

    Raises ``ValueError`` when the span's trace or span id is not hexadecimal.
    """
    trace_id = _hex_id(span.trace_id, "trace id", span)
    context = otel_trace.SpanContext(trace_id, _hex_id(span.span_id, "span id", span), is_remote=False)
    parent = (
        otel_trace.SpanContext(trace_id, _hex_id(span.parent_id, "parent id", span), is_remote=False)
        if span.parent_id
        else None
    )
    links = []
    for link in span.links:
        try:
            links.append(
                otel_trace.Link(
                    otel_trace.SpanContext(int(link.trace_id, 16), int(link.span_id, 16), is_remote=False),
                    link.attributes,
                )
            )
        except ValueError:
            continue  # a link to a span with non-hex ids cannot be expressed in OTLP
    status = otel_trace.Status(
        otel_trace.StatusCode[span.status.status_code]
        if span.status.status_code in otel_trace.StatusCode.__members__
        else otel_trace.StatusCode.UNSET,
        span.status.description if span.status.status_code == "ERROR" else None,
    )
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes={**span.attributes, **(extra_attributes or {})},
        events=[Event(e.name, e.attributes, _ns(e.timestamp)) for e in span.events],
        links=links,
        kind=otel_trace.SpanKind[span.kind]
        if span.kind in otel_trace.SpanKind.__members__
        else otel_trace.SpanKind.INTERNAL,
        status=status,
        start_time=_ns(span.start_time),
        end_time=_ns(span.end_time),
        instrumentation_scope=_SCOPE,
    )


_SCOPE = InstrumentationScope("agentlightning")


def _ns(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1e9)


# --- OpenInference (Phoenix) ------------------------------------------------------------------


def _message_attributes(prefix: str, messages: Any) -> dict[str, Any]:
    from agentlightning_core.tracer.genai import from_semconv_messages, loads_messages

    decoded = loads_messages(messages)
    if not decoded:
        return {}
    out: dict[str, Any] = {}
    for i, message in enumerate(from_semconv_messages(decoded)):
        key = f"{prefix}.{i}.message"
        out[f"{key}.role"] = str(message.get("role"))
        content = message.get("content")
        if isinstance(content, str):
            out[f"{key}.content"] = content
        elif content is not None:
            out[f"{key}.content"] = json.dumps(content, default=str)
        for j, call in enumerate(message.get("tool_calls") or ()):
            function = call.get("function") or {}
            out[f"{key}.tool_calls.{j}.tool_call.function.name"] = str(function.get("name"))
            out[f"{key}.tool_calls.{j}.tool_call.function.arguments"] = str(function.get("arguments"))
    return out


def openinference_attributes(span: Span) -> dict[str, Any]:
    """The OpenInference attributes (``openinference.span.kind``, ``llm.*``, ``input.value`` ...)
    derived from a span's GenAI and Agent Lightning attributes."""
    a = span.attributes
    out: dict[str, Any] = {
        "session.id": span.rollout_id,
        "metadata": json.dumps({"rollout_id": span.rollout_id, "attempt_id": span.attempt_id}),
    }
    operation = a.get(semconv.GEN_AI_OPERATION_NAME)
    if operation is not None or semconv.GEN_AI_REQUEST_MODEL in a:
        kinds = {"embeddings": "EMBEDDING", "execute_tool": "TOOL", "invoke_agent": "AGENT"}
        out["openinference.span.kind"] = kinds.get(str(operation), "LLM")
        model = a.get(semconv.GEN_AI_RESPONSE_MODEL, a.get(semconv.GEN_AI_REQUEST_MODEL))
        if model is not None:
            out["llm.model_name"] = str(model)
        if semconv.GEN_AI_PROVIDER_NAME in a:
            out["llm.provider"] = str(a[semconv.GEN_AI_PROVIDER_NAME])
        prompt, completion = (
            a.get(semconv.GEN_AI_USAGE_INPUT_TOKENS),
            a.get(semconv.GEN_AI_USAGE_OUTPUT_TOKENS),
        )
        if isinstance(prompt, int):
            out["llm.token_count.prompt"] = prompt
        if isinstance(completion, int):
            out["llm.token_count.completion"] = completion
        if isinstance(prompt, int) and isinstance(completion, int):
            out["llm.token_count.total"] = prompt + completion
        parameters = {
            name: a[key]
            for name, key in (
                ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
                ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
                ("max_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
            )
            if key in a
        }
        if parameters:
            out["llm.invocation_parameters"] = json.dumps(parameters)
        for key, io in ((semconv.GEN_AI_INPUT_MESSAGES, "input"), (semconv.GEN_AI_OUTPUT_MESSAGES, "output")):
            if key in a:
                out[f"{io}.value"] = a[key] if isinstance(a[key], str) else json.dumps(a[key], default=str)
                out[f"{io}.mime_type"] = "application/json"
                out.update(_message_attributes(f"llm.{io}_messages", a[key]))
    elif span.name == semconv.REWARD_SPAN:
        out["openinference.span.kind"] = "EVALUATOR"
        if semconv.REWARD_VALUE in a:
            out["output.value"] = str(a[semconv.REWARD_VALUE])
    elif span.parent_id is None:
        out["openinference.span.kind"] = "AGENT"
    else:
        out["openinference.span.kind"] = "CHAIN"
        for key, io in ((semconv.OPERATION_INPUT, "input"), (semconv.OPERATION_OUTPUT, "output")):
            if key in a:
                out[f"{io}.value"] = a[key] if isinstance(a[key], str) else json.dumps(a[key], default=str)
    return out


# --- specs and the store server's tap -------------------------------------------------------


OtlpSpec: TypeAlias = OtlpExporter | str | Mapping[str, Any] | bool | None
"""What ``otlp=`` accepts (see :func:`otlp_exporter`)."""


def otlp_exporter(spec: OtlpSpec) -> OtlpExporter | None:
    """The exporter an ``otlp=`` option names.

    ``None``/``False``: none; ``True``: one configured by the ``OTEL_EXPORTER_OTLP_*``
    environment variables; a URL string: that endpoint; a dict: :class:`OtlpExporter`'s
    keyword arguments; an :class:`OtlpExporter`: itself.
    """
    if spec is None or spec is False:
        return None
    if spec is True:
        return OtlpExporter()
    if isinstance(spec, OtlpExporter):
        return spec
    if isinstance(spec, str):
        return OtlpExporter(spec)
    if isinstance(spec, Mapping):
        try:
            return OtlpExporter(**spec)
        except TypeError as exc:
            raise TypeError(f"Bad otlp options {dict(spec)!r}: {exc}; see OtlpExporter's arguments") from None
    raise TypeError(
        f"otlp={spec!r} is not an OTLP export option; give an endpoint URL, a dict of OtlpExporter "
        "arguments, an OtlpExporter, True (OTEL_EXPORTER_OTLP_* variables) or None"
    )


class _ForwardingStore:
    """A store that hands every newly stored span to an exporter (the server serves it)."""

    def __init__(self, store: LightningStore, exporter: OtlpExporter) -> None:
        self._store = store
        self._exporter = exporter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def add_span(self, span: Span) -> Span | None:
        stored = await self._store.add_span(span)
        if stored is not None:
            self._exporter.submit((stored,))
        return stored

    async def add_many_spans(self, spans: Sequence[Span]) -> list[Span]:
        stored = await self._store.add_many_spans(spans)
        self._exporter.submit(stored)
        return stored

    async def add_otel_span(
        self, rollout_id: str, attempt_id: str, readable_span: Any, sequence_id: int | None = None
    ) -> Span | None:
        stored = await self._store.add_otel_span(rollout_id, attempt_id, readable_span, sequence_id)
        if stored is not None:
            self._exporter.submit((stored,))
        return stored


def forwarding_store(store: LightningStore, exporter: OtlpExporter) -> LightningStore:
    """``store`` as seen through a tap that forwards each newly stored span to ``exporter``
    (after the store accepted it: forwarding never delays or fails ingestion)."""
    return cast("LightningStore", _ForwardingStore(store, exporter))
