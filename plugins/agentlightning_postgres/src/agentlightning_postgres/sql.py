"""SQL building blocks of the entity modules: the connection, PostgreSQL's dialect, one-row reads.

What does not depend on PostgreSQL (rows <-> objects, WHERE/ORDER BY/LIMIT clauses) lives in
:mod:`agentlightning_core.store.sql`, shared with the other SQL stores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias, TypeVar

import psycopg

from agentlightning_core.store.base import PaginatedResult
from agentlightning_core.store.sql import QueryStatements, SqlDialect, changed_fields, update_statement

__all__ = ["POSTGRES", "Conn", "all_rows", "one", "page", "set_fields"]

T = TypeVar("T")

Conn: TypeAlias = psycopg.AsyncConnection[tuple[Any, ...]]

POSTGRES = SqlDialect(
    param="%s",
    contains="strpos({column}, %s) > 0",
    nulls_last="{column} {direction} NULLS LAST",
    no_limit="ALL",
    row_id="ctid",
    array_params=True,
)


async def one(conn: Conn, query: str, params: Any = None) -> tuple[Any, ...] | None:
    """The first row of ``query`` (None when there is none)."""
    cur = await conn.execute(query, params)
    return await cur.fetchone()


async def all_rows(conn: Conn, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    cur = await conn.execute(query, params)
    return await cur.fetchall()


async def set_fields(conn: Conn, table: str, key_column: str, key: int, record: Any, **fields: Any) -> None:
    """Set every field that is not ``UNSET`` on ``record`` and in its row (JSON-encoded where stored so)."""
    changed = changed_fields(record, fields)
    if changed:
        await conn.execute(update_statement(POSTGRES, table, key_column, changed), (*changed.values(), key))


async def page(conn: Conn, q: QueryStatements, from_row: Callable[[Any], T]) -> PaginatedResult[T]:
    """Run a ``query_*`` page: count the matches, read the page's rows as objects."""
    counted = await one(conn, q.count, q.params)
    rows = await all_rows(conn, q.select, q.params)
    total = int(counted[0]) if counted is not None else 0
    return PaginatedResult([from_row(r) for r in rows], total, q.limit, q.offset)
