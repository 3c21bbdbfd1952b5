"""SQL of rollouts (the ``rollouts`` table): insert, the queue position, status, queries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentlightning_core import RolloutNotFoundError
from agentlightning_core.store import policy
from agentlightning_core.store.base import FilterLogic, PaginatedResult, SortOrder
from agentlightning_core.store.sql import (
    DEFAULT_CONFIG_JSON,
    FINISHED,
    ROLLOUT_COLUMNS,
    contains,
    dumps,
    limit_clause,
    order_by,
    rollout_from_row,
    where,
)
from agentlightning_core.types import (
    TERMINAL_ROLLOUT_STATUSES,
    Rollout,
    RolloutConfig,
    RolloutMode,
    RolloutStatus,
)
from agentlightning_sqlite import resources
from agentlightning_sqlite.sql import QUEUED, SQLITE, TERMINAL_ROLLOUT, Conn, chunks, qmarks, set_fields

__all__ = ["finished", "get", "insert", "query", "row", "set_status", "update"]

_INSERT_HEAD = (
    "INSERT INTO rollouts (rollout_id, status, input, start_time, mode, resources_id, config, metadata,"
    " next_span_seq, queue_seq) VALUES (?, ?, ?, ?, ?, "
)
_RESOURCES_ID = "?"
# The latest resources when none are given, found in the same statement (returned with the row).
_LATEST_RESOURCES_ID = f"coalesce(?, ({resources.LATEST_ID}))"
_INSERT_TAIL = ", ?, ?, ?, "
_NOT_QUEUED = "NULL)"
# The queue position behind every queued rollout, found in the same statement.
_QUEUE_SEQ = (
    "(SELECT coalesce((SELECT queue_seq FROM rollouts WHERE queue_seq IS NOT NULL"
    " ORDER BY queue_seq DESC LIMIT 1), 0) + 1))"
)
_INSERT = {
    (queued, latest): _INSERT_HEAD
    + (_LATEST_RESOURCES_ID if latest else _RESOURCES_ID)
    + _INSERT_TAIL
    + (_QUEUE_SEQ if queued else _NOT_QUEUED)
    + (" RETURNING rid, resources_id" if latest else "")
    for queued in (False, True)
    for latest in (False, True)
}


def insert(
    conn: Conn,
    now: float,
    input: Any,
    mode: RolloutMode | None,
    resources_id: str | None,
    config: RolloutConfig | None,
    metadata: dict[str, Any] | None,
    status: RolloutStatus,
    *,
    latest_resources: bool = False,
) -> tuple[int, Rollout]:
    """A new rollout row; returns its row key and the rollout.

    ``latest_resources``: a rollout without ``resources_id`` records the latest resources.
    """
    rollout = Rollout(
        rollout_id=policy.new_rollout_id(),
        input=input,
        start_time=now,
        mode=mode,
        resources_id=resources_id,
        status=status,
        config=config if config is not None else RolloutConfig(),
        metadata=metadata if metadata is not None else {},
    )
    latest = latest_resources and resources_id is None
    cur = conn.execute(
        _INSERT[status in policy.QUEUED_ROLLOUT_STATUSES, latest],
        (
            rollout.rollout_id,
            str(rollout.status),
            dumps(rollout.input),
            now,
            rollout.mode,
            rollout.resources_id,
            DEFAULT_CONFIG_JSON if config is None else dumps(rollout.config),
            "{}" if not rollout.metadata else dumps(rollout.metadata),
            policy.FIRST_SEQUENCE_ID,
        ),
    )
    if latest:
        rid, found = cur.fetchone()
        if found is not None:
            rollout.resources_id = found
    else:
        rid = cur.lastrowid
    assert rid is not None
    return rid, rollout


def _next_queue_seq(conn: Conn) -> int:
    """A queue position behind every queued rollout (FIFO by the time they entered the queue)."""
    found = conn.execute(
        "SELECT queue_seq FROM rollouts WHERE queue_seq IS NOT NULL ORDER BY queue_seq DESC LIMIT 1"
    ).fetchone()
    return 1 if found is None else int(found[0]) + 1


def row(conn: Conn, rollout_id: str, path: Path, extra: str = "") -> tuple[Any, ...]:
    """The rollout's :data:`ROLLOUT_COLUMNS` (plus ``extra``), or ``RolloutNotFoundError``."""
    found = conn.execute(
        f"SELECT {ROLLOUT_COLUMNS}{extra} FROM rollouts r WHERE r.rollout_id = ?", (rollout_id,)
    ).fetchone()
    if found is None:
        raise RolloutNotFoundError(f"Rollout {rollout_id!r} not found in the store {str(path)!r}")
    return tuple(found)


def get(conn: Conn, rollout_id: str, path: Path) -> Rollout:
    return rollout_from_row(row(conn, rollout_id, path))


def set_status(
    conn: Conn, rid: int, rollout: Rollout, status: RolloutStatus, now: float, requeue: bool = False
) -> bool:
    """Write a rollout's new status, end time and queue position; True if it became terminal.

    A rollout entering the queue goes to its back; ``requeue`` sends an already queued one there too.
    """
    was_queued = rollout.status in policy.QUEUED_ROLLOUT_STATUSES
    was_terminal = rollout.status in TERMINAL_ROLLOUT_STATUSES
    rollout.status = status
    rollout.end_time = policy.end_time_for(status, rollout.end_time, now)
    queued = status in policy.QUEUED_ROLLOUT_STATUSES
    if queued and (requeue or not was_queued):
        conn.execute(
            "UPDATE rollouts SET status = ?, end_time = ?, queue_seq = ? WHERE rid = ?",
            (str(status), rollout.end_time, _next_queue_seq(conn), rid),
        )
    else:
        conn.execute(
            "UPDATE rollouts SET status = ?, end_time = ?"
            + ("" if queued else ", queue_seq = NULL")
            + " WHERE rid = ?",
            (str(status), rollout.end_time, rid),
        )
    return status in TERMINAL_ROLLOUT_STATUSES and not was_terminal


def update(
    conn: Conn, rollout_id: str, path: Path, status: RolloutStatus | None, **fields: Any
) -> tuple[Rollout, bool]:
    """Set the given fields (``UNSET`` ones stay) and status; True if the rollout became terminal."""
    found = row(conn, rollout_id, path)
    rid, rollout = found[0], rollout_from_row(found)
    set_fields(conn, "rollouts", "rid", rid, rollout, **fields)
    terminal = False
    if status is not None:
        terminal = set_status(conn, rid, rollout, status, time.time(), requeue=True)
    return rollout, terminal


def query(
    conn: Conn,
    statuses: Sequence[str] | None,
    rollout_id_in: Sequence[str] | None,
    rollout_id_contains: str | None,
    filter_logic: FilterLogic,
    sort_by: str | None,
    sort_order: SortOrder,
    limit: int,
    offset: int,
) -> PaginatedResult[Rollout]:
    """Rollouts matching the (checked) arguments of ``query_rollouts``."""
    clauses: list[str] = []
    params: list[Any] = []
    if statuses is not None:
        clause = f"r.status IN ({qmarks(len(statuses))})" if statuses else "0"
        # Implied terms that let SQLite use a partial index (rollouts_finished, rollouts_queue).
        if statuses and set(statuses) <= set(TERMINAL_ROLLOUT):
            clause = f"({clause} AND r.{FINISHED})"
        elif statuses and set(statuses) <= set(QUEUED):
            clause = f"({clause} AND r.queue_seq IS NOT NULL)"
        clauses.append(clause)
        params += statuses
    if rollout_id_in is not None:
        clauses.append("r.rollout_id IN (SELECT value FROM json_each(?))")
        params.append(dumps(list(dict.fromkeys(rollout_id_in))))
    if rollout_id_contains is not None:
        clauses.append(contains(SQLITE, "r.rollout_id"))
        params.append(rollout_id_contains)
    condition = f" WHERE {where(clauses, filter_logic)}" if clauses else ""
    direction = "DESC" if sort_order == "desc" else "ASC"
    if sort_by is None:
        order = f"ORDER BY r.rid {direction}"
    elif sort_by == "end_time":  # the only nullable one: NULLs last
        order = order_by(SQLITE, "r.end_time", sort_order, "r.rid")
    else:  # NOT NULL columns: a plain ORDER BY lets SQLite walk an index
        order = f"ORDER BY r.{sort_by} {direction}, r.rid {direction}"
    rows = conn.execute(
        f"SELECT {ROLLOUT_COLUMNS} FROM rollouts r{condition} {order}{limit_clause(SQLITE, limit, offset)}",
        params,
    ).fetchall()
    if limit == -1 and offset == 0:
        total = len(rows)
    else:
        total = conn.execute(f"SELECT count(*) FROM rollouts r{condition}", params).fetchone()[0]
    return PaginatedResult([rollout_from_row(r) for r in rows], total, limit, offset)


def finished(conn: Conn, ids: Sequence[str], path: Path) -> tuple[list[Rollout], int]:
    """The terminal ones of ``ids`` (in that order) and the file's ``data_version`` before reading."""
    version = conn.execute("PRAGMA data_version").fetchone()[0]
    rollouts: dict[str, Rollout] = {}
    for part in chunks(ids):
        for found in conn.execute(
            f"SELECT {ROLLOUT_COLUMNS} FROM rollouts r WHERE r.rollout_id IN ({qmarks(len(part))})", part
        ):
            rollouts[found[1]] = rollout_from_row(found)
    for i in ids:
        if i not in rollouts:
            raise RolloutNotFoundError(f"Rollout {i!r} not found in the store {str(path)!r}")
    return [rollouts[i] for i in ids if rollouts[i].is_terminal], version
