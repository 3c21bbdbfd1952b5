"""SQL building blocks of the entity modules: the connection, PostgreSQL's dialect, one-row reads.

What does not depend on PostgreSQL (rows <-> objects, WHERE/ORDER BY/LIMIT clauses) lives in
:mod:`agentlightning_core.store.sql`, shared with the other SQL stores.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import psycopg

from agentlightning_core.store.sql import SqlDialect, changed_fields, update_statement

__all__ = ["POSTGRES", "Conn", "all_rows", "one", "set_fields"]

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
