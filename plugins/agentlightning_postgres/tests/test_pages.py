"""Spans stored as pages (schema version 2): duplicates within and across batches, batches of
several attempts, the order of ``query_spans`` where SQL would decide it, and the migration of
a version-1 store (a row per span) to pages."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import attrs
import psycopg
import pytest

from agentlightning_core.spans import SpanEvent, SpanStatus
from agentlightning_core.testing.store import make_span
from agentlightning_postgres import PostgresLightningStore, schema
from agentlightning_postgres.codec import PAGE_SPANS, encode_page, encode_span_body, page_bodies, page_columns

pytestmark = pytest.mark.anyio

Make = Callable[..., PostgresLightningStore]
RESOURCE = {"service.name": "agent", "host.name": "runner-1"}


async def _rows(dsn: str, query: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cur = await conn.execute(query.encode())
        return await cur.fetchall() if cur.description else []


async def test_duplicates_within_and_across_batches_and_attempts_are_stored_once(
    make_store: Make, dsn: str
) -> None:
    async with make_store(schema="dups") as store:
        a = await store.start_rollout("a")
        b = await store.start_rollout("b")
        a2 = await store.start_attempt(a.rollout_id)  # the latest attempt of a
        first = [make_span(a.rollout_id, a.attempt_id, i) for i in range(3)]
        batch = [
            *first,
            first[1],  # twice in one batch
            make_span(a.rollout_id, a2.attempt.attempt_id, 1),  # the same id in another attempt: a new span
            make_span(a.rollout_id, "latest", 1),  # a2 again, named "latest": a duplicate
            make_span(b.rollout_id, b.attempt_id, 7),
        ]
        stored = await store.add_many_spans(batch)
        assert sorted((s.attempt_id, s.span_id) for s in stored) == sorted(
            [
                (a.attempt_id, f"{1:016x}"),
                (a.attempt_id, f"{2:016x}"),
                (a.attempt_id, f"{3:016x}"),
                (a2.attempt.attempt_id, f"{2:016x}"),
                (b.attempt_id, f"{8:016x}"),
            ]
        )
        assert sorted(s.sequence_id for s in stored if s.rollout_id == a.rollout_id) == [1, 2, 3, 4]
        # across batches: only the new ones, numbered on without a gap
        again = await store.add_many_spans(
            [make_span(a.rollout_id, a.attempt_id, i) for i in range(2, 5)]
            + [make_span(b.rollout_id, b.attempt_id, 7)]
        )
        assert [(s.span_id, s.sequence_id) for s in again] == [(f"{4:016x}", 5), (f"{5:016x}", 6)]
        assert await store.add_many_spans([make_span(b.rollout_id, b.attempt_id, 7)]) == []
        assert [s.sequence_id for s in await store.query_spans(a.rollout_id)] == [1, 2, 3, 4, 5, 6]
        stats = await store.statistics()
        assert stats["spans"] == 7
        # a span id holding the separator the ids are sent with is stored and checked as well
        odd = attrs.evolve(make_span(b.rollout_id, b.attempt_id, 9), span_id="odd\x1fid")
        assert [s.span_id for s in await store.add_many_spans([odd, odd])] == ["odd\x1fid"]
        assert await store.add_span(odd) is None
        assert [s.span_id for s in await store.query_spans(b.rollout_id, span_id="odd\x1fid")] == [
            "odd\x1fid"
        ]
    # one page per attempt and call with new spans, never one per span
    assert await _rows(dsn, "SELECT count(*) FROM dups.span_pages") == [(5,)]


async def test_a_call_all_duplicates_is_still_a_heartbeat(make_store: Make) -> None:
    async with make_store(schema="dupbeat") as store:
        got = await store.start_rollout("x")
        span = make_span(got.rollout_id, got.attempt_id, 0)
        await store.add_span(span)
        before = await store.get_latest_attempt(got.rollout_id)
        assert before is not None and before.last_heartbeat_time is not None
        assert await store.add_many_spans([span, span]) == []
        after = await store.get_latest_attempt(got.rollout_id)
        assert after is not None and after.last_heartbeat_time is not None
        assert after.last_heartbeat_time >= before.last_heartbeat_time and after.status == "running"


async def test_query_orders_as_sql_would_nulls_last_and_nan_above_numbers(make_store: Make) -> None:
    async with make_store(schema="ordering") as store:
        got = await store.start_rollout("x")
        starts = [3.0, None, math.nan, 1.0, 2.0]
        spans = [
            attrs.evolve(make_span(got.rollout_id, got.attempt_id, i), start_time=t, end_time=None)
            for i, t in enumerate(starts)
        ]
        await store.add_many_spans(spans[:2])
        await store.add_many_spans(spans[2:])  # two pages

        async def order(sort_order: str, **kw: object) -> list[int]:
            page = await store.query_spans(got.rollout_id, sort_by="start_time", sort_order=sort_order, **kw)  # type: ignore[arg-type]
            return [s.sequence_id for s in page]

        assert await order("asc") == [4, 5, 1, 3, 2]  # 1.0, 2.0, 3.0, NaN, then None
        assert await order("desc") == [3, 1, 5, 4, 2]  # NaN, 3.0, 2.0, 1.0, then None
        page = await store.query_spans(got.rollout_id, sort_by="start_time", limit=2, offset=2)
        assert [s.sequence_id for s in page] == [1, 3] and page.total == 5
        back = {s.sequence_id: s for s in await store.query_spans(got.rollout_id)}
        assert back[3].start_time is not None and math.isnan(back[3].start_time)
        assert back[2].start_time is None and back[1].start_time == 3.0
        # ties in the sort key: ascending sequence id, both ways
        same = await store.query_spans(got.rollout_id, sort_by="name", sort_order="desc")
        assert [s.sequence_id for s in same] == [1, 2, 3, 4, 5]


def test_pages_round_trip_what_orjson_cannot_write() -> None:
    columns: list[list[Any]] = [
        [1, "t", None, "n", math.inf, None, None],
        [2, "t", "p", "n\x00ul", 1.5, 2.0, 3],
    ]
    bodies: list[dict[str, Any]] = [{"a": {"x": math.nan, "big": 2**70}}, {"a": {"s": "null"}}]
    page = encode_page(columns, bodies)
    got_columns, got_bodies = page_columns(page), page_bodies(page)
    assert got_columns[0][4] == math.inf and got_columns[1] == columns[1]
    assert math.isnan(got_bodies[0]["a"]["x"]) and got_bodies[0]["a"]["big"] == 2**70
    assert got_bodies[1] == bodies[1]
    with pytest.raises(ValueError, match="format byte 0x9"):
        page_columns(b"\x09abc")


async def test_a_version_1_store_migrates_to_pages_and_reads_the_same(
    make_store: Make, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a store at version 1 (a row per span), written as version 1 wrote its rows
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 1)
    async with make_store(schema="v1") as store:
        one = await store.start_rollout("one")
        two = await store.start_rollout("two")
        # enough attempts that the migration writes its pages in several rounds
        more = [await store.start_rollout(f"more-{i}") for i in range(110)]
        second = await store.start_attempt(one.rollout_id)
    spans = [
        attrs.evolve(
            make_span(
                one.rollout_id, one.attempt_id if i < PAGE_SPANS + 20 else second.attempt.attempt_id, i
            ),
            sequence_id=i + 1,
            resource=RESOURCE if i % 2 else {},
            events=(SpanEvent("e", 1.5),) if i == 3 else (),
            status=SpanStatus("ERROR", "boom") if i == 4 else SpanStatus(),
            start_time=math.nan if i == 5 else 1.7e9 + i,
        )
        for i in range(PAGE_SPANS + 40)
    ] + [attrs.evolve(make_span(r.rollout_id, r.attempt_id, 0), sequence_id=1) for r in [two, *more]]
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute("SET search_path TO v1")
        (ref,) = await (
            await conn.execute(
                "INSERT INTO span_resources (body) VALUES (%s) RETURNING ref",
                ('{"service.name":"agent","host.name":"runner-1"}',),
            )
        ).fetchone() or (None,)
        for s in spans:
            await conn.execute(
                "INSERT INTO spans (rid, aid, sequence_id, span_id, trace_id, parent_id, name, start_time,"
                " end_time, resource_ref, body) SELECT a.rid, a.aid, %s, %s, %s, %s, %s, %s, %s, %s, %s"
                " FROM attempts a JOIN rollouts r ON r.rid = a.rid WHERE r.rollout_id = %s AND a.attempt_id = %s",
                (
                    s.sequence_id,
                    s.span_id,
                    s.trace_id,
                    s.parent_id,
                    s.name,
                    s.start_time,
                    s.end_time,
                    ref if s.resource else None,
                    encode_span_body(s),
                    s.rollout_id,
                    s.attempt_id,
                ),
            )
        await conn.execute(
            "UPDATE rollouts SET next_span_seq = CASE WHEN rollout_id = %s THEN %s ELSE 2 END",
            (one.rollout_id, PAGE_SPANS + 41),
        )
    monkeypatch.undo()
    async with make_store(schema="v1") as store:
        back = list(await store.query_spans(one.rollout_id))
        for r in [two, *more]:
            back += await store.query_spans(r.rollout_id)
        assert len(back) == len(spans)
        for got, want in zip(back, spans, strict=True):
            if want.start_time is not None and math.isnan(want.start_time):
                assert got.start_time is not None and math.isnan(got.start_time)
                got, want = attrs.evolve(got, start_time=None), attrs.evolve(want, start_time=None)
            assert got == want
        # duplicates of migrated spans are still found; numbering goes on
        assert await store.add_span(spans[0]) is None
        new = await store.add_span(make_span(one.rollout_id, one.attempt_id, 9999))
        assert new is not None and new.sequence_id == PAGE_SPANS + 41
    assert await _rows(dsn, "SELECT version FROM v1.agl_schema_version") == [(schema.SCHEMA_VERSION,)]
    assert await _rows(dsn, "SELECT to_regclass('v1.spans') IS NULL") == [(True,)]
    # the first attempt's spans fill a page and part of another; the others one each
    assert await _rows(dsn, "SELECT count(*) FROM v1.span_pages") == [(3 + 111 + 1,)]
