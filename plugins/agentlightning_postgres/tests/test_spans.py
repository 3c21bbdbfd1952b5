"""Span storage details of this backend: batches through ``COPY``, compact bodies, resources
stored once, sequence ids unique across processes."""

from __future__ import annotations

import contextlib
import json
import zlib
from collections.abc import Callable

import anyio
import attrs
import psycopg
import pytest

from agentlightning_core.spans import Span, SpanEvent, SpanStatus
from agentlightning_core.store.sql import span_body_json
from agentlightning_core.testing.store import make_span
from agentlightning_postgres import PostgresLightningStore
from agentlightning_postgres.codec import decode_body, encode_span_body

pytestmark = pytest.mark.anyio

Make = Callable[..., PostgresLightningStore]
RESOURCE = {"service.name": "agent", "telemetry.sdk.language": "python", "host.name": "runner-1"}


async def _rows(dsn: str, query: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        return await (await conn.execute(query.encode())).fetchall()


def test_bodies_hold_only_what_differs_from_the_defaults() -> None:
    plain = make_span("r", "a", 0)
    assert encode_span_body(plain) == b"{}"
    rich = Span(
        rollout_id="r",
        attempt_id="a",
        sequence_id=1,
        trace_id="t",
        span_id="s",
        parent_id=None,
        name="n",
        attributes={"k": 1.5},
        events=(SpanEvent("e", 2.0),),
        status=SpanStatus("ERROR", "boom"),
        kind="CLIENT",
        resource=RESOURCE,
    )
    assert decode_body(encode_span_body(rich)) == {
        "a": {"k": 1.5},
        "e": [["e", 2.0]],
        "s": ["ERROR", "boom"],
        "k": "CLIENT",
    }


async def test_a_large_batch_is_stored_once_numbered_in_order_with_one_resource_row(
    make_store: Make, dsn: str
) -> None:
    async with make_store(schema="batch") as store:
        got = await store.start_rollout("x")
        spans = [
            attrs.evolve(make_span(got.rollout_id, got.attempt_id, i, text="hello " * 50), resource=RESOURCE)
            for i in range(2000)
        ]
        stored = await store.add_many_spans(spans)
        assert [s.sequence_id for s in stored] == list(range(1, 2001))
        again = await store.add_many_spans([*spans[:10], make_span(got.rollout_id, got.attempt_id, 5000)])
        assert [s.span_id for s in again] == [f"{5001:016x}"]  # duplicates skipped
        back = await store.query_spans(got.rollout_id)
        assert len(back) == 2001 and back[0] == stored[0] and back[0].resource == RESOURCE
        assert await _rows(dsn, "SELECT count(*) FROM batch.span_resources") == [(1,)]
        # pages of at most 256 spans; the repeated text is compressed: far less than the ~330
        # bytes of its JSON a span
        ((pages, size),) = await _rows(
            dsn, "SELECT count(*), sum(pg_column_size(body))::int FROM batch.span_pages"
        )
        assert pages == 2000 // 256 + 1 + 1 and isinstance(size, int) and size / 2001 < 60


async def test_stores_adding_to_one_attempt_at_once_get_distinct_sequence_ids(make_store: Make) -> None:
    async with contextlib.AsyncExitStack() as stack:
        stores = [await stack.enter_async_context(make_store(schema="seq")) for _ in range(3)]
        got = await stores[0].start_rollout("x")

        async def add(k: int, store: PostgresLightningStore) -> None:
            for batch in range(5):
                await store.add_many_spans(
                    [make_span(got.rollout_id, got.attempt_id, k * 1000 + batch * 10 + i) for i in range(10)]
                )

        async with anyio.create_task_group() as tg:
            for k, store in enumerate(stores):
                tg.start_soon(add, k, store)
        seqs = [s.sequence_id for s in await stores[1].query_spans(got.rollout_id)]
        assert sorted(seqs) == list(range(1, 151))


def test_bodies_are_lz4_with_a_dictionary_and_deflated_ones_of_earlier_versions_still_read() -> None:
    span = attrs.evolve(
        make_span("r", "a", 1),
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "Hi"}]}]',
            "gen_ai.usage.input_tokens": 12,
        },
        kind="CLIENT",
    )
    body = encode_span_body(span)
    data = span_body_json(span)
    assert body[0] == 0x02 and len(body) < len(data) // 2
    deflate = zlib.compressobj(1, zlib.DEFLATED, -15)
    written_by_0_1_0 = b"\x01" + deflate.compress(data) + deflate.flush()
    assert decode_body(written_by_0_1_0) == decode_body(body) == json.loads(data)
    with pytest.raises(ValueError, match="format byte 0x7"):
        decode_body(b"\x07abc")


async def test_a_batch_the_server_rejects_changes_nothing(make_store: Make, dsn: str) -> None:
    # a span id PostgreSQL's text cannot hold fails inside the batch's transaction: it is rolled
    # back, the connection stays usable
    async with make_store(schema="rejected") as store:
        got = await store.start_rollout("x")
        bad = attrs.evolve(make_span(got.rollout_id, got.attempt_id, 1), span_id="nul\x00byte")
        with pytest.raises(psycopg.DataError):
            await store.add_many_spans([make_span(got.rollout_id, got.attempt_id, 0), bad])
        attempt = await store.get_latest_attempt(got.rollout_id)
        assert attempt is not None and attempt.status == "preparing" and attempt.last_heartbeat_time is None
        assert len(await store.query_spans(got.rollout_id)) == 0
        stored = await store.add_many_spans([make_span(got.rollout_id, got.attempt_id, 2)])
        assert [s.sequence_id for s in stored] == [1]
        assert await _rows(dsn, "SELECT span_count FROM rejected.rollouts") == [(1,)]
