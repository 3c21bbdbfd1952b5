"""Span storage details of this backend: packed ids, compressed bodies, resources stored once."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from agentlightning_core.spans import Span, SpanEvent, SpanLink, SpanStatus
from agentlightning_core.store.sql import pack_id, unpack_id
from agentlightning_sqlite import SqliteLightningStore, codec
from agentlightning_sqlite.codec import decode_body, encode_span_body


@pytest.mark.parametrize("value", ["0123456789abcdef", "0" * 31 + "1", "0123456789ABCDEF", "s1", "xyz" * 11])
def test_ids_round_trip_whether_or_not_they_are_packed(value: str) -> None:
    packed = pack_id(value)
    assert isinstance(packed, bytes) == (value == value.lower() and value[0] == "0")
    assert packed is not None and unpack_id(packed) == value


@pytest.mark.parametrize("repeat", [8, 200, 3000])  # JSON lengths with 1, 2 and 3 varint bytes
def test_large_bodies_are_compressed_and_round_trip(repeat: int) -> None:
    span = Span(
        rollout_id="r",
        attempt_id="a",
        sequence_id=1,
        trace_id="t",
        span_id="s",
        parent_id=None,
        name="openai.chat",
        attributes={"gen_ai.prompt.0.content": "hello " * repeat, "gen_ai.usage.prompt_tokens": 12},
    )
    body = encode_span_body(span)
    assert body[0] == 0x03 and len(body) < 200
    assert decode_body(body)["a"] == span.attributes
    with pytest.raises(ValueError, match="format byte 0x4"):
        decode_body(b"\x04xyz")


def test_deflated_bodies_of_earlier_versions_still_decode() -> None:
    data = b'{"a":{"gen_ai.system":"openai","gen_ai.request.model":"gpt-4o-mini","gen_ai.usage.prompt_tokens":12}}'
    deflate = zlib.compressobj(6, zlib.DEFLATED, -11, 2, zlib.Z_DEFAULT_STRATEGY, codec._DICT_1)
    body = b"\x01" + deflate.compress(data) + deflate.flush()
    assert decode_body(body) == {
        "a": {
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.usage.prompt_tokens": 12,
        }
    }


@pytest.mark.anyio
async def test_every_span_field_round_trips_and_resources_are_shared(tmp_path: Path) -> None:
    async with SqliteLightningStore(tmp_path / "s.db") as store:
        ar = await store.start_rollout("x")
        resource = {"service.name": "agent", "telemetry.sdk.language": "python"}
        spans = [
            Span(
                rollout_id=ar.rollout_id,
                attempt_id=ar.attempt_id,
                sequence_id=0,
                trace_id="not-hex-trace",
                span_id=f"SPAN-{i}",
                parent_id="FFFFFFFFFFFFFFFF" if i else None,
                name="step",
                start_time=None,
                end_time=2.0,
                attributes={"i": i, "list": [1, 2], "ünïcode": "✓"},
                events=(SpanEvent("e", 1.5, {"k": "v"}), SpanEvent("bare")),
                links=(SpanLink("ab" * 16, "cd" * 8, {"why": "retry"}),),
                status=SpanStatus("ERROR", "boom"),
                kind="CLIENT",
                resource=resource,
            )
            for i in range(3)
        ]
        stored = await store.add_many_spans(spans)
        got = await store.query_spans(ar.rollout_id)
        assert list(got) == stored
        assert [s.sequence_id for s in got] == [1, 2, 3]
        assert got[1].parent_id == "FFFFFFFFFFFFFFFF"
        assert len(await store.query_spans(ar.rollout_id, parent_id="FFFFFFFFFFFFFFFF")) == 2
        assert len(await store.query_spans(ar.rollout_id, trace_id="not-hex-trace")) == 3
        refs = await store._read(lambda c: c.execute("SELECT count(*) FROM span_resources").fetchone()[0])
        assert refs == 1
