"""SQL of workers (the ``workers`` table): busy on an attempt, idle when it ends, heartbeats."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from agentlightning_core import WorkerNotFoundError
from agentlightning_core.store import policy
from agentlightning_core.store.sql import (
    WORKER_COLUMNS,
    dumps,
    worker_from_row,
)
from agentlightning_core.types import Attempt, Worker, WorkerStatus
from agentlightning_sqlite.sql import Conn

__all__ = ["dequeued_nothing", "get", "hand_over", "released", "took", "update"]


def took(conn: Conn, now: float, worker_id: str, rollout_id: str, attempt_id: str) -> None:
    """The worker is busy with an attempt (created on first sight)."""
    conn.execute(
        "INSERT INTO workers (worker_id, status, last_dequeue_time, last_busy_time, current_rollout_id,"
        " current_attempt_id) VALUES (?, 'busy', ?, ?, ?, ?) ON CONFLICT (worker_id) DO UPDATE SET"
        " status = 'busy', last_dequeue_time = excluded.last_dequeue_time,"
        " last_busy_time = excluded.last_busy_time, current_rollout_id = excluded.current_rollout_id,"
        " current_attempt_id = excluded.current_attempt_id",
        (worker_id, now, now, rollout_id, attempt_id),
    )


def released(conn: Conn, now: float, worker_id: str, attempt_id: str) -> None:
    """The worker is idle, if that attempt is still the one it is busy with."""
    conn.execute(
        "UPDATE workers SET status = 'idle', last_idle_time = ?, current_rollout_id = NULL,"
        " current_attempt_id = NULL WHERE worker_id = ? AND current_attempt_id = ?",
        (now, worker_id, attempt_id),
    )


def hand_over(conn: Conn, attempt: Attempt, worker_id: str | None) -> None:
    """An attempt changes worker: the old one is released, the new one busy while it is active."""
    now = time.time()
    if attempt.worker_id is not None:
        released(conn, now, attempt.worker_id, attempt.attempt_id)
    if worker_id is not None and attempt.status in policy.ACTIVE_ATTEMPT_STATUSES:
        took(conn, now, worker_id, attempt.rollout_id, attempt.attempt_id)


def dequeued_nothing(conn: Conn, now: float, worker_id: str) -> None:
    """A dequeue found the queue empty: the worker asked (and is known from now on)."""
    conn.execute(
        "INSERT INTO workers (worker_id, status, last_dequeue_time) VALUES (?, 'unknown', ?)"
        " ON CONFLICT (worker_id) DO UPDATE SET last_dequeue_time = excluded.last_dequeue_time",
        (worker_id, now),
    )


def get(conn: Conn, worker_id: str, path: Path) -> Worker:
    row = conn.execute(f"SELECT {WORKER_COLUMNS} FROM workers WHERE worker_id = ?", (worker_id,)).fetchone()
    if row is None:
        raise WorkerNotFoundError(f"Worker {worker_id!r} not found in the store {str(path)!r}")
    return worker_from_row(row)


def update(
    conn: Conn, worker_id: str, status: WorkerStatus | None, heartbeat_stats: Any, set_stats: bool
) -> Worker:
    """A heartbeat (creating the worker), with a new status and stats when given."""
    now = time.time()
    conn.execute(
        "INSERT INTO workers (worker_id, status) VALUES (?, 'unknown') ON CONFLICT (worker_id) DO NOTHING",
        (worker_id,),
    )
    sets = ["last_heartbeat_time = ?"]
    params: list[Any] = [now]
    if status is not None:
        sets.append("status = ?")
        params.append(str(status))
        if status is WorkerStatus.BUSY:
            sets.append("last_busy_time = ?")
            params.append(now)
        elif status is WorkerStatus.IDLE:
            sets.append("last_idle_time = ?")
            params.append(now)
    if set_stats:
        sets.append("heartbeat_stats = ?")
        params.append(dumps(heartbeat_stats) if heartbeat_stats is not None else None)
    row = conn.execute(
        f"UPDATE workers SET {', '.join(sets)} WHERE worker_id = ? RETURNING {WORKER_COLUMNS}",
        (*params, worker_id),
    ).fetchone()
    return worker_from_row(row)
