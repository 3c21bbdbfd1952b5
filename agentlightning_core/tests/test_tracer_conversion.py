"""Conversion of OpenTelemetry SDK spans into stored spans (the export path of the tracer)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs
import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentlightning_core.spans import Span, SpanStatus, capture_opentelemetry, spans_from_captures


@pytest.fixture
def finished() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "conv", "tags": ("a", "b")}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def _sample(provider: TracerProvider, exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    tracer = provider.get_tracer("conv")
    with (
        tracer.start_as_current_span("parent") as parent,
        tracer.start_as_current_span("child", attributes={"n": 1, "ids": (1, 2)}) as child,
    ):
        child.add_event("tick", {"k": "v"})
        child.add_link(parent.get_span_context(), {"why": "test"})
        child.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, "bad"))
    return list(exporter.get_finished_spans())


def _reference(src: ReadableSpan, sequence_id: int) -> Span:
    """The same span built through the validating constructor, field by field."""
    ctx, parent = src.context, src.parent
    assert ctx is not None and src.start_time is not None and src.end_time is not None
    converted = Span.from_opentelemetry(src, rollout_id="ro", attempt_id="at", sequence_id=sequence_id)
    return Span(
        rollout_id="ro",
        attempt_id="at",
        sequence_id=sequence_id,
        trace_id=f"{ctx.trace_id:032x}",
        span_id=f"{ctx.span_id:016x}",
        parent_id=f"{parent.span_id:016x}" if parent else None,
        name=src.name,
        start_time=src.start_time * 1e-9,
        end_time=src.end_time * 1e-9,
        attributes={k: list(v) if isinstance(v, tuple) else v for k, v in (src.attributes or {}).items()},
        events=converted.events,
        links=converted.links,
        status=SpanStatus(src.status.status_code.name, src.status.description)
        if src.status.description or src.status.status_code.name != "UNSET"
        else SpanStatus(),
        kind=src.kind.name,
        resource={k: list(v) if isinstance(v, tuple) else v for k, v in src.resource.attributes.items()},
    )


def test_converted_spans_set_every_field_like_the_constructor(
    finished: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    child, parent = _sample(*finished)
    for src, seq in ((child, 4), (parent, 0)):
        span = Span.from_opentelemetry(src, rollout_id="ro", attempt_id="at", sequence_id=seq)
        expected = _reference(src, seq)
        for field in attrs.fields(Span):  # an unset slot raises AttributeError here
            assert getattr(span, field.name) == getattr(expected, field.name), field.name
        assert Span.from_json(span.to_json()) == span
    converted = Span.from_opentelemetry(child, rollout_id="ro", attempt_id="at", sequence_id=1)
    assert converted.events[0].name == "tick" and converted.events[0].attributes == {"k": "v"}
    assert converted.links[0].span_id == f"{parent.context.span_id:016x}"
    assert converted.links[0].attributes == {"why": "test"}
    assert converted.status == SpanStatus("ERROR", "bad")
    assert converted.resource["tags"] == ["a", "b"]


def test_conversion_still_validates_the_ids_it_is_given(
    finished: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    src = _sample(*finished)[0]
    with pytest.raises(ValueError, match="rollout_id must be a non-empty string, got ''"):
        Span.from_opentelemetry(src, rollout_id="", attempt_id="at", sequence_id=0)
    with pytest.raises(ValueError, match="sequence_id must be an integer >= 0, got -1"):
        Span.from_opentelemetry(src, rollout_id="ro", attempt_id="at", sequence_id=-1)
    with pytest.raises(ValueError, match="attempt_id must be a non-empty string, got None"):
        spans_from_captures([capture_opentelemetry(src)], rollout_id="ro", attempt_id=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="trace_id must be a non-empty string"):
        Span(
            rollout_id="ro",
            attempt_id="at",
            sequence_id=0,
            trace_id="",
            span_id="s",
            parent_id=None,
            name="x",
        )


def test_batches_number_spans_in_order_or_leave_it_to_the_store(
    finished: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    captures = [capture_opentelemetry(s) for s in _sample(*finished)]
    numbered = spans_from_captures(captures, rollout_id="ro", attempt_id="at", first_sequence_id=7)
    assert [s.sequence_id for s in numbered] == [7, 8]
    unnumbered = spans_from_captures(captures, rollout_id="ro", attempt_id="at")
    assert [s.sequence_id for s in unnumbered] == [0, 0]
    assert [s.name for s in unnumbered] == ["child", "parent"]


def test_spans_own_their_dicts_although_the_resource_dict_is_cached(
    finished: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    child, _ = _sample(*finished)
    first = Span.from_opentelemetry(child, rollout_id="ro", attempt_id="at", sequence_id=0)
    first.resource["service.name"] = "changed"
    first.attributes["n"] = 2
    again = Span.from_opentelemetry(child, rollout_id="ro", attempt_id="at", sequence_id=0)
    assert again.resource["service.name"] == "conv" and again.attributes["n"] == 1
    # another provider's resource is not confused with the cached one
    other = TracerProvider(resource=Resource.create({"service.name": "other"}))
    exporter = InMemorySpanExporter()
    other.add_span_processor(SimpleSpanProcessor(exporter))
    with other.get_tracer("o").start_as_current_span("x"):
        pass
    (src,) = exporter.get_finished_spans()
    assert (
        Span.from_opentelemetry(src, rollout_id="ro", attempt_id="at", sequence_id=0).resource["service.name"]
        == "other"
    )
    other.shutdown()


class _PlainSpan:
    """A ReadableSpan-shaped object that is not the SDK's (no private fields)."""

    __slots__ = ("context", "name", "parent")

    def __init__(self, context: Any, name: str) -> None:
        self.context, self.name, self.parent = context, name, None

    start_time = 1_000_000_000
    end_time = 3_000_000_000
    attributes = {"k": (1, 2)}
    events = ()
    links = ()
    status = otel_trace.Status(otel_trace.StatusCode.OK)
    kind = otel_trace.SpanKind.CLIENT
    resource = Resource.create({"service.name": "plain"})


def test_objects_other_than_the_sdks_spans_are_read_through_the_public_properties() -> None:
    ctx = otel_trace.SpanContext(trace_id=0xABC, span_id=0xDEF, is_remote=False)
    span = Span.from_opentelemetry(
        _PlainSpan(ctx, "plain"),  # type: ignore[arg-type]
        rollout_id="ro",
        attempt_id="at",
        sequence_id=2,
    )
    assert (span.trace_id, span.span_id, span.parent_id) == (f"{0xABC:032x}", f"{0xDEF:016x}", None)
    assert (span.start_time, span.end_time, span.duration) == (1.0, 3.0, 2.0)
    assert span.attributes == {"k": [1, 2]} and span.kind == "CLIENT" and span.status == SpanStatus("OK")
    with pytest.raises(ValueError, match="span 'nowhere' has no context"):
        capture_opentelemetry(_PlainSpan(None, "nowhere"))  # type: ignore[arg-type]
