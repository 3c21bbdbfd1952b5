"""The stored form of an OpenTelemetry span, tied to a rollout and attempt."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from agentlightning_core._records import builder, copier
from agentlightning_core.codec import JsonModel, register_encoder, to_json_value

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "OtelCapture",
    "Span",
    "SpanEvent",
    "SpanLink",
    "SpanStatus",
    "capture_opentelemetry",
    "format_span_id",
    "format_trace_id",
    "quick_span",
    "span_from_checked",
    "spans_from_captures",
]

_NS = 1e-9


def format_trace_id(trace_id: int) -> str:
    return f"{trace_id:032x}"


def format_span_id(span_id: int) -> str:
    return f"{span_id:016x}"


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """A new plain dict of OpenTelemetry attributes (sequences, tuples in the SDK, as lists)."""
    if not attributes:
        return {}
    # The SDK's BoundedAttributes keeps a plain dict; reading it skips the slow Mapping protocol.
    plain = getattr(attributes, "_dict", None)
    out = plain.copy() if type(plain) is dict else dict(attributes)
    for key, value in out.items():
        if type(value) is tuple:
            out[key] = list(value)  # replacing a value while iterating is allowed (same keys)
    return out


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

    def with_sequence_id(self, sequence_id: int) -> Span:
        """This span under ``sequence_id`` (the store's numbering), other fields shared.

        For store backends: a copy without re-running the other fields' validators.
        """
        if type(sequence_id) is not int or sequence_id < 0:
            _seq(self, _SEQUENCE_ID, sequence_id)
        return _with_sequence_id(self, sequence_id)  # type: ignore[no-any-return]

    @classmethod
    def from_opentelemetry(
        cls, src: ReadableSpan, *, rollout_id: str, attempt_id: str, sequence_id: int
    ) -> Span:
        """Convert an OpenTelemetry SDK span into a stored span."""
        _seq(None, _SEQUENCE_ID, sequence_id)
        return spans_from_captures(
            [capture_opentelemetry(src)],
            rollout_id=rollout_id,
            attempt_id=attempt_id,
            first_sequence_id=sequence_id or None,
        )[0]


#: What :func:`capture_opentelemetry` keeps of a finished SDK span: trace id, span id,
#: parent span id, name, start and end (ns), attributes, events, links, status, kind, resource.
OtelCapture = tuple[
    int, int, int | None, str, int | None, int | None, Mapping[str, Any], Any, Any, Any, Any, Any
]


def capture_opentelemetry(src: ReadableSpan) -> OtelCapture:
    """The fields of a finished SDK span that a :class:`Span` needs, taken without copies.

    Cheap enough for ``SpanProcessor.on_end``: the SDK's per-span objects (locks, bounded
    containers) can be freed at once, and formatting is left to :func:`spans_from_captures`.
    Raises ``ValueError`` for a span without a context.
    """
    try:
        # The SDK's ReadableSpan fields, read directly: its properties copy events and links
        # and wrap the attributes (about 0.5 us per span). Other implementations: below.
        fields = src.__dict__
        ctx, parent, attributes = fields["_context"], fields["_parent"], fields["_attributes"]
        name, start, end = fields["_name"], fields["_start_time"], fields["_end_time"]
        events, links = fields["_events"], fields["_links"]
        status, kind, resource = fields["_status"], fields["_kind"], fields["_resource"]
    except (AttributeError, KeyError):
        ctx, parent, attributes = src.context, src.parent, src.attributes
        name, start, end = src.name, src.start_time, src.end_time
        events, links = src.events, src.links
        status, kind, resource = src.status, src.kind, src.resource
    if ctx is None:
        raise ValueError(f"OpenTelemetry span {name!r} has no context; it cannot be stored")
    # The SDK's BoundedAttributes keeps a plain dict, frozen once the span has ended.
    plain = getattr(attributes, "_dict", None)
    return (
        ctx.trace_id,
        ctx.span_id,
        parent.span_id if parent is not None else None,
        name,
        start,
        end,
        (plain or _EMPTY) if type(plain) is dict else (attributes or _EMPTY),
        tuple(events) if events else (),
        tuple(links) if links else (),
        status,
        kind,
        resource,
    )


def spans_from_captures(
    captures: Iterable[OtelCapture],
    *,
    rollout_id: str,
    attempt_id: str,
    first_sequence_id: int | None = None,
) -> list[Span]:
    """Build stored spans from :func:`capture_opentelemetry` results (a batch at a time).

    Sequence ids count up from ``first_sequence_id``; ``None`` gives every span 0 (the
    store allocates). The ids are validated once per batch; the fields taken from the SDK
    spans are well-formed by construction, so the spans skip the constructor's validators.
    """
    _ids(None, _ROLLOUT_ID, rollout_id)
    _ids(None, _ATTEMPT_ID, attempt_id)
    if first_sequence_id is not None:
        _seq(None, _SEQUENCE_ID, first_sequence_id)
    rollout_id, attempt_id = sys.intern(rollout_id), sys.intern(attempt_id)
    sequence_id = first_sequence_id or 0
    step = 1 if first_sequence_id is not None else 0
    out: list[Span] = []
    # A batch is mostly one trace of one resource: format / build those once.
    last_trace_id, trace_hex = None, ""
    last_resource: Any = _MISSING
    resource_attributes: dict[str, Any] = {}
    for (
        trace_id,
        span_id,
        parent_id,
        name,
        start,
        end,
        attributes,
        events,
        links,
        status,
        kind,
        resource,
    ) in captures:
        if trace_id != last_trace_id:
            last_trace_id, trace_hex = trace_id, f"{trace_id:032x}"
        if resource is not last_resource:
            last_resource, resource_attributes = resource, _resource_attributes(resource)
        code = status.status_code._name_  # ``_name_``: ``.name`` is a slower descriptor
        out.append(
            _build_span(
                rollout_id,
                attempt_id,
                sequence_id,
                trace_hex,
                f"{span_id:016x}",
                f"{parent_id:016x}" if parent_id is not None else None,
                name,
                start * _NS if start is not None else None,
                end * _NS if end is not None else None,
                _attributes(attributes) if attributes else {},
                _events(events) if events else (),
                _links(links) if links else (),
                _UNSET_STATUS
                if code == "UNSET" and not status.description
                else SpanStatus(code, status.description),
                kind._name_,
                # each span owns its dict (a list value, rare in resources, is shared)
                resource_attributes.copy(),
            )
        )
        sequence_id += step
    return out


_EMPTY: Mapping[str, Any] = {}
_ROLLOUT_ID = attrs.fields(Span).rollout_id
_ATTEMPT_ID = attrs.fields(Span).attempt_id
_SEQUENCE_ID = attrs.fields(Span).sequence_id
_build_span = builder(Span)
_with_sequence_id = copier(Span, ("sequence_id",))


_MISSING = object()

# Resource attribute dicts by resource object: all spans of a tracer share one Resource
# (immutable), so its dict is built once; each span gets a copy (spans_from_captures).
_resource_cache: dict[int, tuple[Any, dict[str, Any]]] = {}
_RESOURCE_CACHE_SIZE = 64


def _resource_attributes(resource: Any) -> dict[str, Any]:
    if resource is None:
        return {}
    hit = _resource_cache.get(id(resource))
    if hit is None or hit[0] is not resource:
        if len(_resource_cache) >= _RESOURCE_CACHE_SIZE:
            _resource_cache.clear()
        hit = (resource, _attributes(resource.attributes))
        _resource_cache[id(resource)] = hit
    return hit[1]


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


# --- JSON encoding ---------------------------------------------------------------------
# Hand-written equivalents of the codec's generic encoders for the span types (about 4x
# faster on the span writes a client sends in bulk); a test keeps them equal to the generic ones.

_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})
_NONE: tuple[Any, ...] = ()  # the empty tuple (one object in CPython; others take the general path)


def _json_dict(value: Any) -> Any:
    """``to_json_value`` of an attribute dict: a shallow copy when every value is a JSON scalar."""
    if type(value) is not dict:
        return to_json_value(value)
    for v in value.values():
        if type(v) not in _JSON_SCALARS:
            return to_json_value(value)
    return value.copy()


def _encode_status(status: SpanStatus) -> dict[str, Any]:
    return {"status_code": status.status_code, "description": status.description}


def _encode_event(event: SpanEvent) -> dict[str, Any]:
    return {"name": event.name, "timestamp": event.timestamp, "attributes": _json_dict(event.attributes)}


def _encode_link(link: SpanLink) -> dict[str, Any]:
    return {"trace_id": link.trace_id, "span_id": link.span_id, "attributes": _json_dict(link.attributes)}


def _encode_span(span: Span) -> dict[str, Any]:
    status, events, links = span.status, span.events, span.links
    return {
        "rollout_id": span.rollout_id,
        "attempt_id": span.attempt_id,
        "sequence_id": span.sequence_id,
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "parent_id": span.parent_id,
        "name": span.name,
        "start_time": span.start_time,
        "end_time": span.end_time,
        "attributes": _json_dict(span.attributes),
        "events": [] if events is _NONE else to_json_value(events),
        "links": [] if links is _NONE else to_json_value(links),
        "status": {"status_code": "UNSET", "description": None}
        if status is _UNSET_STATUS
        else to_json_value(status),
        "kind": span.kind,
        "resource": _json_dict(span.resource),
    }


register_encoder(SpanStatus, _encode_status)
register_encoder(SpanEvent, _encode_event)
register_encoder(SpanLink, _encode_link)
register_encoder(Span, _encode_span)


# --- JSON decoding ---------------------------------------------------------------------
# The server's decoders of request bodies: the counterparts of the encoders above.


def span_from_checked(data: dict[str, Any]) -> Span:
    """``Span.from_dict`` for data a JSON schema of ``Span`` has already checked, about 3x faster.

    The schema guarantees known fields of the right JSON types, so only the nested models
    need building; attrs validators still run. Kept equal to ``Span.from_dict`` by a test.
    """
    span = quick_span(data)  # the common shape
    if span is not None:
        return span
    kwargs = dict(data)
    events = kwargs.get("events")
    if events:
        kwargs["events"] = tuple([SpanEvent(**e) for e in events])
    elif events is not None:
        kwargs["events"] = ()
    links = kwargs.get("links")
    if links:
        kwargs["links"] = tuple([SpanLink(**link) for link in links])
    elif links is not None:
        kwargs["links"] = ()
    status = kwargs.get("status")
    if status is not None:
        # SpanStatus is frozen, so spans may share the default one (as Span's default does)
        kwargs["status"] = _UNSET_STATUS if status == _PLAIN_STATUS else SpanStatus(**status)
    return Span(**kwargs)


_SPAN_FIELDS = frozenset(f.name for f in attrs.fields(Span))
_NUMBER = (int, float)
_EMPTY_LIST: list[Any] = []
_PLAIN_STATUS = {"status_code": "UNSET", "description": None}


def quick_span(d: Any) -> Span | None:
    """The span ``d`` (decoded JSON) describes when it certainly matches the ``Span`` schema
    and passes Span's validators, in the shape clients send; else None ("not sure").

    Strictly narrower than the schema (events, links and non-default statuses answer None,
    so the full check handles them). Checks and builds in one pass, without the constructor,
    from the data's own values (the caller hands them over): about 6x cheaper than a
    compiled schema check followed by ``Span.from_dict``.
    """
    if type(d) is not dict or not d.keys() <= _SPAN_FIELDS:
        return None
    try:
        rollout_id, attempt_id, sequence_id = d["rollout_id"], d["attempt_id"], d["sequence_id"]
        trace_id, span_id, parent_id, name = d["trace_id"], d["span_id"], d["parent_id"], d["name"]
    except KeyError:
        return None
    get = d.get
    start_time, end_time, kind = get("start_time"), get("end_time"), get("kind", "INTERNAL")
    attributes, resource = get("attributes", {}), get("resource", {})
    if (
        type(rollout_id) is not str
        or type(attempt_id) is not str
        or type(trace_id) is not str
        or type(span_id) is not str
        or not (rollout_id and attempt_id and trace_id and span_id)
        or type(sequence_id) is not int
        or sequence_id < 0
        or type(name) is not str
        or (parent_id is not None and type(parent_id) is not str)
        or type(attributes) is not dict
        or type(resource) is not dict
        or type(kind) is not str
        or get("events", _EMPTY_LIST) != _EMPTY_LIST
        or get("links", _EMPTY_LIST) != _EMPTY_LIST
        or ("status" in d and d["status"] != _PLAIN_STATUS)
        or (start_time is not None and (type(start_time) not in _NUMBER or not math.isfinite(start_time)))
        or (end_time is not None and (type(end_time) not in _NUMBER or not math.isfinite(end_time)))
    ):
        return None
    return _build_span(
        rollout_id,
        attempt_id,
        sequence_id,
        trace_id,
        span_id,
        parent_id,
        name,
        start_time,
        end_time,
        attributes,
        (),
        (),
        _UNSET_STATUS,
        kind,
        resource,
    )
