"""The compact on-disk form of span bodies: LZ4 with a preset dictionary.

A span row keeps what queries filter and sort on in columns and the rest in ``body``
(:func:`agentlightning_core.store.sql.span_body_json`: compact JSON of the non-default
parts), LZ4-compressed with a preset dictionary of the attribute keys and message structure
our tracer and emitters write when that pays (the ~760-byte body of a chat call recorded from
the ``openai`` client becomes ~190 bytes). The OTel resource, identical for every span of a
process, is stored once in ``span_resources``. Hex trace and span ids are stored as their
bytes (half the size: :func:`~agentlightning_core.store.sql.pack_id`). Rows <-> objects and
the JSON of other fields are shared with the other SQL stores in
:mod:`agentlightning_core.store.sql`.
"""

from __future__ import annotations

import zlib
from typing import Any

import lz4.block

from agentlightning_core import Span
from agentlightning_core.store.sql import SPAN_BODY_DICTIONARY, loads, span_body_json

__all__ = ["decode_body", "encode_span_body"]

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
# Dictionary 2: the SQL stores' shared span-body dictionary (see its docstring).
_DICT_2 = SPAN_BODY_DICTIONARY


def encode_span_body(span: Span) -> bytes:
    """The compact ``body`` of a span row (everything but columns and resource)."""
    data = span_body_json(span)
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
