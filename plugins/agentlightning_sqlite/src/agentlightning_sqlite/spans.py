"""SQL of spans (the ``spans`` and ``span_resources`` tables): batched inserts with sequence
ids and heartbeats, sequence id allocation, queries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentlightning_core import AttemptNotFoundError, Span
from agentlightning_core.store import policy
from agentlightning_core.store.base import PaginatedResult
from agentlightning_core.store.sql import (
    SpanQuery,
    attempt_from_row,
    dumps,
    loads,
    pack_id,
    span_from_row,
    span_statements,
)
from agentlightning_core.types import Attempt
from agentlightning_sqlite import attempts, codec, rollouts
from agentlightning_sqlite.sql import SQLITE, Conn, chunks, qmarks

__all__ = ["ResourceRefs", "add", "allocate_sequence_ids", "query"]


class ResourceRefs:
    """The store's cache of span OTel resources (stored once each in ``span_resources``)."""

    def __init__(self) -> None:
        self.refs: dict[str, int] = {}
        self.bodies: dict[int, dict[str, Any]] = {}

    def clear_refs(self) -> None:
        """Forget refs of rows that a rollback may have undone (bodies of read rows stay valid)."""
        self.refs.clear()

    def ref(self, conn: Conn, resource: dict[str, Any]) -> int:
        body = dumps(resource)
        ref = self.refs.get(body)
        if ref is None:
            conn.execute("INSERT OR IGNORE INTO span_resources (body) VALUES (?)", (body,))
            ref = int(conn.execute("SELECT ref FROM span_resources WHERE body = ?", (body,)).fetchone()[0])
            self.refs[body] = ref
        return ref

    def resolve(self, conn: Conn, refs: set[int]) -> dict[int, dict[str, Any]]:
        missing = [r for r in refs if r not in self.bodies]
        for part in chunks(missing):
            for ref, body in conn.execute(
                f"SELECT ref, body FROM span_resources WHERE ref IN ({qmarks(len(part))})", part
            ):
                self.bodies[ref] = loads(body)
        return self.bodies


def add(conn: Conn, spans: Sequence[Span], refs: ResourceRefs, path: Path) -> list[Span]:
    """Store new spans (duplicates skipped), numbering them; each batch is a heartbeat of its attempt."""
    now = time.time()
    groups: dict[tuple[str, str], list[Span]] = {}
    for span in spans:
        groups.setdefault((span.rollout_id, span.attempt_id), []).append(span)
    stored: list[Span] = []
    rows: list[tuple[Any, ...]] = []
    rollout_totals: dict[int, list[int]] = {}
    pack, encode_body, next_sequence_id = pack_id, codec.encode_span_body, policy.next_sequence_id
    last_trace: str | None = None
    packed_trace: str | bytes | None = None
    last_resource: dict[str, Any] | None = None
    last_ref: int | None = None
    for (rollout_id, attempt_id), group in groups.items():
        arow = attempts.row(conn, rollout_id, attempt_id, path)
        aid, rid, attempt = arow[9], arow[10], attempt_from_row(arow)
        seen: set[str | bytes | None] = set()
        keys = [pack(s.span_id) for s in group]
        # parents are mostly spans of the same batch: reuse their packed ids
        packed_ids: dict[str | None, str | bytes | None] = {None: None}
        packed_ids.update(zip([s.span_id for s in group], keys, strict=True))
        for part in chunks(keys):
            seen.update(
                r[0]
                for r in conn.execute(
                    f"SELECT span_id FROM spans WHERE aid = ? AND span_id IN ({qmarks(len(part))})",
                    (aid, *part),
                )
            )
        totals = rollout_totals.get(rid)
        if totals is None:
            next_seq = conn.execute("SELECT next_span_seq FROM rollouts WHERE rid = ?", (rid,)).fetchone()[0]
            totals = rollout_totals[rid] = [next_seq, 0, 0]
        for span, key in zip(group, keys, strict=True):
            if key in seen:
                continue  # a duplicate: stored once only
            seen.add(key)
            seq, totals[0] = next_sequence_id(totals[0], span.sequence_id)
            if seq != span.sequence_id:  # allocated: on a copy; the caller's span stays as given
                span = span.with_sequence_id(seq)
            body = encode_body(span)
            trace_id = span.trace_id
            if trace_id != last_trace:  # spans of a batch mostly share their trace
                last_trace, packed_trace = trace_id, pack(trace_id)
            resource = span.resource
            if not resource:
                ref = None
            elif resource != last_resource:  # and their OTel resource
                ref = last_ref = refs.ref(conn, resource)
                last_resource = resource
            else:
                ref = last_ref
            rows.append(
                (
                    rid,
                    aid,
                    seq,
                    key,
                    packed_trace,
                    packed_ids[parent] if (parent := span.parent_id) in packed_ids else pack(parent),
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
        _heartbeat(conn, aid, rid, attempt, now)
    conn.executemany(
        "INSERT INTO spans (rid, aid, sequence_id, span_id, trace_id, parent_id, name, start_time, end_time,"
        " resource_ref, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.executemany(
        "UPDATE rollouts SET next_span_seq = ?, span_count = span_count + ?, span_bytes = span_bytes + ? WHERE rid = ?",
        [(t[0], t[1], t[2], rid) for rid, t in rollout_totals.items()],
    )
    return stored


def _heartbeat(conn: Conn, aid: int, rid: int, attempt: Attempt, now: float) -> None:
    new_status = policy.attempt_status_after_heartbeat(attempt.status)
    conn.execute("UPDATE attempts SET last_heartbeat_time = ? WHERE aid = ?", (now, aid))
    attempt.last_heartbeat_time = now
    if new_status is not attempt.status:
        attempts.apply_status(conn, aid, rid, attempt, new_status, now)


def allocate_sequence_ids(conn: Conn, pairs: Sequence[tuple[str, str]], path: Path) -> list[int]:
    """The next span sequence id of each ``(rollout_id, attempt_id)``, in order."""
    return [
        int(
            conn.execute(
                "UPDATE rollouts SET next_span_seq = next_span_seq + 1 WHERE rid = ? RETURNING next_span_seq - 1",
                (attempts.row(conn, rollout_id, attempt_id, path)[10],),
            ).fetchone()[0]
        )
        for rollout_id, attempt_id in pairs
    ]


def query(
    conn: Conn,
    refs: ResourceRefs,
    path: Path,
    rollout_id: str,
    attempt_id: str | None,
    spec: SpanQuery,
) -> PaginatedResult[Span]:
    """Spans for the checked arguments of ``query_spans``, filtered among this rollout's rows
    only (``spans_rollout``)."""
    if attempt_id is None:
        rid, aid = rollouts.row(conn, rollout_id, path)[0], None
    else:
        try:
            arow = attempts.row(conn, rollout_id, attempt_id, path)
        except AttemptNotFoundError:
            if attempt_id != "latest":
                raise
            return PaginatedResult([], 0, spec.limit, spec.offset)
        rid, aid = arow[10], arow[9]
    q = span_statements(SQLITE, rid, aid, spec)
    rows = conn.execute(q.select, q.params).fetchall()
    total = len(rows) if q.limit == -1 and q.offset == 0 else conn.execute(q.count, q.params).fetchone()[0]
    wanted = {r[9] for r in rows if r[9] is not None}
    bodies = refs.resolve(conn, wanted) if wanted else refs.bodies
    return PaginatedResult(
        [span_from_row(r, bodies, codec.decode_body) for r in rows], total, q.limit, q.offset
    )
