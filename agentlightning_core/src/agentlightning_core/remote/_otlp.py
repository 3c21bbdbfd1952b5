"""OTLP/HTTP trace ingestion: ``ExportTraceServiceRequest`` protobuf -> stored spans.

Any OpenTelemetry SDK can export to ``POST /v1/traces`` of the store server. Each span names
its rollout and attempt with the attributes ``agentlightning.rollout_id`` and
``agentlightning.attempt_id`` (:mod:`~agentlightning_core.semconv`), set on the span or on its resource (the span's own value wins).
The store allocates sequence ids in the order spans arrive. Spans without both ids, or that
the store refuses (unknown rollout, invalid data), are counted in the answer's
``partial_success`` as OTLP prescribes; the others are stored.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import attrs

from agentlightning_core import semconv
from agentlightning_core.spans import Span, SpanEvent, SpanLink, SpanStatus

if TYPE_CHECKING:
    from agentlightning_core.store.base import LightningStore

__all__ = [
    "ATTEMPT_ID_ATTRIBUTE",
    "OTLP_CONTENT_TYPES",
    "ROLLOUT_ID_ATTRIBUTE",
    "IngestResult",
    "decode_export_request",
    "encode_export_response",
    "ingest_spans",
    "spans_from_request",
]

ROLLOUT_ID_ATTRIBUTE = semconv.ROLLOUT_ID
ATTEMPT_ID_ATTRIBUTE = semconv.ATTEMPT_ID
OTLP_CONTENT_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})

_NS = 1e-9
_KINDS = {0: "INTERNAL", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
_STATUS_CODES = {0: "UNSET", 1: "OK", 2: "ERROR"}
_UNSET_STATUS = SpanStatus()


@attrs.define
class IngestResult:
    """How many spans of an export request were stored, and why others were not."""

    accepted: int = 0
    rejected: int = 0
    reasons: list[str] = attrs.field(factory=list)

    def reject(self, count: int, reason: str) -> None:
        self.rejected += count
        if len(self.reasons) < 5 and reason not in self.reasons:
            self.reasons.append(reason)


def decode_export_request(body: bytes) -> Any:
    """Parse an ``ExportTraceServiceRequest``; ``ValueError`` if the bytes are not one."""
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    try:
        return ExportTraceServiceRequest.FromString(body)
    except (DecodeError, RecursionError) as exc:
        raise ValueError(f"Body is not an OTLP ExportTraceServiceRequest protobuf: {exc}") from None


def encode_export_response(result: IngestResult) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    response = ExportTraceServiceResponse()
    if result.rejected:
        response.partial_success.rejected_spans = result.rejected
        response.partial_success.error_message = "; ".join(result.reasons)
    return response.SerializeToString()  # type: ignore[no-any-return]


def _value(v: Any) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode("ascii")
    return getattr(v, which)


def _attributes(kvs: Iterable[Any]) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in kvs}


def _time(ns: int) -> float | None:
    return ns * _NS if ns else None


def _span(
    ps: Any, rollout_id: str, attempt_id: str, attributes: dict[str, Any], resource: dict[str, Any]
) -> Span:
    status = ps.status
    code = _STATUS_CODES.get(status.code, "UNSET")
    return Span(
        rollout_id=rollout_id,
        attempt_id=attempt_id,
        sequence_id=0,  # the store allocates
        trace_id=ps.trace_id.hex(),
        span_id=ps.span_id.hex(),
        parent_id=ps.parent_span_id.hex() or None,
        name=ps.name,
        start_time=_time(ps.start_time_unix_nano),
        end_time=_time(ps.end_time_unix_nano),
        attributes=attributes,
        events=tuple(
            SpanEvent(e.name, _time(e.time_unix_nano), _attributes(e.attributes)) for e in ps.events
        ),
        links=tuple(
            SpanLink(lk.trace_id.hex(), lk.span_id.hex(), _attributes(lk.attributes)) for lk in ps.links
        ),
        status=_UNSET_STATUS
        if code == "UNSET" and not status.message
        else SpanStatus(code, status.message or None),
        kind=_KINDS.get(ps.kind, "INTERNAL"),
        resource=resource,
    )


def spans_from_request(request: Any, result: IngestResult) -> list[Span]:
    """The spans of an export request that name a rollout and attempt; others are counted in ``result``."""
    spans: list[Span] = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for ps in scope_spans.spans:
                attributes = _attributes(ps.attributes)
                rollout_id = attributes.get(ROLLOUT_ID_ATTRIBUTE, resource.get(ROLLOUT_ID_ATTRIBUTE))
                attempt_id = attributes.get(ATTEMPT_ID_ATTRIBUTE, resource.get(ATTEMPT_ID_ATTRIBUTE))
                if (
                    not isinstance(rollout_id, str)
                    or not rollout_id
                    or not isinstance(attempt_id, str)
                    or not attempt_id
                ):
                    result.reject(
                        1,
                        f"span {ps.name!r} lacks the string attributes {ROLLOUT_ID_ATTRIBUTE!r} and "
                        f"{ATTEMPT_ID_ATTRIBUTE!r} (on the span or its resource)",
                    )
                    continue
                try:
                    spans.append(_span(ps, rollout_id, attempt_id, attributes, resource))
                except (ValueError, TypeError) as exc:
                    result.reject(1, f"span {ps.name!r}: {exc}")
    return spans


async def ingest_spans(store: LightningStore, spans: list[Span], result: IngestResult) -> None:
    """Store ``spans`` one rollout at a time, so a refused rollout does not sink the others.

    Refusals the sender cannot fix by retrying (unknown ids, invalid values) are counted in
    ``result``; other errors propagate (the server answers 5xx and the exporter retries).
    """
    groups: dict[str, list[Span]] = {}
    for span in spans:
        groups.setdefault(span.rollout_id, []).append(span)
    for rollout_id, group in groups.items():
        try:
            await store.add_many_spans(group)
        except (LookupError, ValueError, TypeError) as exc:
            result.reject(len(group), f"rollout {rollout_id!r}: {exc}")
        else:
            result.accepted += len(group)
