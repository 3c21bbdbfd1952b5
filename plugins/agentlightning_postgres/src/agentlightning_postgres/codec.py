"""The compact stored form of spans: pages of spans, LZ4 with a preset dictionary.

Since schema version 2 the spans of one attempt that arrive in one call are stored together as
a page (a row of ``span_pages``, up to :data:`PAGE_SPANS` spans): their span ids in a column
(for duplicate checks) and everything else in one ``body`` (:func:`encode_page`): the JSON of
their columns and of their bodies, LZ4-compressed with a preset dictionary of the keys and
message structure our tracer writes.
Spans of one batch share most of their text, so a page compresses far better than each span
alone and costs the server one row instead of one per span. The OTel resource, identical for
every span of a process, is stored once in ``span_resources``. Span bodies (the non-default
parts, :func:`agentlightning_core.store.sql.span_body`) and the JSON of other fields are
shared with the other SQL stores in :mod:`agentlightning_core.store.sql`.

Version 1 stored a row per span with its body alone (:func:`decode_body`); the migration to
version 2 reads those into pages.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from typing import Any

import lz4.block
import orjson

from agentlightning_core import Span
from agentlightning_core.store.sql import SPAN_BODY_DICTIONARY, dumps, loads, span_body_json

__all__ = [
    "PAGE_SPANS",
    "PageColumns",
    "decode_body",
    "encode_page",
    "encode_span_body",
    "page_bodies",
    "page_columns",
]

PAGE_SPANS = 256
"""Most spans in one page; a larger batch of one attempt takes several."""

PageColumns = list[Any]
"""A span's columns in a page: ``[sequence_id, trace_id, parent_id, name, start_time,
end_time, resource_ref]`` (its span id is in the page's ``span_ids``)."""

_COMPRESS_ABOVE = 48  # bytes of JSON; below this compression rarely saves anything

# Body format byte: "{" (0x7b) plain JSON; 0x01 raw deflate (written by version 0.1.0, only
# read now); 0x02 an LZ4 block (with its length in 4 bytes) and the dictionary below. Never
# change a released dictionary: add another with a new format byte.
_DEFLATED = 0x01
_LZ4 = 0x02
_LZ4_PREFIX = bytes((_LZ4,))
# Page format byte 0x03: the size of the columns' LZ4 block in 4 bytes (little-endian), that
# block, then the bodies' LZ4 block, both with the dictionary below.
_PAGE = 0x03
_PAGE_PREFIX = bytes((_PAGE,))
_DICT = SPAN_BODY_DICTIONARY  # the SQLite store's dictionary 2


def encode_span_body(span: Span) -> bytes:
    """The compact ``body`` of a version-1 span row (everything but columns and resource)."""
    data = span_body_json(span)
    if len(data) > _COMPRESS_ABOVE:
        packed: bytes = lz4.block.compress(data, dict=_DICT)
        if len(packed) + 1 < len(data):
            return _LZ4_PREFIX + packed
    return data


def encode_page(columns: Sequence[PageColumns], bodies: Sequence[dict[str, Any]]) -> bytes:
    """The ``body`` of a page row: the JSON of its spans' columns and the JSON of their bodies
    (orjson; ``json`` for what only it writes, such as NaN), each LZ4-compressed, so a query
    reads the columns of every page but the bodies of the pages it returns spans of only."""
    # nulls in columns are None (a root span's parent) unless a time is not finite, and a sum
    # of floats is finite only if each is: one cheap test of every time
    times = [t for c in columns for t in (c[4], c[5]) if t is not None]
    cols = _json(columns, nulls=math.isfinite(sum(times)))
    try:
        data: bytes | None = orjson.dumps(bodies)
    except TypeError:  # beyond orjson (integers over 64 bits, lone surrogates)
        data = None
    if data is None or b"null" in data:  # orjson writes NaN and infinities as null: look at each
        data = b"[" + b",".join(_json(b, nulls=False) for b in bodies) + b"]"
    packed_columns: bytes = lz4.block.compress(cols, dict=_DICT)
    packed_bodies: bytes = lz4.block.compress(data, dict=_DICT)
    return _PAGE_PREFIX + len(packed_columns).to_bytes(4, "little") + packed_columns + packed_bodies


def page_columns(data: bytes) -> list[PageColumns]:
    """The columns of a page's spans, in order (see :func:`encode_page`)."""
    view = _page(data)
    columns: list[PageColumns] = loads(lz4.block.decompress(view[4 : 4 + _columns_size(view)], dict=_DICT))
    return columns


def page_bodies(data: bytes) -> list[dict[str, Any]]:
    """The bodies of a page's spans, in order (see :func:`encode_page`)."""
    view = _page(data)
    bodies: list[dict[str, Any]] = loads(lz4.block.decompress(view[4 + _columns_size(view) :], dict=_DICT))
    return bodies


def _page(data: bytes) -> memoryview:
    if data[0] != _PAGE:
        raise ValueError(f"Unknown span page format byte {data[0]:#x}; it was written by a newer version")
    return memoryview(data)[1:]


def _columns_size(view: memoryview) -> int:
    return int.from_bytes(view[:4], "little")


def _json(value: Any, *, nulls: bool) -> bytes:
    """Compact JSON: orjson's, unless it failed or wrote a null where ``value`` holds none
    (``nulls`` False: so a NaN or infinity, which only ``json`` writes)."""
    try:
        data: bytes = orjson.dumps(value)
    except TypeError:  # beyond orjson (integers over 64 bits, lone surrogates)
        return dumps(value).encode()
    return data if nulls or b"null" not in data else dumps(value).encode()


def decode_body(data: bytes) -> dict[str, Any]:
    """The body dict of a version-1 span row (see :func:`encode_span_body`)."""
    fmt = data[0]
    if fmt == _LZ4:
        data = lz4.block.decompress(memoryview(data)[1:], dict=_DICT)
    elif fmt == _DEFLATED:
        data = zlib.decompress(memoryview(data)[1:], -15)
    elif fmt != 0x7B:
        raise ValueError(f"Unknown span body format byte {fmt:#x}; it was written by a newer version")
    body: dict[str, Any] = loads(data)
    return body
