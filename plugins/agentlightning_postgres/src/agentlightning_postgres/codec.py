"""The compact stored form of span bodies: LZ4 with a preset dictionary.

A span row keeps what queries filter and sort on in columns and the rest in ``body``
(:func:`agentlightning_core.store.sql.span_body_json`: compact JSON of the non-default
parts), LZ4-compressed with a preset dictionary of the keys and message structure our tracer
writes when that saves space (PostgreSQL itself compresses only rows of about 2 KiB and more):
the ~760-byte body of a chat call becomes ~200 bytes in a few microseconds (deflate, used
before, took ~10x as long for a larger result). The OTel resource, identical for every span
of a process, is stored once in ``span_resources``. Rows <-> objects and the JSON of other
fields are shared with the other SQL stores in :mod:`agentlightning_core.store.sql`.
"""

from __future__ import annotations

import zlib
from typing import Any

import lz4.block

from agentlightning_core import Span
from agentlightning_core.store.sql import loads, span_body_json

__all__ = ["decode_body", "encode_span_body"]

_COMPRESS_ABOVE = 48  # bytes of JSON; below this compression rarely saves anything

# Body format byte: "{" (0x7b) plain JSON; 0x01 raw deflate (written by version 0.1.0, only
# read now); 0x02 an LZ4 block (with its length in 4 bytes) and the dictionary below. Never
# change a released dictionary: add another with a new format byte.
_DEFLATED = 0x01
_LZ4 = 0x02
_LZ4_PREFIX = bytes((_LZ4,))
# Bodies as the tracer and the emitters write them (semconv keys in the order they are set,
# the JSON of GenAI messages inside attribute strings), values left empty, the common chat
# call last: the bytes of the SQLite store's dictionary 2.
_DICT = (
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


def encode_span_body(span: Span) -> bytes:
    """The compact ``body`` of a span row (everything but columns and resource)."""
    data = span_body_json(span)
    if len(data) > _COMPRESS_ABOVE:
        packed: bytes = lz4.block.compress(data, dict=_DICT)
        if len(packed) + 1 < len(data):
            return _LZ4_PREFIX + packed
    return data


def decode_body(data: bytes) -> dict[str, Any]:
    """The body dict of a span row (see :func:`encode_span_body`)."""
    fmt = data[0]
    if fmt == _LZ4:
        data = lz4.block.decompress(memoryview(data)[1:], dict=_DICT)
    elif fmt == _DEFLATED:
        data = zlib.decompress(memoryview(data)[1:], -15)
    elif fmt != 0x7B:
        raise ValueError(f"Unknown span body format byte {fmt:#x}; it was written by a newer version")
    body: dict[str, Any] = loads(data)
    return body
