"""SQL building blocks shared by the entity modules: the connection type, clauses, one-row reads."""

from __future__ import annotations

from typing import Any, TypeAlias

import psycopg

from agentlightning_core.store import policy
from agentlightning_core.store.base import FilterLogic, SortOrder, Unset
from agentlightning_core.types import TERMINAL_ROLLOUT_STATUSES
from agentlightning_postgres import codec

__all__ = [
    "FINISHED",
    "Conn",
    "all_rows",
    "limit_clause",
    "one",
    "order_by",
    "set_fields",
    "where",
]

Conn: TypeAlias = psycopg.AsyncConnection[tuple[Any, ...]]

FINISHED = "status IN ('succeeded', 'failed', 'cancelled')"
"""The condition of the partial index ``rollouts_finished``, word for word (the planner matches it so)."""
assert {str(s) for s in TERMINAL_ROLLOUT_STATUSES} == {"succeeded", "failed", "cancelled"}, "update FINISHED"


async def one(conn: Conn, query: str, params: Any = None) -> tuple[Any, ...] | None:
    """The first row of ``query`` (None when there is none)."""
    cur = await conn.execute(query, params)
    return await cur.fetchone()


async def all_rows(conn: Conn, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()


def order_by(column: str, sort_order: SortOrder, tie: str) -> str:
    """ORDER BY clause: NULLs last in both directions, ties in ``tie`` order (stable)."""
    direction = "DESC" if sort_order == "desc" else "ASC"
    return f"ORDER BY {column} {direction} NULLS LAST, {tie}"


def limit_clause(limit: int, offset: int) -> str:
    text = f" LIMIT {int(limit)}" if limit != -1 else ""
    return text + (f" OFFSET {int(offset)}" if offset else "")


def where(clauses: list[str], filter_logic: FilterLogic) -> str:
    """The optional filters joined by ``filter_logic``, parenthesised ('' when there are none)."""
    policy.check_filter_logic(filter_logic)
    return f"({f' {filter_logic.upper()} '.join(clauses)})" if clauses else ""


_JSON_FIELDS = frozenset({"input", "config", "metadata"})


async def set_fields(conn: Conn, table: str, key_column: str, key: int, record: Any, **fields: Any) -> None:
    """Set every field that is not ``UNSET`` on ``record`` and in its row (JSON-encoded where stored so)."""
    changed: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, Unset):
            continue
        setattr(record, name, value)
        changed[name] = codec.dumps(value) if name in _JSON_FIELDS else value
    if changed:
        sets = ", ".join(f"{name} = %s" for name in changed)
        await conn.execute(
            f"UPDATE {table} SET {sets} WHERE {key_column} = %s",
            (*changed.values(), key),
        )
