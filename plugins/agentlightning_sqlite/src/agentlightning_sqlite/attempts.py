"""SQL of attempts (the ``attempts`` table): new attempts, dequeue, status changes and what
they mean for their rollout and worker."""

from __future__ import annotations

import time
from pathlib import Path
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
from agentlightning_sqlite import resources, rollouts, workers
from agentlightning_sqlite.sql import SQLITE, Conn, set_fields

__all__ = ["apply_status", "dequeue", "latest", "new", "query", "row", "start", "update"]


def new(
    conn: Conn, now: float, rid: int, rollout: Rollout, previous: int, worker_id: str | None
) -> AttemptedRollout:
    """Create attempt ``previous + 1`` of a rollout and move the rollout accordingly."""
    # A new attempt (re)starts its rollout (never a terminal one: callers checked); a
    # rollout without resources takes the latest ones (looked up in the same statement).
    rollout.status = RolloutStatus.PREPARING
    rollout.end_time = None
    rollout.resources_id = conn.execute(
        "UPDATE rollouts SET attempt_count = ?, status = 'preparing', end_time = NULL, queue_seq = NULL,"
        f" resources_id = coalesce(?, ({resources.LATEST_ID}))"
        " WHERE rid = ? RETURNING resources_id",
        (previous + 1, rollout.resources_id, rid),
    ).fetchone()[0]
    attempt = Attempt(
        rollout_id=rollout.rollout_id,
        attempt_id=policy.new_attempt_id(),
        sequence_id=previous + 1,
        start_time=now,
        worker_id=worker_id,
        resources_id=rollout.resources_id,
    )
    conn.execute(
        "INSERT INTO attempts (rid, attempt_id, sequence_id, status, start_time, worker_id, metadata,"
        " resources_id) VALUES (?, ?, ?, ?, ?, ?, '{}', ?)",
        (
            rid,
            attempt.attempt_id,
            attempt.sequence_id,
            str(attempt.status),
            now,
            worker_id,
            rollout.resources_id,
        ),
    )
    if worker_id is not None:
        workers.took(conn, now, worker_id, rollout.rollout_id, attempt.attempt_id)
    return AttemptedRollout(rollout=rollout, attempt=attempt)


def dequeue(conn: Conn, limit: int, worker_id: str | None) -> list[AttemptedRollout]:
    """Up to ``limit`` queued rollouts, oldest first, each with its next attempt."""
    rows = conn.execute(
        f"SELECT {ROLLOUT_COLUMNS}, r.attempt_count FROM rollouts r"
        " WHERE r.queue_seq IS NOT NULL ORDER BY r.queue_seq LIMIT ?",
        (limit,),
    ).fetchall()
    now = time.time()
    if not rows and worker_id is not None:
        workers.dequeued_nothing(conn, now, worker_id)
    return [new(conn, now, r[0], rollout_from_row(r), r[10], worker_id) for r in rows]


def start(conn: Conn, rollout_id: str, worker_id: str | None, path: Path) -> AttemptedRollout:
    """The rollout's next attempt outside the queue (``start_attempt``)."""
    found = rollouts.row(conn, rollout_id, path, ", r.attempt_count")
    rollout = rollout_from_row(found)
    policy.check_can_start_attempt(rollout)
    return new(conn, time.time(), found[0], rollout, found[10], worker_id)


def _latest_row(conn: Conn, rid: int) -> Any:
    return conn.execute(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN rollouts r ON r.rid = a.rid"
        " WHERE a.rid = ? ORDER BY a.sequence_id DESC LIMIT 1",
        (rid,),
    ).fetchone()


def row(conn: Conn, rollout_id: str, attempt_id: str, path: Path) -> tuple[Any, ...]:
    """The attempt's :data:`ATTEMPT_COLUMNS` (``"latest"``: the latest attempt's)."""
    if attempt_id == "latest":
        found = _latest_row(conn, rollouts.row(conn, rollout_id, path)[0])
        if found is None:
            raise AttemptNotFoundError(
                f"Rollout {rollout_id!r} has no attempts yet, so it has no 'latest' attempt"
            )
        return tuple(found)
    found = conn.execute(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN rollouts r ON r.rid = a.rid"
        " WHERE a.attempt_id = ? AND r.rollout_id = ?",
        (attempt_id, rollout_id),
    ).fetchone()
    if found is None:
        rollouts.row(conn, rollout_id, path)  # an unknown rollout is reported as such
        raise AttemptNotFoundError(f"Attempt {attempt_id!r} not found in rollout {rollout_id!r}")
    return tuple(found)


def latest(conn: Conn, rollout_id: str, path: Path) -> Attempt | None:
    found = _latest_row(conn, rollouts.row(conn, rollout_id, path)[0])
    return attempt_from_row(found) if found is not None else None


def query(
    conn: Conn, rollout_id: str, path: Path, sort_by: str, sort_order: SortOrder, limit: int, offset: int
) -> PaginatedResult[Attempt]:
    """Attempts of a rollout for the (checked) arguments of ``query_attempts``."""
    rid = rollouts.row(conn, rollout_id, path)[0]
    total = conn.execute("SELECT count(*) FROM attempts WHERE rid = ?", (rid,)).fetchone()[0]
    rows = conn.execute(
        f"SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN rollouts r ON r.rid = a.rid WHERE a.rid = ? "
        f"{order_by(SQLITE, 'a.' + sort_by, sort_order, 'a.sequence_id')}{limit_clause(SQLITE, limit, offset)}",
        (rid,),
    ).fetchall()
    return PaginatedResult([attempt_from_row(r) for r in rows], total, limit, offset)


def apply_status(conn: Conn, aid: int, rid: int, attempt: Attempt, status: AttemptStatus, now: float) -> bool:
    """Set an attempt's status and carry the consequence to its rollout if it is the latest.

    Returns True when the rollout became terminal.
    """
    unchanged = status is attempt.status
    attempt.status = status
    attempt.end_time = policy.end_time_for(status, attempt.end_time, now)
    conn.execute(
        "UPDATE attempts SET status = ?, end_time = ? WHERE aid = ?", (str(status), attempt.end_time, aid)
    )
    if unchanged:
        return False
    if status in TERMINAL_ATTEMPT_STATUSES and attempt.worker_id is not None:
        workers.released(conn, now, attempt.worker_id, attempt.attempt_id)
    found = conn.execute(
        f"SELECT {ROLLOUT_COLUMNS}, r.attempt_count FROM rollouts r WHERE r.rid = ?", (rid,)
    ).fetchone()
    if found[10] != attempt.sequence_id:
        return False  # an older attempt never changes the rollout
    rollout = rollout_from_row(found)
    new_status = policy.rollout_status_for_attempt(rollout, attempt)
    if new_status is None:
        return False
    return rollouts.set_status(conn, rid, rollout, new_status, now)


def update(
    conn: Conn,
    rollout_id: str,
    attempt_id: str,
    path: Path,
    status: AttemptStatus | None,
    worker_id: str | Unset | None,
    last_heartbeat_time: float | Unset,
    metadata: dict[str, Any] | Unset,
    reward: float | Unset | None,
) -> tuple[Attempt, bool]:
    """``update_attempt`` on checked arguments; True if the rollout became terminal."""
    found = row(conn, rollout_id, attempt_id, path)
    aid, rid, attempt = found[9], found[10], attempt_from_row(found)
    if not isinstance(worker_id, Unset) and worker_id != attempt.worker_id:
        workers.hand_over(conn, attempt, worker_id)
    set_fields(
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
        terminal = apply_status(conn, aid, rid, attempt, status, time.time())
    return attempt, terminal
