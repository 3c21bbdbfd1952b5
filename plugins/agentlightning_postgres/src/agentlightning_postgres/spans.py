"""SQL of spans (the ``spans`` and ``span_resources`` tables): batched inserts (``COPY``) with
sequence ids and heartbeats, sequence id allocation, queries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from agentlightning_core import AttemptNotFoundError, Span
from agentlightning_core.store import policy
from agentlightning_core.store.base import PaginatedResult
from agentlightning_core.store.sql import (
    SpanQuery,
    attempt_from_row,
    dumps,
    loads,
    span_from_row,
    span_statements,
)
from agentlightning_core.types import Attempt
from agentlightning_postgres import attempts, codec, rollouts
from agentlightning_postgres.sql import POSTGRES, Conn, all_rows, one, rollback_on_error

__all__ = ["ResourceRefs", "add", "allocate_sequence_ids", "query"]

_COPY = (
    "COPY spans (rid, aid, sequence_id, span_id, trace_id, parent_id, name, start_time, end_time,"
    " resource_ref, body) FROM STDIN (FORMAT BINARY)"
)
_COPY_TYPES = ["int8", "int8", "int8", "text", "text", "text", "text", "float8", "float8", "int4", "bytea"]
# The span ids of a group already stored for its attempt (by attempt id or the latest attempt);
# the attempt's key comes first (an InitPlan), so the index scan is on (aid, span_id) both.
_SEEN_SELECT = (
    "SELECT span_id FROM spans WHERE aid = (SELECT a.aid FROM attempts a JOIN rollouts r ON r.rid = a.rid"
    " WHERE r.rollout_id = %s AND "
)
_SEEN = {
    False: _SEEN_SELECT + "a.attempt_id = %s) AND span_id = ANY(%s)",
    True: _SEEN_SELECT + "a.sequence_id = r.attempt_count AND %s = 'latest') AND span_id = ANY(%s)",
}


class ResourceRefs:
    """The store's cache of span OTel resources (stored once each in ``span_resources``)."""

    def __init__(self) -> None:
        self.refs: dict[str, int] = {}
        self.bodies: dict[int, dict[str, Any]] = {}

    def clear_refs(self) -> None:
        """Forget refs of rows that a rollback may have undone (bodies of read rows stay valid)."""
        self.refs.clear()

    async def ref(self, conn: Conn, resource: dict[str, Any]) -> int:
        body = dumps(resource)
        ref = self.refs.get(body)
        if ref is None:
            found = await one(
                conn,
                "INSERT INTO span_resources (body) VALUES (%s) ON CONFLICT (body) DO NOTHING RETURNING ref",
                (body,),
            ) or await one(conn, "SELECT ref FROM span_resources WHERE body = %s", (body,))
            assert found is not None
            ref = self.refs[body] = int(found[0])
        return ref

    async def resolve(self, conn: Conn, refs: set[int]) -> dict[int, dict[str, Any]]:
        missing = [r for r in refs if r not in self.bodies]
        if missing:
            for ref, body in await all_rows(
                conn, "SELECT ref, body FROM span_resources WHERE ref = ANY(%s)", (missing,)
            ):
                self.bodies[ref] = loads(body)
        return self.bodies


async def add(conn: Conn, spans: Sequence[Span], refs: ResourceRefs, where_: str, channel: str) -> list[Span]:
    """Store new spans (duplicates skipped), numbering them; each batch is a heartbeat of its
    attempt. One transaction of its own (run it on a connection in autocommit mode).

    Rollout rows are locked in id order (no deadlock between batches), so the duplicate check
    and the sequence ids hold across processes. ``COPY`` (the server's fastest way in) cannot
    run in pipeline mode, so the statements before it go out together in one pipeline, and
    those after it with ``COMMIT`` in another: four round trips per batch.
    """
    now = time.time()
    groups: dict[tuple[str, str], list[Span]] = {}
    for span in spans:
        groups.setdefault((span.rollout_id, span.attempt_id), []).append(span)
    keys = sorted(groups)
    async with rollback_on_error(conn):
        async with conn.pipeline():
            await conn.execute(b"BEGIN")
            sent = [
                (
                    await attempts.send_locked(conn, rollout_id, attempt_id),
                    # after the lock is held, so it sees every committed batch
                    await conn.execute(
                        _SEEN[attempt_id == "latest"], _seen_params(groups[rollout_id, attempt_id])
                    ),
                )
                for rollout_id, attempt_id in keys
            ]
        stored: list[Span] = []
        rows: list[tuple[Any, ...]] = []
        rollout_totals: dict[int, list[int]] = {}
        heartbeats: list[tuple[int, int, Attempt, tuple[Any, ...] | None]] = []
        encode_body, next_sequence_id = codec.encode_span_body, policy.next_sequence_id
        last_resource: dict[str, Any] | None = None
        last_ref: int | None = None
        for (rollout_id, attempt_id), (locked_cur, seen_cur) in zip(keys, sent, strict=True):
            arow, rrow = await attempts.locked(conn, rollout_id, attempt_id, where_, locked_cur)
            seen = {r[0] for r in await seen_cur.fetchall()}
            aid, rid, attempt = arow[9], arow[10], attempt_from_row(arow)
            # only the latest attempt changes its rollout, so the row read under the lock is current
            heartbeats.append((aid, rid, attempt, rrow))
            totals = rollout_totals.get(rid)
            if totals is None:
                totals = rollout_totals[rid] = [await _next_span_seq(conn, rid, rrow), 0, 0]
            for span in groups[rollout_id, attempt_id]:
                if span.span_id in seen:
                    continue  # a duplicate: stored once only
                seen.add(span.span_id)
                seq, totals[0] = next_sequence_id(totals[0], span.sequence_id)
                if seq != span.sequence_id:  # allocated: on a copy; the caller's span stays as given
                    span = span.with_sequence_id(seq)
                body = encode_body(span)
                resource = span.resource
                if not resource:
                    ref = None
                elif resource != last_resource:  # spans of a batch mostly share their OTel resource
                    ref = last_ref = await refs.ref(conn, resource)
                    last_resource = resource
                else:
                    ref = last_ref
                rows.append(
                    (
                        rid,
                        aid,
                        seq,
                        span.span_id,
                        span.trace_id,
                        span.parent_id,
                        span.name,
                        span.start_time,
                        span.end_time,
                        ref,
                        body,
                    )
                )
                totals[1] += 1
                totals[2] += len(body)
                stored.append(span)
        if rows:
            async with conn.cursor().copy(_COPY) as copy:
                copy.set_types(_COPY_TYPES)
                for r in rows:
                    await copy.write_row(r)
        async with conn.pipeline():
            for aid, rid, attempt, rrow in heartbeats:
                await _heartbeat(conn, aid, rid, attempt, now, channel, rrow)
            for rid, t in rollout_totals.items():
                await conn.execute(
                    "UPDATE rollouts SET next_span_seq = %s, span_count = span_count + %s,"
                    " span_bytes = span_bytes + %s WHERE rid = %s",
                    (t[0], t[1], t[2], rid),
                )
            await conn.execute(b"COMMIT")
    return stored


async def _next_span_seq(conn: Conn, rid: int, rollout_row: tuple[Any, ...] | None) -> int:
    if rollout_row is not None:
        return int(rollout_row[11])
    found = await one(conn, "SELECT next_span_seq FROM rollouts WHERE rid = %s", (rid,))
    assert found is not None
    return int(found[0])


def _seen_params(group: list[Span]) -> tuple[Any, ...]:
    return (group[0].rollout_id, group[0].attempt_id, [s.span_id for s in group])


async def _heartbeat(
    conn: Conn,
    aid: int,
    rid: int,
    attempt: Attempt,
    now: float,
    channel: str,
    rollout_row: tuple[Any, ...] | None,
) -> None:
    new_status = policy.attempt_status_after_heartbeat(attempt.status)
    await conn.execute("UPDATE attempts SET last_heartbeat_time = %s WHERE aid = %s", (now, aid))
    attempt.last_heartbeat_time = now
    if new_status is not attempt.status:
        await attempts.apply_status(conn, aid, rid, attempt, new_status, now, channel, rollout_row)


async def allocate_sequence_ids(conn: Conn, pairs: Sequence[tuple[str, str]], where_: str) -> list[int]:
    """The next span sequence id of each ``(rollout_id, attempt_id)``, in order."""
    out: list[int] = []
    for rollout_id, attempt_id in pairs:
        rid = (await attempts.row(conn, rollout_id, attempt_id, where_))[10]
        found = await one(
            conn,
            "UPDATE rollouts SET next_span_seq = next_span_seq + 1 WHERE rid = %s RETURNING next_span_seq - 1",
            (rid,),
        )
        assert found is not None
        out.append(int(found[0]))
    return out


async def query(
    conn: Conn,
    refs: ResourceRefs,
    where_: str,
    rollout_id: str,
    attempt_id: str | None,
    spec: SpanQuery,
) -> PaginatedResult[Span]:
    """Spans for the checked arguments of ``query_spans``, filtered among this rollout's rows
    only (``spans_rollout``)."""
    if attempt_id is None:
        rid, aid = (await rollouts.row(conn, rollout_id, where_))[0], None
    else:
        try:
            arow = await attempts.row(conn, rollout_id, attempt_id, where_)
        except AttemptNotFoundError:
            if attempt_id != "latest":
                raise
            return PaginatedResult([], 0, spec.limit, spec.offset)
        rid, aid = arow[10], arow[9]
    q = span_statements(POSTGRES, rid, aid, spec)
    rows = await all_rows(conn, q.select, q.params)
    if q.limit == -1 and q.offset == 0:
        total = len(rows)
    else:
        counted = await one(conn, q.count, q.params)
        total = int(counted[0]) if counted is not None else 0
    wanted = {r[9] for r in rows if r[9] is not None}
    bodies = await refs.resolve(conn, wanted) if wanted else refs.bodies
    return PaginatedResult(
        [span_from_row(r, bodies, codec.decode_body) for r in rows], total, q.limit, q.offset
    )
