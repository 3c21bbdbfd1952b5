"""Rows <-> core objects, and the compact on-disk form of spans.

A span row keeps what queries filter and sort on in columns (ids, name, times) and the
rest in ``body``: compact JSON holding only non-default parts (``a`` attributes, ``e``
events, ``l`` links, ``s`` status, ``k`` kind), LZ4-compressed with a preset dictionary of the
attribute keys and message structure our tracer and emitters write when that pays (the
~760-byte body of a chat call recorded from the ``openai`` client becomes ~190 bytes).
The OTel resource, identical for every span of a process, is stored once in
``span_resources``. Hex trace and span ids are stored as their bytes (half the size).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import lz4.block
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
    "pack_id",
    "resources_from_row",
    "rollout_from_row",
    "span_from_row",
    "unpack_id",
    "worker_from_row",
]

_COMPRESS_ABOVE = 48  # bytes of JSON; below this compression rarely saves anything
_WBITS = -11  # raw deflate (no header), 2 KiB window: enough for the dictionary and small bodies

# Body format byte: "{" (0x7b) plain JSON; 0x01 raw deflate with preset dictionary 1; 0x02
# LZ4 block with dictionary 1; 0x03 LZ4 block with dictionary 2 (written now; 0x01 and 0x02
# were written by earlier versions and are only read). LZ4 blocks carry the JSON length as a
# LEB128 varint before the block. Never change a released dictionary: add another with a new
# format byte.
_DEFLATE_DICT_1 = 0x01
_LZ4_DICT_1 = 0x02
_LZ4_DICT_2 = 0x03
_DICT_1 = (
    b'"k":"CLIENT""k":"SERVER""s":["ERROR",null]"l":[["e":[["exception",{"exception.type":'
    b'"exception.message":"exception.stacktrace":"Traceback (most recent call last):\n  File '
    b'"http.method":"POST","http.url":"http://127.0.0.1:","http.status_code":200'
    b'"agentlightning.operation.input":"agentlightning.operation.output":'
    b'"agentlightning.reward.0.value":"agentlightning.reward"'
    b'"gen_ai.prompt.0.role":"system","gen_ai.prompt.0.content":"gen_ai.prompt.1.role":"user",'
    b'"gen_ai.prompt.1.content":"gen_ai.completion.0.role":"assistant","gen_ai.completion.0.content":'
    b'"gen_ai.completion.0.finish_reason":"stop","gen_ai.response.id":"chatcmpl-'
    b'"gen_ai.response.model":"gpt-4o-mini","gen_ai.request.temperature":'
    b'"gen_ai.usage.total_tokens":"gen_ai.usage.completion_tokens":"gen_ai.usage.prompt_tokens":'
    b'"llm.request.type":"chat","gen_ai.system":"openai","gen_ai.request.model":"gpt-4o-mini"'
    b'{"a":{"gen_ai.'
)
# Dictionary 2: bodies as the tracer and the emitters write them (semconv keys, in the order
# they are set, and the JSON of GenAI messages inside attribute strings), with the values
# left empty; the common chat call last. Tests check it holds every key of a span captured
# from the real ``openai`` client.
_DICT_2 = (
    b'"e":[["exception",'
    b'{"a":{"exception.type":"","exception.message":"","exception.stacktrace":'
    b'"Traceback (most recent call last):\\n  File \\""},"s":["ERROR",null]}'
    b'{"a":{"agentlightning.annotation.":""}}'
    b'{"a":{"agentlightning.operation.name":"","agentlightning.operation.input'
    b'":"","agentlightning.operation.output":""}}'
    b'{"a":{"agentlightning.object.json":"","agentlightning.object.type":"dict'
    b'"}}'
    b'{"a":{"agentlightning.message.body":""}}'
    b'{"a":{"agentlightning.reward.primary_key":"","agentlightning.reward.valu'
    b'e":0.0}}'
    b'"gen_ai.agent.name":"'
    b'"gen_ai.tool.definitions":"[{\\"type\\": \\"function\\", \\"function\\": {\\"na'
    b'me\\": \\"\\", \\"description\\": \\"\\", \\"parameters\\": {\\"type\\": \\"object\\"'
    b', \\"properties\\": {}}}}]"'
    b'[{\\"role\\": \\"tool\\", \\"parts\\": [{\\"type\\": \\"tool_call_response\\", \\"i'
    b'd\\": \\"call_\\", \\"response\\": \\"\\"}]}]'
    b'[{\\"role\\": \\"assistant\\", \\"parts\\": [{\\"type\\": \\"tool_call\\", \\"id\\":'
    b' \\"call_\\", \\"name\\": \\"\\", \\"arguments\\": \\"{\\\\\\"\\"}], \\"finish_reason\\'
    b'": \\"tool_calls\\"}]'
    b'"agentlightning.llm.prompt_token_ids":['
    b'],"agentlightning.llm.response_token_ids":['
    b',"gen_ai.request.top_p":'
    b',"gen_ai.request.max_tokens":'
    b'{"a":{"gen_ai.operation.name":"chat","gen_ai.provider.name":"openai","ag'
    b'entlightning.llm.stream":false,"gen_ai.request.model":"","gen_ai.request'
    b'.temperature":0.0,"gen_ai.input.messages":"[{\\"role\\": \\"system\\", \\"par'
    b'ts\\": [{\\"type\\": \\"text\\", \\"content\\": \\"\\"}]}, {\\"role\\": \\"user\\", \\'
    b'"parts\\": [{\\"type\\": \\"text\\", \\"content\\": \\"\\"}]}]","gen_ai.output.me'
    b'ssages":"[{\\"role\\": \\"assistant\\", \\"parts\\": [{\\"type\\": \\"text\\", \\"c'
    b'ontent\\": \\"\\"}], \\"finish_reason\\": \\"stop\\"}]","gen_ai.response.id":"c'
    b'hatcmpl-","gen_ai.response.model":"","gen_ai.response.finish_reasons":["'
    b'stop"],"gen_ai.usage.input_tokens":0,"gen_ai.usage.output_tokens":0},"k"'
    b':"CLIENT"}'
)
_DEFAULT_STATUS = SpanStatus()
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def dumps(value: Any) -> str:
    """Compact JSON of a JSON-compatible value (models and enums encoded first)."""
    return _encoder.encode(to_json_value(value))


def loads(data: str | bytes) -> Any:
    """Parse JSON text (orjson; ``json`` for what only it reads, such as NaN)."""
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
        metadata=loads(row[8]),
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
    size = len(data)
    if size > _COMPRESS_ABOVE:
        # LZ4: ~1.3 us for an LLM-call body; deflate took ~3.8 us for 16 bytes less.
        packed: bytes = lz4.block.compress(data, store_size=False, dict=_DICT_2)
        header = _LZ4_HEADERS[size] if size < len(_LZ4_HEADERS) else _lz4_header(size)
        if len(packed) + len(header) < size:
            return header + packed
    return data


def _lz4_header(size: int) -> bytes:
    out = bytearray((_LZ4_DICT_2,))
    while size >= 0x80:
        out.append(size & 0x7F | 0x80)
        size >>= 7
    out.append(size)
    return bytes(out)


_LZ4_HEADERS = [_lz4_header(n) for n in range(2048)]  # the headers of common body sizes


def _lz4_unpack(data: bytes, dictionary: bytes) -> bytes:
    size = shift = 0
    pos = 1
    while True:
        byte = data[pos]
        size |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            break
        shift += 7
    out: bytes = lz4.block.decompress(memoryview(data)[pos:], uncompressed_size=size, dict=dictionary)
    return out


def decode_body(data: bytes) -> dict[str, Any]:
    """The body dict of a span row (see :func:`encode_span_body`)."""
    fmt = data[0]
    if fmt == _LZ4_DICT_2:
        data = _lz4_unpack(data, _DICT_2)
    elif fmt == _LZ4_DICT_1:
        data = _lz4_unpack(data, _DICT_1)
    elif fmt == _DEFLATE_DICT_1:
        inflate = zlib.decompressobj(_WBITS, zdict=_DICT_1)
        data = inflate.decompress(memoryview(data)[1:]) + inflate.flush()
    elif fmt != 0x7B:
        raise ValueError(f"Unknown span body format byte {fmt:#x}; the file was written by a newer version")
    body: dict[str, Any] = loads(data)
    return body


def pack_id(value: str | None) -> str | bytes | None:
    """A trace/span id as stored: lowercase hex as its bytes, anything else as given."""
    if value is None or len(value) not in (16, 32):
        return value
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return value
    return raw if raw.hex() == value else value


def unpack_id(value: str | bytes) -> str:
    """The id as given to :func:`pack_id`."""
    return value.hex() if isinstance(value, bytes) else value


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
        trace_id=unpack_id(row[3]),
        span_id=unpack_id(row[4]),
        parent_id=None if row[5] is None else unpack_id(row[5]),
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
