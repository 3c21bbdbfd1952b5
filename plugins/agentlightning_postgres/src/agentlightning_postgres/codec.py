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
from agentlightning_core.store.sql import SPAN_BODY_DICTIONARY, loads, span_body_json

__all__ = ["decode_body", "encode_span_body"]

_COMPRESS_ABOVE = 48  # bytes of JSON; below this compression rarely saves anything

# Body format byte: "{" (0x7b) plain JSON; 0x01 raw deflate (written by version 0.1.0, only
# read now); 0x02 an LZ4 block (with its length in 4 bytes) and the dictionary below. Never
# change a released dictionary: add another with a new format byte.
_DEFLATED = 0x01
_LZ4 = 0x02
_LZ4_PREFIX = bytes((_LZ4,))
_DICT = SPAN_BODY_DICTIONARY  # the SQLite store's dictionary 2


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
