"""SQL of rollouts (the ``rollouts`` table): insert, the queue position, status, queries."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import psycopg

from agentlightning_core import RolloutNotFoundError
from agentlightning_core.store import policy
from agentlightning_core.store.base import FilterLogic, PaginatedResult, SortOrder
from agentlightning_core.store.sql import (
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
from agentlightning_postgres import resources
from agentlightning_postgres.sql import POSTGRES, Conn, Statement, all_rows, one, set_fields

__all__ = [
    "FINISHED_BEFORE",
    "enqueue_each",
    "finished",
    "get",
    "insert",
    "new_rollout",
    "query",
    "row",
    "send_insert",
    "set_status",
    "status_statement",
    "update",
]


_INSERT_INTO = (
    "INSERT INTO rollouts (rollout_id, status, input, start_time, mode, resources_id, config, metadata,"
    " next_span_seq, queue_seq)"
)
_INSERT = (
    _INSERT_INTO
    + " VALUES (%s, %s, %s, %s, %s, {resources_id}, %s, %s, %s, {queue_seq}) RETURNING rid, resources_id"
)
# Queued rollouts of several callers in one statement, queued in the order given; a rollout
# without resources takes the latest ones.
_ENQUEUE_EACH = (
    _INSERT_INTO + " SELECT k.rollout_id, k.status, k.input, k.start_time, k.mode,"
    f" coalesce(k.resources_id, ({resources.LATEST_ID})), k.config, k.metadata, %s, nextval('queue_seq')"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::float8[], %s::text[], %s::text[], %s::text[],"
    " %s::text[]) AS k(rollout_id, status, input, start_time, mode, resources_id, config, metadata)"
    " RETURNING rollout_id, resources_id"
)
_INSERTS = {
    (queued, latest): _INSERT.format(
        resources_id=f"coalesce(%s, ({resources.LATEST_ID}))" if latest else "%s",
        queue_seq="nextval('queue_seq')" if queued else "NULL",
    )
    for queued in (False, True)
    for latest in (False, True)
}


def new_rollout(
    now: float,
    input: Any,
    mode: RolloutMode | None,
    resources_id: str | None,
    config: RolloutConfig | None,
    metadata: dict[str, Any] | None,
    status: RolloutStatus,
) -> Rollout:
    return Rollout(
        rollout_id=policy.new_rollout_id(),
        input=input,
        start_time=now,
        mode=mode,
        resources_id=resources_id,
        status=status,
        config=config if config is not None else RolloutConfig(),
        metadata=metadata if metadata is not None else {},
    )


async def insert(conn: Conn, rollout: Rollout, *, latest_resources: bool = False) -> int:
    """Store a new rollout; returns its row key. ``latest_resources``: a rollout without
    ``resources_id`` records the latest resources (looked up in the same statement)."""
    found = await (await send_insert(conn, rollout, latest_resources=latest_resources)).fetchone()
    assert found is not None
    rollout.resources_id = found[1]
    return int(found[0])


async def enqueue_each(conn: Conn, rollouts: Sequence[Rollout]) -> None:
    """Store new queued rollouts in one statement, queued in this order; each without
    ``resources_id`` records the latest resources."""
    params = (
        policy.FIRST_SEQUENCE_ID,
        [r.rollout_id for r in rollouts],
        [str(r.status) for r in rollouts],
        [dumps(r.input) for r in rollouts],
        [r.start_time for r in rollouts],
        [r.mode for r in rollouts],
        [r.resources_id for r in rollouts],
        [dumps(r.config) for r in rollouts],
        ["{}" if not r.metadata else dumps(r.metadata) for r in rollouts],
    )
    found = dict(await all_rows(conn, _ENQUEUE_EACH, params))
    for rollout in rollouts:
        rollout.resources_id = found[rollout.rollout_id]


async def send_insert(
    conn: Conn, rollout: Rollout, *, latest_resources: bool = False
) -> psycopg.AsyncCursor[tuple[Any, ...]]:
    """Send :func:`insert`'s statement; its cursor returns the row key and ``resources_id``
    (in pipeline mode, once read or at ``COMMIT``)."""
    return await conn.execute(
        _INSERTS[
            rollout.status in policy.QUEUED_ROLLOUT_STATUSES,
            latest_resources and rollout.resources_id is None,
        ],
        (
            rollout.rollout_id,
            str(rollout.status),
            dumps(rollout.input),
            rollout.start_time,
            rollout.mode,
            rollout.resources_id,
            dumps(rollout.config),
            "{}" if not rollout.metadata else dumps(rollout.metadata),
            policy.FIRST_SEQUENCE_ID,
        ),
    )


async def row(
    conn: Conn, rollout_id: str, where_: str, extra: str = "", *, lock: bool = False
) -> tuple[Any, ...]:
    """The rollout's :data:`ROLLOUT_COLUMNS` (plus ``extra``), or ``RolloutNotFoundError``.

    ``lock``: hold the row until the transaction ends (every read-modify-write does, so changes
    to one rollout from several processes apply one after the other).
    """
    found = await one(
        conn,
        f"SELECT {ROLLOUT_COLUMNS}{extra} FROM rollouts r WHERE r.rollout_id = %s"
        + (" FOR UPDATE" if lock else ""),
        (rollout_id,),
    )
    if found is None:
        raise RolloutNotFoundError(f"Rollout {rollout_id!r} not found in the store {where_}")
    return found


async def get(conn: Conn, rollout_id: str, where_: str) -> Rollout:
    return rollout_from_row(await row(conn, rollout_id, where_))


async def set_status(
    conn: Conn,
    rid: int,
    rollout: Rollout,
    status: RolloutStatus,
    now: float,
    channel: str,
    requeue: bool = False,
) -> bool:
    """Write a rollout's new status, end time and queue position; True if it became terminal
    (then announced on ``channel`` when the transaction commits).

    A rollout entering the queue goes to its back; ``requeue`` sends an already queued one there too.
    """
    statement, terminal = status_statement(rid, rollout, status, now, channel, requeue)
    await conn.execute(*statement)
    return terminal


def status_statement(
    rid: int,
    rollout: Rollout,
    status: RolloutStatus,
    now: float,
    channel: str,
    requeue: bool = False,
) -> tuple[Statement, bool]:
    """:func:`set_status`'s statement (``rollout`` is updated now) and whether it makes the
    rollout terminal."""
    was_queued = rollout.status in policy.QUEUED_ROLLOUT_STATUSES
    was_terminal = rollout.status in TERMINAL_ROLLOUT_STATUSES
    rollout.status = status
    rollout.end_time = policy.end_time_for(status, rollout.end_time, now)
    queued = status in policy.QUEUED_ROLLOUT_STATUSES
    if queued and (requeue or not was_queued):
        queue_seq = "nextval('queue_seq')"
    else:
        queue_seq = "queue_seq" if queued else "NULL"
    query = f"UPDATE rollouts SET status = %s, end_time = %s, queue_seq = {queue_seq} WHERE rid = %s"
    if status in TERMINAL_ROLLOUT_STATUSES and not was_terminal:
        # announced when the transaction commits
        return (
            query + " RETURNING pg_notify(%s, rollout_id)",
            (str(status), rollout.end_time, rid, channel),
        ), True
    return (query, (str(status), rollout.end_time, rid)), False


async def update(
    conn: Conn, rollout_id: str, where_: str, channel: str, status: RolloutStatus | None, **fields: Any
) -> tuple[Rollout, bool]:
    """Set the given fields (``UNSET`` ones stay) and status; True if the rollout became terminal."""
    found = await row(conn, rollout_id, where_, lock=True)
    rid, rollout = found[0], rollout_from_row(found)
    await set_fields(conn, "rollouts", "rid", rid, rollout, **fields)
    terminal = False
    if status is not None:
        terminal = await set_status(conn, rid, rollout, status, time.time(), channel, requeue=True)
    return rollout, terminal


async def query(
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
        clauses.append("r.status = ANY(%s)")
        params.append(list(statuses))
    if rollout_id_in is not None:
        clauses.append("r.rollout_id = ANY(%s)")
        params.append(list(dict.fromkeys(rollout_id_in)))
    if rollout_id_contains is not None:
        clauses.append(contains(POSTGRES, "r.rollout_id"))
        params.append(rollout_id_contains)
    condition = f" WHERE {where(clauses, filter_logic)}" if clauses else ""
    direction = "DESC" if sort_order == "desc" else "ASC"
    if sort_by is None:
        order = f"ORDER BY r.rid {direction}"
    elif sort_by == "end_time":  # the only nullable one: NULLs last
        order = order_by(POSTGRES, "r.end_time", sort_order, "r.rid")
    else:
        order = f"ORDER BY r.{sort_by} {direction}, r.rid {direction}"
    rows = await all_rows(
        conn,
        f"SELECT {ROLLOUT_COLUMNS} FROM rollouts r{condition} {order}{limit_clause(POSTGRES, limit, offset)}",
        params,
    )
    if limit == -1 and offset == 0:
        total = len(rows)
    else:
        counted = await one(conn, f"SELECT count(*) FROM rollouts r{condition}", params)
        total = int(counted[0]) if counted is not None else 0
    return PaginatedResult([rollout_from_row(r) for r in rows], total, limit, offset)


async def finished(conn: Conn, ids: Sequence[str], where_: str) -> list[Rollout]:
    """The terminal ones of ``ids``, in that order; ``RolloutNotFoundError`` for an unknown id."""
    rollouts: dict[str, Rollout] = {}
    for found in await all_rows(
        conn, f"SELECT {ROLLOUT_COLUMNS} FROM rollouts r WHERE r.rollout_id = ANY(%s)", (list(ids),)
    ):
        rollouts[found[1]] = rollout_from_row(found)
    for i in ids:
        if i not in rollouts:
            raise RolloutNotFoundError(f"Rollout {i!r} not found in the store {where_}")
    return [rollouts[i] for i in ids if rollouts[i].is_terminal]


FINISHED_BEFORE = f"SELECT rid FROM rollouts WHERE {FINISHED} AND end_time < %s LIMIT %s"
"""Finished rollouts that ended before a time (through ``rollouts_finished``)."""
