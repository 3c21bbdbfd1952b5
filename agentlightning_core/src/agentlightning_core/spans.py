"""The stored form of an OpenTelemetry span, tied to a rollout and attempt."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from agentlightning_core.codec import JsonModel

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["Span", "SpanEvent", "SpanLink", "SpanStatus", "format_span_id", "format_trace_id"]

_NS = 1e-9


def format_trace_id(trace_id: int) -> str:
    return f"{trace_id:032x}"


def format_span_id(span_id: int) -> str:
    return f"{span_id:016x}"


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    if not attributes:
        return {}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in attributes.items()}


@attrs.define(slots=True, frozen=True)
class SpanStatus(JsonModel):
    status_code: str = "UNSET"
    description: str | None = None


_UNSET_STATUS = SpanStatus()


@attrs.define(slots=True)
class SpanEvent(JsonModel):
    name: str
    timestamp: float | None = None
    attributes: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(slots=True)
class SpanLink(JsonModel):
    trace_id: str
    span_id: str
    attributes: dict[str, Any] = attrs.field(factory=dict)


def _ids(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"Span.{attribute.name} must be a non-empty string, got {value!r}")


def _seq(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"Span.sequence_id must be an integer >= 0, got {value!r}")


@attrs.define(slots=True)
class Span(JsonModel):
    """A finished span. Times are seconds since the epoch; ids are lowercase hex."""

    rollout_id: str = attrs.field(validator=_ids)
    attempt_id: str = attrs.field(validator=_ids)
    sequence_id: int = attrs.field(validator=_seq)
    trace_id: str = attrs.field(validator=_ids)
    span_id: str = attrs.field(validator=_ids)
    parent_id: str | None
    name: str
    start_time: float | None = None
    end_time: float | None = None
    attributes: dict[str, Any] = attrs.field(factory=dict)
    events: tuple[SpanEvent, ...] = ()
    links: tuple[SpanLink, ...] = ()
    status: SpanStatus = _UNSET_STATUS
    kind: str = "INTERNAL"
    resource: dict[str, Any] = attrs.field(factory=dict)

    @property
    def duration(self) -> float | None:
        if self.start_time is None or self.end_time is None:
            return None
        return self.end_time - self.start_time

    @classmethod
    def from_opentelemetry(
        cls, src: ReadableSpan, *, rollout_id: str, attempt_id: str, sequence_id: int
    ) -> Span:
        """Convert an OpenTelemetry SDK span into a stored span."""
        ctx = src.context
        if ctx is None:
            raise ValueError(f"OpenTelemetry span {src.name!r} has no context; it cannot be stored")
        parent = src.parent
        status = src.status
        status_out = (
            _UNSET_STATUS
            if status.status_code.name == "UNSET" and not status.description
            else SpanStatus(status.status_code.name, status.description)
        )
        return cls(
            rollout_id=sys.intern(rollout_id),
            attempt_id=sys.intern(attempt_id),
            sequence_id=sequence_id,
            trace_id=format_trace_id(ctx.trace_id),
            span_id=format_span_id(ctx.span_id),
            parent_id=format_span_id(parent.span_id) if parent is not None else None,
            name=src.name,
            start_time=src.start_time * _NS if src.start_time is not None else None,
            end_time=src.end_time * _NS if src.end_time is not None else None,
            attributes=_attributes(src.attributes),
            events=_events(src.events),
            links=_links(src.links),
            status=status_out,
            kind=src.kind.name,
            resource=_attributes(src.resource.attributes) if src.resource is not None else {},
        )


def _events(events: Sequence[Any]) -> tuple[SpanEvent, ...]:
    if not events:
        return ()
    return tuple(SpanEvent(e.name, e.timestamp * _NS, _attributes(e.attributes)) for e in events)


def _links(links: Sequence[Any]) -> tuple[SpanLink, ...]:
    if not links:
        return ()
    return tuple(
        SpanLink(
            format_trace_id(lk.context.trace_id),
            format_span_id(lk.context.span_id),
            _attributes(lk.attributes),
        )
        for lk in links
    )
