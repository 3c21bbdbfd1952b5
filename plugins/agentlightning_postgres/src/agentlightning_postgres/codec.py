"""The compact stored form of span bodies: deflated when that pays.

A span row keeps what queries filter and sort on in columns and the rest in ``body``
(:func:`agentlightning_core.store.sql.span_body_json`: compact JSON of the non-default
parts), deflated when it is longer than 128 bytes and that saves space (PostgreSQL itself
compresses only rows of about 2 KiB and more). The OTel resource, identical for every span
of a process, is stored once in ``span_resources``. Rows <-> objects and the JSON of other
fields are shared with the other SQL stores in :mod:`agentlightning_core.store.sql`.
"""

from __future__ import annotations

import zlib
from typing import Any

from agentlightning_core import Span
from agentlightning_core.store.sql import loads, span_body_json

__all__ = ["decode_body", "encode_span_body"]

_COMPRESS_ABOVE = 128  # bytes of JSON; below this deflate rarely saves anything
_DEFLATED = 0x01  # first byte of a deflated body; a plain one starts with "{"


def encode_span_body(span: Span) -> bytes:
    """The compact ``body`` of a span row (everything but columns and resource)."""
    data = span_body_json(span)
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
