"""SQL of spans (the ``span_pages`` and ``span_resources`` tables): batches stored as pages
(codec.py) with sequence ids and heartbeats, sequence id allocation, queries."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from itertools import count, repeat
from operator import itemgetter
from typing import Any

import attrs

from agentlightning_core import AttemptNotFoundError, Span
from agentlightning_core.store import policy
from agentlightning_core.store.base import PaginatedResult
from agentlightning_core.store.sql import (
    SpanQuery,
    attempt_from_row,
    dumps,
    loads,
    span_body,
    span_from_row,
)
from agentlightning_core.types import Attempt
from agentlightning_postgres import attempts, codec, rollouts
from agentlightning_postgres.sql import Conn, Statement, all_rows, one, rollback_on_error

__all__ = ["ResourceRefs", "add", "allocate_sequence_ids", "query"]

# The write of a batch is one statement: the duplicate check of each new page (the attempt's
# stored span ids among the page's, which PostgreSQL hashes: one pass over the stored ids), then
# the pages, heartbeats and rollout totals, each written only when no duplicate was found; it
# returns the duplicates.
_DUPLICATES = (
    "SELECT %s::bigint AS aid, q FROM (SELECT unnest(span_ids) AS q FROM span_pages WHERE rid = %s AND aid = %s) s"
    " WHERE q IN (SELECT unnest({ids}))"
)
_NONE_FOUND = " AND NOT EXISTS (SELECT FROM d)"
_HEARTBEAT = "UPDATE attempts SET last_heartbeat_time = %s WHERE aid = %s" + _NONE_FOUND
_TOTALS = (
    "UPDATE rollouts SET next_span_seq = %s, span_count = span_count + %s, span_bytes = span_bytes + %s"
    " WHERE rid = %s" + _NONE_FOUND
)
_INSERT_PAGES = (
    "INSERT INTO span_pages (rid, aid, first_seq, span_ids, body) SELECT * FROM (VALUES {values}) v"
    " WHERE NOT EXISTS (SELECT FROM d)"
)
_PAGE_VALUES = "(%s::bigint, %s::bigint, %s::bigint, {ids}, %s::bytea)"
_SEPARATOR = "\x1f"  # ASCII's unit separator, chr(31)
_PAGES = (
    "SELECT a.attempt_id, p.span_ids, p.body FROM span_pages p JOIN attempts a ON a.aid = p.aid"
    " WHERE p.rid = %s{attempt} ORDER BY p.first_seq"
)


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
    and the sequence ids hold across processes. The spans of each attempt become pages
    (codec.py). Two round trips: the locks, then the pages, heartbeats and rollout totals in
    one statement with ``COMMIT``. That statement checks for spans stored already and writes
    nothing when it finds some; the batch is then built again without them (a retried batch).
    """
    groups: dict[tuple[str, str], list[Span]] = {}
    for span in spans:
        groups.setdefault((span.rollout_id, span.attempt_id), []).append(span)
    keys = sorted(groups)
    stored_already: dict[int, set[str]] = {}
    while True:
        stored, found = await _add_once(conn, groups, keys, stored_already, refs, where_, channel)
        if not found:
            return stored
        for aid, span_id in found:
            stored_already.setdefault(aid, set()).add(span_id)


async def _add_once(
    conn: Conn,
    groups: dict[tuple[str, str], list[Span]],
    keys: list[tuple[str, str]],
    stored_already: dict[int, set[str]],
    refs: ResourceRefs,
    where_: str,
    channel: str,
) -> tuple[list[Span], list[tuple[int, str]]]:
    """One try of :func:`add`: the spans stored, or the duplicates found (then nothing but
    status changes was written)."""
    now = time.time()
    async with rollback_on_error(conn):
        async with conn.pipeline():
            await conn.execute(b"BEGIN")
            sent = [
                await attempts.send_locked(conn, rollout_id, attempt_id) for rollout_id, attempt_id in keys
            ]
        stored: list[Span] = []
        pages: dict[int, _Page] = {}  # by attempt: "latest" and its id may both name one
        rollout_totals: dict[int, list[int]] = {}
        heartbeats: list[tuple[int, int, Attempt, tuple[Any, ...] | None]] = []
        body_of, next_sequence_id = span_body, policy.next_sequence_id
        last_resource: dict[str, Any] | None = None
        last_ref: int | None = None
        for (rollout_id, attempt_id), locked_cur in zip(keys, sent, strict=True):
            arow, rrow = await attempts.locked(conn, rollout_id, attempt_id, where_, locked_cur)
            aid, rid, attempt = arow[9], arow[10], attempt_from_row(arow)
            page = pages.get(aid)
            if page is None:
                page = pages[aid] = _Page(rid, aid, set(stored_already.get(aid, ())))
                # only the latest attempt changes its rollout, so the row read under the lock is current
                heartbeats.append((aid, rid, attempt, rrow))
            seen = page.seen
            totals = rollout_totals.get(rid)
            if totals is None:
                totals = rollout_totals[rid] = [await _next_span_seq(conn, rid, rrow), 0]
            for span in groups[rollout_id, attempt_id]:
                if span.span_id in seen:
                    continue  # a duplicate: stored once only
                seen.add(span.span_id)
                seq, totals[0] = next_sequence_id(totals[0], span.sequence_id)
                if seq != span.sequence_id:  # allocated: on a copy; the caller's span stays as given
                    span = span.with_sequence_id(seq)
                resource = span.resource
                if not resource:
                    ref = None
                elif resource != last_resource:  # spans of a batch mostly share their OTel resource
                    ref = last_ref = await refs.ref(conn, resource)
                    last_resource = resource
                else:
                    ref = last_ref
                page.ids.append(span.span_id)
                page.columns.append(
                    [seq, span.trace_id, span.parent_id, span.name, span.start_time, span.end_time, ref]
                )
                page.bodies.append(body_of(span))
                totals[1] += 1
                stored.append(span)
        checks: list[str] = []
        values: list[str] = []
        check_params: list[Any] = []
        page_params: list[Any] = []
        bytes_of: dict[int, int] = {}
        for page in pages.values():
            for first in range(0, len(page.ids), codec.PAGE_SPANS):
                ids = page.ids[first : first + codec.PAGE_SPANS]
                columns = page.columns[first : first + codec.PAGE_SPANS]
                body = codec.encode_page(columns, page.bodies[first : first + codec.PAGE_SPANS])
                ids_sql, ids_value = _id_array(ids)
                checks.append(_DUPLICATES.format(ids=ids_sql))
                check_params += (page.aid, page.rid, page.aid, ids_value)
                values.append(_PAGE_VALUES.format(ids=ids_sql))
                page_params += (page.rid, page.aid, min(c[0] for c in columns), ids_value, body)
                bytes_of[page.rid] = bytes_of.get(page.rid, 0) + len(body) + sum(map(len, ids))
        async with conn.pipeline():
            writes: list[Statement] = []
            for aid, rid, attempt, rrow in heartbeats:
                writes.append((_HEARTBEAT, (now, aid)))
                attempt.last_heartbeat_time = now
                new_status = policy.attempt_status_after_heartbeat(attempt.status)
                if new_status is not attempt.status:
                    await attempts.apply_status(conn, aid, rid, attempt, new_status, now, channel, rrow)
            for rid, (next_seq, added) in rollout_totals.items():
                writes.append((_TOTALS, (next_seq, added, bytes_of.get(rid, 0), rid)))
            if values:
                writes.append((_INSERT_PAGES.format(values=", ".join(values)), tuple(page_params)))
            duplicates = (
                "SELECT NULL::bigint AS aid, NULL::text AS q WHERE false"
                if not checks
                else " UNION ALL ".join(checks)
            )
            ctes = ", ".join(f"w{i} AS ({query})" for i, (query, _) in enumerate(writes))
            cur = await conn.execute(
                f"WITH d AS ({duplicates}), {ctes} SELECT aid, q FROM d",
                (*check_params, *(p for _, ps in writes for p in ps)),
            )
            await conn.execute(b"COMMIT")
        found = [(int(aid), str(q)) for aid, q in await cur.fetchall()]
    return stored, found


def _id_array(ids: list[str]) -> tuple[str, str | list[str]]:
    """SQL of a ``text[]`` of span ids and its parameter: the ids joined by a separator, which
    takes the driver ~100x less time than a list (a list if an id holds the separator)."""
    joined = _SEPARATOR.join(ids)
    if joined.count(_SEPARATOR) == len(ids) - 1:
        return "string_to_array(%s, chr(31))", joined
    return "%s::text[]", ids


@attrs.define
class _Page:
    """The new spans of one attempt in a batch, and the span ids it holds already."""

    rid: int
    aid: int
    seen: set[str] = attrs.Factory(set)
    ids: list[str] = attrs.Factory(list)
    columns: list[codec.PageColumns] = attrs.Factory(list)
    bodies: list[dict[str, Any]] = attrs.Factory(list)


async def _next_span_seq(conn: Conn, rid: int, rollout_row: tuple[Any, ...] | None) -> int:
    if rollout_row is not None:
        return int(rollout_row[11])
    found = await one(conn, "SELECT next_span_seq FROM rollouts WHERE rid = %s", (rid,))
    assert found is not None
    return int(found[0])


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
    """Spans for the checked arguments of ``query_spans``: the rollout's pages (or its
    attempt's) are read and filtered, sorted and paged here, as the SQL of the other stores
    does (``ORDER BY`` the key with NULLs last, then ``sequence_id``, then stored order)."""
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
    rows = await all_rows(
        conn,
        _PAGES.format(attempt="" if aid is None else " AND p.aid = %s"),
        (rid,) if aid is None else (rid, aid),
    )
    match = _matcher(spec)
    found: list[_Found] = []
    for page, (found_attempt_id, ids, data) in enumerate(rows):
        columns = codec.page_columns(data)
        spans = zip([c[0] for c in columns], repeat(found_attempt_id), ids, columns, repeat(page), count())
        found.extend(spans if match is None else (f for f in spans if match(f[2], f[3])))
    found = _sorted(found, spec.sort_by, spec.sort_order == "desc")
    chosen = found[spec.offset :] if spec.limit == -1 else found[spec.offset : spec.offset + spec.limit]
    bodies = {page: codec.page_bodies(rows[page][2]) for page in {f[4] for f in chosen}}
    wanted = {f[3][6] for f in chosen if f[3][6] is not None}
    resources = await refs.resolve(conn, wanted) if wanted else refs.bodies
    return PaginatedResult(
        [
            span_from_row(
                (rollout_id, a, c[0], c[1], s, c[2], c[3], c[4], c[5], c[6], bodies[page][index]),
                resources,
                _as_body,
            )
            for _, a, s, c, page, index in chosen
        ],
        len(found),
        spec.limit,
        spec.offset,
    )


_Found = tuple[int, str, str, codec.PageColumns, int, int]
"""A span read from a page: its sequence id, attempt id, span id, page columns, page and place
in it."""
_FIELD_COLUMN = {"span_id": None, "trace_id": 1, "parent_id": 2, "name": 3}
"""Where a filtered field is: a page column, or None (the span id)."""
_SORT_COLUMN = {"start_time": 4, "end_time": 5, "trace_id": 1, "name": 3}


def _matcher(spec: SpanQuery) -> Callable[[str, codec.PageColumns], bool] | None:
    """The filters of ``spec`` as a test of a span's id and page columns (None: no filter).

    As in SQL, a missing value (a root span's parent id) matches no filter.
    """
    tests: list[tuple[int | None, str, bool]] = []  # (page column or None: the span id, text, exact)
    for field, (exact, part) in spec.fields.items():
        if exact is not None:
            tests.append((_FIELD_COLUMN[field], exact, True))
        if part is not None:
            tests.append((_FIELD_COLUMN[field], part, False))
    if not tests:
        return None
    combine = all if spec.filter_logic == "and" else any

    def match(span_id: str, cols: codec.PageColumns) -> bool:
        values = ((span_id if i is None else cols[i], text, exact) for i, text, exact in tests)
        return combine(v is not None and (v == text if exact else text in v) for v, text, exact in values)

    return match


def _sorted(found: list[_Found], sort_by: str, desc: bool) -> list[_Found]:
    """``found`` (in stored order) in the order of ``sort_by`` as the SQL stores sort it."""
    by_sequence_id = itemgetter(0)
    if sort_by == "sequence_id":  # ORDER BY sequence_id, then stored order, both ways
        if desc:
            found.reverse()
        found.sort(key=by_sequence_id, reverse=desc)
        return found
    found.sort(key=by_sequence_id)  # ties: ascending sequence id, then stored order
    if sort_by == "span_id":
        found.sort(key=itemgetter(2), reverse=desc)
        return found
    column = _SORT_COLUMN[sort_by]
    present = [f for f in found if f[3][column] is not None]
    present.sort(key=lambda f: _sort_value(f[3][column]), reverse=desc)
    return present + [f for f in found if f[3][column] is None]  # NULLs last both ways


def _sort_value(value: Any) -> Any:
    """PostgreSQL's order of a value: NaN after every other number."""
    if isinstance(value, float):
        return (1, 0.0) if value != value else (0, value)
    return value


def _as_body(body: Any) -> dict[str, Any]:
    """The body of a span read from a page (decoded already)."""
    result: dict[str, Any] = body
    return result
