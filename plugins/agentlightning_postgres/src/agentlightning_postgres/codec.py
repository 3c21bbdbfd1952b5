"""Rows <-> core objects, and the compact stored form of spans.

A span row keeps what queries filter and sort on in columns (ids, name, times) and the rest
in ``body``: compact JSON holding only non-default parts (``a`` attributes, ``e`` events,
``l`` links, ``s`` status, ``k`` kind), deflated when it is longer than 128 bytes and that
saves space (PostgreSQL itself compresses only rows of about 2 KiB and more). The OTel
resource, identical for every span of a process, is stored once in ``span_resources``.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import orjson

from agentlightning_core import ResourcesUpdate, Span, SpanEvent, SpanLink, SpanStatus
from agentlightning_core.codec import to_json_value
from agentlightning_core.types import Attempt, Rollout, RolloutConfig, Worker

__all__ = [
    "ATTEMPT_COLUMNS",
    "DEFAULT_CONFIG_JSON",
    "ROLLOUT_COLUMNS",
    "SPAN_COLUMNS",
    "WORKER_COLUMNS",
    "attempt_from_row",
    "decode_body",
    "dumps",
    "encode_span_body",
    "loads",
    "resources_from_row",
    "rollout_from_row",
    "span_from_row",
    "worker_from_row",
]

_DEFAULT_STATUS = SpanStatus()
_COMPRESS_ABOVE = 128  # bytes of JSON; below this deflate rarely saves anything
_DEFLATED = 0x01  # first byte of a deflated body; a plain one starts with "{"
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    """Compact JSON of a JSON-compatible value (models and enums encoded first)."""
    return _encoder.encode(to_json_value(value))


def loads(data: str | bytes) -> Any:
    """Parse JSON (orjson; ``json`` for what only it reads, such as NaN)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


DEFAULT_CONFIG_JSON = dumps(RolloutConfig())
"""A default ``RolloutConfig`` as stored (the common case, written and read without parsing)."""

ROLLOUT_COLUMNS = "r.rid, r.rollout_id, r.status, r.input, r.start_time, r.end_time, r.mode, r.resources_id, r.config, r.metadata"


def rollout_from_row(row: tuple[Any, ...]) -> Rollout:
    return Rollout(
        rollout_id=row[1],
        input=loads(row[3]),
        start_time=row[4],
        end_time=row[5],
        mode=row[6],
        resources_id=row[7],
        status=row[2],
        config=RolloutConfig() if row[8] == DEFAULT_CONFIG_JSON else RolloutConfig.from_json(row[8]),
        metadata={} if row[9] == "{}" else loads(row[9]),
    )


ATTEMPT_COLUMNS = (
    "r.rollout_id, a.attempt_id, a.sequence_id, a.start_time, a.end_time, a.status, a.worker_id, "
    "a.last_heartbeat_time, a.metadata, a.aid, a.rid, a.resources_id, a.reward"
)


def attempt_from_row(row: tuple[Any, ...]) -> Attempt:
    return Attempt(
        rollout_id=row[0],
        attempt_id=row[1],
        sequence_id=row[2],
        start_time=row[3],
        end_time=row[4],
        status=row[5],
        worker_id=row[6],
        last_heartbeat_time=row[7],
        metadata={} if row[8] == "{}" else loads(row[8]),
        resources_id=row[11],
        reward=row[12],
    )


WORKER_COLUMNS = (
    "worker_id, status, heartbeat_stats, last_heartbeat_time, last_dequeue_time, last_busy_time, "
    "last_idle_time, current_rollout_id, current_attempt_id"
)


def worker_from_row(row: tuple[Any, ...]) -> Worker:
    return Worker(
        worker_id=row[0],
        status=row[1],
        heartbeat_stats=loads(row[2]) if row[2] is not None else None,
        last_heartbeat_time=row[3],
        last_dequeue_time=row[4],
        last_busy_time=row[5],
        last_idle_time=row[6],
        current_rollout_id=row[7],
        current_attempt_id=row[8],
    )


def resources_from_row(row: tuple[Any, ...]) -> ResourcesUpdate:
    """Row of ``resources_id, create_time, update_time, version, body``."""
    return ResourcesUpdate.from_dict(
        {
            "resources_id": row[0],
            "create_time": row[1],
            "update_time": row[2],
            "version": row[3],
            "resources": loads(row[4]),
        }
    )


def encode_span_body(span: Span) -> bytes:
    """The compact ``body`` of a span row (everything but columns and resource)."""
    body: dict[str, Any] = {}
    if span.attributes:
        body["a"] = span.attributes
    if span.events:
        body["e"] = [
            [e.name, e.timestamp, e.attributes] if e.attributes else [e.name, e.timestamp]
            for e in span.events
        ]
    if span.links:
        body["l"] = [
            [lk.trace_id, lk.span_id, lk.attributes] if lk.attributes else [lk.trace_id, lk.span_id]
            for lk in span.links
        ]
    status = span.status
    if status is not _DEFAULT_STATUS and (status.status_code != "UNSET" or status.description is not None):
        body["s"] = [status.status_code, status.description]
    if span.kind != "INTERNAL":
        body["k"] = span.kind
    try:
        data = orjson.dumps(body)
    except TypeError:  # beyond orjson (integers over 64 bits, lone surrogates)
        data = b"null"
    if b"null" in data:  # orjson writes NaN and infinities as null: let json keep them
        data = _encoder.encode(body).encode()
    if len(data) > _COMPRESS_ABOVE:
        deflate = zlib.compressobj(1, zlib.DEFLATED, -15)  # raw deflate, fastest level
        packed = deflate.compress(data) + deflate.flush()
        if len(packed) + 1 < len(data):
            return bytes((_DEFLATED,)) + packed
    return data


def decode_body(data: bytes) -> dict[str, Any]:
    """The body dict of a span row (see :func:`encode_span_body`)."""
    if data[0] == _DEFLATED:
        data = zlib.decompress(memoryview(data)[1:], -15)
    elif data[0] != 0x7B:
        raise ValueError(f"Unknown span body format byte {data[0]:#x}; it was written by a newer version")
    body: dict[str, Any] = loads(data)
    return body


SPAN_COLUMNS = (
    "r.rollout_id, a.attempt_id, s.sequence_id, s.trace_id, s.span_id, s.parent_id, s.name, "
    "s.start_time, s.end_time, s.resource_ref, s.body"
)


def span_from_row(row: tuple[Any, ...], resources: dict[int, dict[str, Any]]) -> Span:
    """A span from a :data:`SPAN_COLUMNS` row; ``resources`` maps resource refs to their dicts."""
    body = decode_body(row[10])
    events = body.get("e")
    links = body.get("l")
    status = body.get("s")
    ref = row[9]
    return Span(
        rollout_id=row[0],
        attempt_id=row[1],
        sequence_id=row[2],
        trace_id=row[3],
        span_id=row[4],
        parent_id=row[5],
        name=row[6],
        start_time=row[7],
        end_time=row[8],
        attributes=body.get("a", {}),
        events=tuple(SpanEvent(*e) for e in events) if events else (),
        links=tuple(SpanLink(*lk) for lk in links) if links else (),
        status=SpanStatus(status[0], status[1]) if status else _DEFAULT_STATUS,
        kind=body.get("k", "INTERNAL"),
        resource=dict(resources[ref]) if ref is not None else {},
    )
