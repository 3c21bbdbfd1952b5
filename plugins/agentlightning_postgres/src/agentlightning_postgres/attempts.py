"""SQL of attempts (the ``attempts`` table): new attempts, dequeue, status changes and what
they mean for their rollout and worker."""

from __future__ import annotations

import time
from typing import Any

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
from agentlightning_postgres.sql import POSTGRES, Conn, all_rows, one, set_fields

__all__ = ["apply_status", "dequeue", "latest", "new", "query", "row", "row_in", "start", "update"]

# The rollout (re)starts and its attempt is stored in one statement; a rollout without
# resources takes the latest ones.
_NEW = (
    "WITH r AS (UPDATE rollouts SET attempt_count = %s, status = 'preparing', end_time = NULL, queue_seq = NULL,"
    f" resources_id = coalesce(resources_id, ({resources.LATEST_ID})) WHERE rid = %s RETURNING resources_id)"
    " INSERT INTO attempts (rid, attempt_id, sequence_id, status, start_time, worker_id, metadata, resources_id)"
    " SELECT %s, %s, %s, %s, %s, %s, '{}', r.resources_id FROM r RETURNING resources_id"
)
# Queued rollouts, oldest first; rows another transaction is dequeuing are skipped, not waited for.
_DEQUEUE = (
    f"SELECT {ROLLOUT_COLUMNS}, r.attempt_count FROM rollouts r"
    " WHERE r.queue_seq IS NOT NULL ORDER BY r.queue_seq LIMIT %s FOR UPDATE SKIP LOCKED"
)


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
    the transaction that locked the rollout, so no two callers get the same one)."""
    rows = await all_rows(conn, _DEQUEUE, (limit,))
    now = time.time()
    if not rows and worker_id is not None:
        await workers.dequeued_nothing(conn, now, worker_id)
    return [await new(conn, now, r[0], rollout_from_row(r), r[10], worker_id) for r in rows]


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
    conn: Conn, aid: int, rid: int, attempt: Attempt, status: AttemptStatus, now: float, channel: str
) -> bool:
    """Set an attempt's status and carry the consequence to its rollout if it is the latest
    (the caller holds the rollout's row lock). Returns True when the rollout became terminal.
    """
    unchanged = status is attempt.status
    attempt.status = status
    attempt.end_time = policy.end_time_for(status, attempt.end_time, now)
    await conn.execute(
        "UPDATE attempts SET status = %s, end_time = %s WHERE aid = %s", (str(status), attempt.end_time, aid)
    )
    if unchanged:
        return False
    if status in TERMINAL_ATTEMPT_STATUSES and attempt.worker_id is not None:
        await workers.released(conn, now, attempt.worker_id, attempt.attempt_id)
    found = await one(
        conn, f"SELECT {ROLLOUT_COLUMNS}, r.attempt_count FROM rollouts r WHERE r.rid = %s", (rid,)
    )
    assert found is not None
    if found[10] != attempt.sequence_id:
        return False  # an older attempt never changes the rollout
    rollout = rollout_from_row(found)
    new_status = policy.rollout_status_for_attempt(rollout, attempt)
    if new_status is None:
        return False
    return await rollouts.set_status(conn, rid, rollout, new_status, now, channel)


async def update(
    conn: Conn,
    rollout_id: str,
    attempt_id: str,
    where_: str,
    channel: str,
    status: AttemptStatus | None,
    worker_id: str | Unset | None,
    last_heartbeat_time: float | Unset,
    metadata: dict[str, Any] | Unset,
    reward: float | Unset | None,
) -> tuple[Attempt, bool]:
    """``update_attempt`` on checked arguments; True if the rollout became terminal."""
    found = await row(conn, rollout_id, attempt_id, where_, lock=True)
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
        metadata=metadata,
        reward=reward,
    )
    if status is None and not isinstance(last_heartbeat_time, Unset):
        # an explicit heartbeat revives the attempt exactly as a span does
        revived = policy.attempt_status_after_heartbeat(attempt.status)
        status = revived if revived is not attempt.status else None
    terminal = False
    if status is not None:
        terminal = await apply_status(conn, aid, rid, attempt, status, time.time(), channel)
    return attempt, terminal
