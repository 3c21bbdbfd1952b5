"""SQL of spans (the ``spans`` and ``span_resources`` tables): batched inserts with sequence
ids and heartbeats, sequence id allocation, queries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentlightning_core import AttemptNotFoundError, Span
from agentlightning_core.store import policy
from agentlightning_core.store.base import FilterLogic, PaginatedResult, SortOrder
from agentlightning_core.types import Attempt
from agentlightning_sqlite import attempts, codec, rollouts
from agentlightning_sqlite.codec import SPAN_COLUMNS
from agentlightning_sqlite.sql import Conn, chunks, id_text, limit_clause, order_by, qmarks, where

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
        body = codec.dumps(resource)
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
                self.bodies[ref] = codec.loads(body)
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
    pack_id, encode_body, next_sequence_id = (
        codec.pack_id,
        codec.encode_span_body,
        policy.next_sequence_id,
    )
    last_trace: str | None = None
    packed_trace: str | bytes | None = None
    last_resource: dict[str, Any] | None = None
    last_ref: int | None = None
    for (rollout_id, attempt_id), group in groups.items():
        arow = attempts.row(conn, rollout_id, attempt_id, path)
        aid, rid, attempt = arow[9], arow[10], codec.attempt_from_row(arow)
        seen: set[str | bytes | None] = set()
        keys = [pack_id(s.span_id) for s in group]
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
                last_trace, packed_trace = trace_id, pack_id(trace_id)
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
                    packed_ids[parent] if (parent := span.parent_id) in packed_ids else pack_id(parent),
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
    fields: dict[str, tuple[str | None, str | None]],
    filter_logic: FilterLogic,
    sort_by: str,
    sort_order: SortOrder,
    limit: int,
    offset: int,
) -> PaginatedResult[Span]:
    """Spans for the (checked) arguments of ``query_spans``; ``fields`` maps a column to its
    (exact value, substring) filters, evaluated only on this rollout's rows (``spans_rollout``)."""
    clauses = ["s.rid = ?"]
    params: list[Any] = []
    if attempt_id is None:
        params.append(rollouts.row(conn, rollout_id, path)[0])
    else:
        try:
            arow = attempts.row(conn, rollout_id, attempt_id, path)
        except AttemptNotFoundError:
            if attempt_id != "latest":
                raise
            return PaginatedResult([], 0, limit, offset)
        params.append(arow[10])
        clauses.append("s.aid = ?")
        params.append(arow[9])
    filters: list[str] = []
    for column, (exact, part) in fields.items():
        if exact is not None:
            filters.append(f"s.{column} = ?")
            params.append(exact if column == "name" else codec.pack_id(exact))
        if part is not None:
            text = f"s.{column}" if column == "name" else id_text(f"s.{column}")
            filters.append(f"instr({text}, ?) > 0")
            params.append(part)
    if filters:
        clauses.append(where(filters, filter_logic))
    condition = " AND ".join(clauses)
    if sort_by == "sequence_id":
        direction = "DESC" if sort_order == "desc" else "ASC"
        order = f"ORDER BY s.sequence_id {direction}, s.rowid {direction}"
    else:
        key = id_text(f"s.{sort_by}") if sort_by in ("span_id", "trace_id") else f"s.{sort_by}"
        order = order_by(key, sort_order, "s.sequence_id, s.rowid")
    rows = conn.execute(
        f"SELECT {SPAN_COLUMNS} FROM spans s JOIN rollouts r ON r.rid = s.rid JOIN attempts a ON a.aid = s.aid"
        f" WHERE {condition} {order}{limit_clause(limit, offset)}",
        params,
    ).fetchall()
    if limit == -1 and offset == 0:
        total = len(rows)
    else:
        total = conn.execute(f"SELECT count(*) FROM spans s WHERE {condition}", params).fetchone()[0]
    wanted = {r[9] for r in rows if r[9] is not None}
    bodies = refs.resolve(conn, wanted) if wanted else refs.bodies
    return PaginatedResult([codec.span_from_row(r, bodies) for r in rows], total, limit, offset)
