"""SQL of workers (the ``workers`` table): busy on an attempt, idle when it ends, heartbeats."""

from __future__ import annotations

import time
from typing import Any

from agentlightning_core import WorkerNotFoundError
from agentlightning_core.store import policy
from agentlightning_core.store.sql import (
    WORKER_COLUMNS,
    dumps,
    worker_from_row,
)
from agentlightning_core.types import Attempt, Worker, WorkerStatus
from agentlightning_postgres.sql import Conn, Statement, one

__all__ = ["get", "hand_over", "released", "released_statement", "took", "update"]


async def took(conn: Conn, now: float, worker_id: str, rollout_id: str, attempt_id: str) -> None:
    """The worker is busy with an attempt (created on first sight)."""
    await conn.execute(
        "INSERT INTO workers (worker_id, status, last_dequeue_time, last_busy_time, current_rollout_id,"
        " current_attempt_id) VALUES (%s, 'busy', %s, %s, %s, %s) ON CONFLICT (worker_id) DO UPDATE SET"
        " status = 'busy', last_dequeue_time = excluded.last_dequeue_time,"
        " last_busy_time = excluded.last_busy_time, current_rollout_id = excluded.current_rollout_id,"
        " current_attempt_id = excluded.current_attempt_id",
        (worker_id, now, now, rollout_id, attempt_id),
    )


async def released(conn: Conn, now: float, worker_id: str, attempt_id: str) -> None:
    """The worker is idle, if that attempt is still the one it is busy with."""
    await conn.execute(*released_statement(now, worker_id, attempt_id))


def released_statement(now: float, worker_id: str, attempt_id: str) -> Statement:
    """The statement of :func:`released`."""
    return (
        "UPDATE workers SET status = 'idle', last_idle_time = %s, current_rollout_id = NULL,"
        " current_attempt_id = NULL WHERE worker_id = %s AND current_attempt_id = %s",
        (now, worker_id, attempt_id),
    )


async def hand_over(conn: Conn, attempt: Attempt, worker_id: str | None) -> None:
    """An attempt changes worker: the old one is released, the new one busy while it is active."""
    now = time.time()
    if attempt.worker_id is not None:
        await released(conn, now, attempt.worker_id, attempt.attempt_id)
    if worker_id is not None and attempt.status in policy.ACTIVE_ATTEMPT_STATUSES:
        await took(conn, now, worker_id, attempt.rollout_id, attempt.attempt_id)


async def get(conn: Conn, worker_id: str, where_: str) -> Worker:
    found = await one(conn, f"SELECT {WORKER_COLUMNS} FROM workers WHERE worker_id = %s", (worker_id,))
    if found is None:
        raise WorkerNotFoundError(f"Worker {worker_id!r} not found in the store {where_}")
    return worker_from_row(found)


async def update(
    conn: Conn, worker_id: str, status: WorkerStatus | None, heartbeat_stats: Any, set_stats: bool
) -> Worker:
    """A heartbeat (creating the worker), with a new status and stats when given."""
    now = time.time()
    await conn.execute(
        "INSERT INTO workers (worker_id, status) VALUES (%s, 'unknown') ON CONFLICT (worker_id) DO NOTHING",
        (worker_id,),
    )
    sets = ["last_heartbeat_time = %s"]
    params: list[Any] = [now]
    if status is not None:
        sets.append("status = %s")
        params.append(str(status))
        if status is WorkerStatus.BUSY:
            sets.append("last_busy_time = %s")
            params.append(now)
        elif status is WorkerStatus.IDLE:
            sets.append("last_idle_time = %s")
            params.append(now)
    if set_stats:
        sets.append("heartbeat_stats = %s")
        params.append(dumps(heartbeat_stats) if heartbeat_stats is not None else None)
    found = await one(
        conn,
        f"UPDATE workers SET {', '.join(sets)} WHERE worker_id = %s RETURNING {WORKER_COLUMNS}",
        (*params, worker_id),
    )
    assert found is not None
    return worker_from_row(found)
