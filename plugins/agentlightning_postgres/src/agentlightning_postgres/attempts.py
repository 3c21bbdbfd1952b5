"""SQL of attempts (the ``attempts`` table): new attempts, dequeue, status changes and what
they mean for their rollout and worker."""

from __future__ import annotations

import time
from typing import Any

import attrs
import psycopg

from agentlightning_core import AttemptNotFoundError
from agentlightning_core.store import policy
from agentlightning_core.store.base import PaginatedResult, SortOrder, Unset
from agentlightning_core.store.sql import (
    ATTEMPT_COLUMNS,
    ROLLOUT_COLUMNS,
    attempt_from_row,
    limit_clause,
    order_by,
    rollout_from_row,
)
from agentlightning_core.types import (
    TERMINAL_ATTEMPT_STATUSES,
    Attempt,
    AttemptedRollout,
    AttemptStatus,
    Rollout,
    RolloutStatus,
)
from agentlightning_postgres import resources, rollouts, workers
from agentlightning_postgres.sql import POSTGRES, Conn, Statement, all_rows, execute_together, one, set_fields

__all__ = [
    "DEQUEUE_CHUNK",
    "Change",
    "apply_status",
    "dequeue",
    "dequeue_each",
    "latest",
    "locked",
    "new",
    "query",
    "row",
    "row_in",
    "send_locked",
    "start",
    "status_writes",
    "update",
    "update_each",
]

# The rollout (re)starts and its attempt is stored in one statement; a rollout without
# resources takes the latest ones.
_NEW = (
    "WITH r AS (UPDATE rollouts SET attempt_count = %s, status = 'preparing', end_time = NULL, queue_seq = NULL,"
    f" resources_id = coalesce(resources_id, ({resources.LATEST_ID})) WHERE rid = %s RETURNING resources_id)"
    " INSERT INTO attempts (rid, attempt_id, sequence_id, status, start_time, worker_id, metadata, resources_id)"
    " SELECT %s, %s, %s, %s, %s, %s, '{}', r.resources_id FROM r RETURNING resources_id"
)
# An attempt and its rollout, both locked (so both are read as they are once the lock is
# held: a change committed while this waited is seen), by attempt id or the latest attempt.
_LOCKED_COLUMNS = f"SELECT {ATTEMPT_COLUMNS}, {ROLLOUT_COLUMNS}, r.attempt_count, r.next_span_seq"
_LOCKED_SELECT = (
    _LOCKED_COLUMNS + " FROM rollouts r JOIN attempts a ON a.rid = r.rid WHERE r.rollout_id = %s AND "
)
_LOCKED = {
    False: _LOCKED_SELECT + "a.attempt_id = %s FOR UPDATE OF r, a",
    True: _LOCKED_SELECT + "a.sequence_id = r.attempt_count AND %s = 'latest' FOR UPDATE OF r, a",
}
# The same for several (rollout id, attempt id) pairs, locked in rollout id order as span
# batches lock them (so neither deadlocks the other); each row ends with its pair's position.
_LOCKED_EACH = (
    _LOCKED_COLUMNS
    + ", k.i FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY AS k(rollout_id, attempt_id, i)"
    " JOIN rollouts r ON r.rollout_id = k.rollout_id JOIN attempts a ON a.rid = r.rid AND (a.attempt_id ="
    " k.attempt_id OR (k.attempt_id = 'latest' AND a.sequence_id = r.attempt_count))"
    " ORDER BY r.rollout_id FOR UPDATE OF r, a"
)
# Dequeue in one statement (autocommit makes it a transaction of its own): lock the oldest
# queued rollouts, skipping rows another transaction is dequeuing rather than waiting for them,
# restart each (a rollout without resources takes the latest ones), insert its attempt (ids
# come from the caller, in queue order) and, for a named worker, record it busy with the last
# one or, when the queue was empty, that it asked.
_DEQUEUE_CTES = (
    "WITH q AS (SELECT rid, queue_seq FROM rollouts WHERE queue_seq IS NOT NULL ORDER BY queue_seq"
    " LIMIT %(limit)s FOR UPDATE SKIP LOCKED),"
    " u AS (UPDATE rollouts r SET attempt_count = r.attempt_count + 1, status = 'preparing', end_time = NULL,"
    f" queue_seq = NULL, resources_id = coalesce(r.resources_id, ({resources.LATEST_ID})) FROM q"
    f" WHERE r.rid = q.rid RETURNING {ROLLOUT_COLUMNS}, r.attempt_count, q.queue_seq AS taken_seq),"
    " n AS (SELECT u.*, (%(ids)s::text[])[i] AS attempt_id, (%(workers)s::text[])[i] AS worker_id"
    " FROM (SELECT u.*, row_number() OVER (ORDER BY taken_seq) AS i FROM u) u),"
    " a AS (INSERT INTO attempts (rid, attempt_id, sequence_id, status, start_time, worker_id, metadata,"
    " resources_id) SELECT rid, attempt_id, attempt_count, %(status)s, %(now)s, worker_id, '{}', resources_id"
    " FROM n)"
)
# Each named worker is busy with the last rollout it took or, if it took none, asked.
_DEQUEUE_WORKER = (
    ", w AS (INSERT INTO workers (worker_id, status, last_dequeue_time, last_busy_time, current_rollout_id,"
    " current_attempt_id) SELECT DISTINCT ON (worker_id) worker_id, 'busy', %(now)s, %(now)s, rollout_id,"
    " attempt_id FROM n WHERE worker_id IS NOT NULL ORDER BY worker_id, taken_seq DESC"
    " ON CONFLICT (worker_id) DO UPDATE SET status = 'busy',"
    " last_dequeue_time = excluded.last_dequeue_time, last_busy_time = excluded.last_busy_time,"
    " current_rollout_id = excluded.current_rollout_id, current_attempt_id = excluded.current_attempt_id),"
    " e AS (INSERT INTO workers (worker_id, status, last_dequeue_time) SELECT DISTINCT k, 'unknown', %(now)s"
    " FROM unnest(%(workers)s::text[]) k WHERE k IS NOT NULL AND k NOT IN"
    " (SELECT worker_id FROM n WHERE worker_id IS NOT NULL)"
    " ON CONFLICT (worker_id) DO UPDATE SET last_dequeue_time = excluded.last_dequeue_time)"
)
_DEQUEUE_SELECT = " SELECT * FROM n ORDER BY taken_seq"
DEQUEUE_CHUNK = 256
"""Most rollouts one dequeue statement takes (it carries an attempt id for each)."""
_DEQUEUE = {
    False: _DEQUEUE_CTES + _DEQUEUE_SELECT,
    True: _DEQUEUE_CTES + _DEQUEUE_WORKER + _DEQUEUE_SELECT,
}


async def new(
    conn: Conn, now: float, rid: int, rollout: Rollout, previous: int, worker_id: str | None
) -> AttemptedRollout:
    """Create attempt ``previous + 1`` of a (locked) rollout and move the rollout accordingly."""
    attempt_id = policy.new_attempt_id()
    found = await one(
        conn,
        _NEW,
        (previous + 1, rid, rid, attempt_id, previous + 1, str(AttemptStatus.PREPARING), now, worker_id),
    )
    assert found is not None
    rollout.status = RolloutStatus.PREPARING
    rollout.end_time = None
    rollout.resources_id = found[0]
    attempt = Attempt(
        rollout_id=rollout.rollout_id,
        attempt_id=attempt_id,
        sequence_id=previous + 1,
        start_time=now,
        worker_id=worker_id,
        resources_id=rollout.resources_id,
    )
    if worker_id is not None:
        await workers.took(conn, now, worker_id, rollout.rollout_id, attempt.attempt_id)
    return AttemptedRollout(rollout=rollout, attempt=attempt)


async def dequeue(conn: Conn, limit: int, worker_id: str | None) -> list[AttemptedRollout]:
    """Up to ``limit`` queued rollouts, oldest first, each with its next attempt (created in
    the statement that locked the rollout, so no two callers get the same one). Run it in
    autocommit mode: each statement is its own transaction, taking up to :data:`DEQUEUE_CHUNK`
    rollouts."""
    out: list[AttemptedRollout] = []
    while len(out) < limit:
        want = min(limit - len(out), DEQUEUE_CHUNK)
        got = await _dequeue_chunk(conn, [worker_id] * want, retry=not out)
        out += got
        if len(got) < want:
            break
    return out


async def dequeue_each(conn: Conn, workers: list[str | None]) -> list[AttemptedRollout | None]:
    """One queued rollout (or None) for each of several ``dequeue_rollout`` callers, one
    statement for them all (at most :data:`DEQUEUE_CHUNK`): the oldest goes to the first."""
    got: list[AttemptedRollout | None] = list(await _dequeue_chunk(conn, workers, retry=True))
    return got + [None] * (len(workers) - len(got))


async def _dequeue_chunk(conn: Conn, workers: list[str | None], *, retry: bool) -> list[AttemptedRollout]:
    """Queued rollouts for ``workers`` (the i-th rollout's attempt names the i-th worker).

    ``retry``: when nothing is found, look once more. The statement's snapshot may hold only
    rollouts that faster dequeuers took meanwhile (skipped) and miss ones enqueued since.
    """
    now = time.time()
    params = {
        "limit": len(workers),
        "ids": [policy.new_attempt_id() for _ in workers],
        "workers": workers,
        "status": str(AttemptStatus.PREPARING),
        "now": now,
    }
    query = _DEQUEUE[any(w is not None for w in workers)]
    rows = await all_rows(conn, query, params)
    if not rows and retry:
        params["now"] = now = time.time()
        rows = await all_rows(conn, query, params)
    out = []
    for r in rows:
        rollout = rollout_from_row(r)
        attempt = Attempt(
            rollout_id=rollout.rollout_id,
            attempt_id=r[13],
            sequence_id=r[10],
            start_time=now,
            worker_id=r[14],
            resources_id=rollout.resources_id,
        )
        out.append(AttemptedRollout(rollout=rollout, attempt=attempt))
    return out


async def start(conn: Conn, rollout_id: str, worker_id: str | None, where_: str) -> AttemptedRollout:
    """The rollout's next attempt outside the queue (``start_attempt``)."""
    found = await rollouts.row(conn, rollout_id, where_, ", r.attempt_count", lock=True)
    rollout = rollout_from_row(found)
    policy.check_can_start_attempt(rollout)
    return await new(conn, time.time(), found[0], rollout, found[10], worker_id)


async def _latest_row(conn: Conn, rid: int) -> tuple[Any, ...] | None:
    return await one(
        conn,
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN rollouts r ON r.rid = a.rid"
        " WHERE a.rid = %s ORDER BY a.sequence_id DESC LIMIT 1",
        (rid,),
    )


async def row(
    conn: Conn, rollout_id: str, attempt_id: str, where_: str, *, lock: bool = False
) -> tuple[Any, ...]:
    """The attempt's :data:`ATTEMPT_COLUMNS` (``"latest"``: the latest attempt's).

    ``lock``: first lock the rollout's row, which every change to the rollout or its attempts takes.
    """
    rid = (await rollouts.row(conn, rollout_id, where_, lock=lock))[0]
    return await row_in(conn, rid, rollout_id, attempt_id)


async def row_in(conn: Conn, rid: int, rollout_id: str, attempt_id: str) -> tuple[Any, ...]:
    """:func:`row` of a rollout whose row key is known."""
    if attempt_id == "latest":
        found = await _latest_row(conn, rid)
        if found is None:
            raise AttemptNotFoundError(
                f"Rollout {rollout_id!r} has no attempts yet, so it has no 'latest' attempt"
            )
        return found
    found = await one(
        conn,
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN rollouts r ON r.rid = a.rid"
        " WHERE a.rid = %s AND a.attempt_id = %s",
        (rid, attempt_id),
    )
    if found is None:
        raise AttemptNotFoundError(f"Attempt {attempt_id!r} not found in rollout {rollout_id!r}")
    return found


async def send_locked(conn: Conn, rollout_id: str, attempt_id: str) -> psycopg.AsyncCursor[tuple[Any, ...]]:
    """Send the statement of :func:`locked` (in pipeline mode, its result is read later)."""
    return await conn.execute(_LOCKED[attempt_id == "latest"], (rollout_id, attempt_id))


async def locked(
    conn: Conn,
    rollout_id: str,
    attempt_id: str,
    where_: str,
    sent: psycopg.AsyncCursor[tuple[Any, ...]] | None = None,
) -> tuple[tuple[Any, ...], tuple[Any, ...] | None]:
    """Lock the rollout and the attempt (``"latest"``: the latest one) in one statement; returns
    the attempt's :data:`ATTEMPT_COLUMNS` and the rollout's :data:`ROLLOUT_COLUMNS` with
    ``attempt_count`` and ``next_span_seq``, as they are under the lock.

    When the statement finds nothing (a missing rollout or attempt, or a new latest attempt
    created while this waited for the lock) the attempt is looked up as :func:`row` does, which
    names what is missing; the rollout's row is then None. ``sent``: the cursor of
    :func:`send_locked`, when the statement was sent already.
    """
    found = await (sent or await send_locked(conn, rollout_id, attempt_id)).fetchone()
    if found is None:
        return await row(conn, rollout_id, attempt_id, where_, lock=True), None
    return found, found[13:]


async def latest(conn: Conn, rollout_id: str, where_: str) -> Attempt | None:
    found = await _latest_row(conn, (await rollouts.row(conn, rollout_id, where_))[0])
    return attempt_from_row(found) if found is not None else None


async def query(
    conn: Conn, rollout_id: str, where_: str, sort_by: str, sort_order: SortOrder, limit: int, offset: int
) -> PaginatedResult[Attempt]:
    """Attempts of a rollout for the (checked) arguments of ``query_attempts``."""
    rid = (await rollouts.row(conn, rollout_id, where_))[0]
    counted = await one(conn, "SELECT count(*) FROM attempts WHERE rid = %s", (rid,))
    rows = await all_rows(
        conn,
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN rollouts r ON r.rid = a.rid WHERE a.rid = %s "
        f"{order_by(POSTGRES, 'a.' + sort_by, sort_order, 'a.sequence_id')}{limit_clause(POSTGRES, limit, offset)}",
        (rid,),
    )
    total = int(counted[0]) if counted is not None else 0
    return PaginatedResult([attempt_from_row(r) for r in rows], total, limit, offset)


async def apply_status(
    conn: Conn,
    aid: int,
    rid: int,
    attempt: Attempt,
    status: AttemptStatus,
    now: float,
    channel: str,
    rollout_row: tuple[Any, ...] | None = None,
) -> bool:
    """Set an attempt's status and carry the consequence to its rollout if it is the latest
    (the caller holds the rollout's row lock). Returns True when the rollout became terminal.

    ``rollout_row``: the rollout's :data:`ROLLOUT_COLUMNS` and ``attempt_count`` as read under
    that lock (read here when None).
    """
    writes, terminal = await status_writes(conn, aid, rid, attempt, status, now, channel, rollout_row)
    await execute_together(conn, writes)
    return terminal


async def status_writes(
    conn: Conn,
    aid: int,
    rid: int,
    attempt: Attempt,
    status: AttemptStatus,
    now: float,
    channel: str,
    rollout_row: tuple[Any, ...] | None = None,
) -> tuple[list[Statement], bool]:
    """:func:`apply_status`'s decision: its writes (``attempt`` is updated now) and whether
    they make the rollout terminal."""
    unchanged = status is attempt.status
    attempt.status = status
    attempt.end_time = policy.end_time_for(status, attempt.end_time, now)
    # Decide everything first, then write the attempt, its worker and its rollout at once.
    writes: list[Statement] = [
        (
            "UPDATE attempts SET status = %s, end_time = %s WHERE aid = %s",
            (str(status), attempt.end_time, aid),
        )
    ]
    terminal = False
    if not unchanged:
        if status in TERMINAL_ATTEMPT_STATUSES and attempt.worker_id is not None:
            writes.append(workers.released_statement(now, attempt.worker_id, attempt.attempt_id))
        found = rollout_row or await one(
            conn, f"SELECT {ROLLOUT_COLUMNS}, r.attempt_count FROM rollouts r WHERE r.rid = %s", (rid,)
        )
        assert found is not None
        if found[10] == attempt.sequence_id:  # an older attempt never changes the rollout
            rollout = rollout_from_row(found)
            new_status = policy.rollout_status_for_attempt(rollout, attempt)
            if new_status is not None:
                statement, terminal = rollouts.status_statement(rid, rollout, new_status, now, channel)
                writes.append(statement)
    return writes, terminal


@attrs.frozen
class Change:
    """The checked arguments of one ``update_attempt`` call."""

    rollout_id: str
    attempt_id: str
    status: AttemptStatus | None
    worker_id: str | Unset | None
    last_heartbeat_time: float | Unset
    metadata: dict[str, Any] | Unset
    reward: float | Unset | None


async def update_each(conn: Conn, changes: list[Change], where_: str, channel: str) -> list[Attempt]:
    """Several ``update_attempt`` calls (at most one per rollout) in one transaction: one
    statement locks and reads every attempt and rollout, one writes every status change
    (unless two attempts release one worker: then one statement per call). Returns the
    attempts in call order."""
    found: dict[int, tuple[Any, ...]] = {
        r[-1] - 1: r[:-1]
        for r in await all_rows(
            conn, _LOCKED_EACH, ([c.rollout_id for c in changes], [c.attempt_id for c in changes])
        )
    }
    out: list[Attempt] = []
    writes: list[list[Statement]] = []
    for i, change in enumerate(changes):
        row_ = found.get(i)
        pair = (
            await locked(conn, change.rollout_id, change.attempt_id, where_)
            if row_ is None
            else (row_, row_[13:])
        )
        attempt, _ = await update(conn, change, where_, channel, pair, writes)
        out.append(attempt)
    released = [w for w in (a.worker_id for a in out) if w is not None]
    if len(set(released)) == len(released):
        statements = [w for ws in writes for w in ws]
        if statements:
            await execute_together(conn, statements)
    else:  # each worker row may change once per statement
        for ws in writes:
            await execute_together(conn, ws)
    return out


async def update(
    conn: Conn,
    change: Change,
    where_: str,
    channel: str,
    pair: tuple[tuple[Any, ...], tuple[Any, ...] | None] | None = None,
    defer: list[list[Statement]] | None = None,
) -> tuple[Attempt, bool]:
    """``update_attempt`` on checked arguments; True if the rollout became terminal.

    ``pair``: what :func:`locked` returned, when the rows were read already; ``defer``: append
    the status change's writes there (as one list) instead of running them.
    """
    status, worker_id = change.status, change.worker_id
    last_heartbeat_time = change.last_heartbeat_time
    found, rollout_row = pair or await locked(conn, change.rollout_id, change.attempt_id, where_)
    aid, rid, attempt = found[9], found[10], attempt_from_row(found)
    if not isinstance(worker_id, Unset) and worker_id != attempt.worker_id:
        await workers.hand_over(conn, attempt, worker_id)
    await set_fields(
        conn,
        "attempts",
        "aid",
        aid,
        attempt,
        worker_id=worker_id,
        last_heartbeat_time=last_heartbeat_time,
        metadata=change.metadata,
        reward=change.reward,
    )
    if status is None and not isinstance(last_heartbeat_time, Unset):
        # an explicit heartbeat revives the attempt exactly as a span does
        revived = policy.attempt_status_after_heartbeat(attempt.status)
        status = revived if revived is not attempt.status else None
    terminal = False
    if status is not None:
        writes, terminal = await status_writes(
            conn, aid, rid, attempt, status, time.time(), channel, rollout_row
        )
        if defer is None:
            await execute_together(conn, writes)
        else:
            defer.append(writes)
    return attempt, terminal
