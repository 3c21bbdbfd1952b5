"""SQL building blocks of the entity modules: the connection, PostgreSQL's dialect, one-row reads.

What does not depend on PostgreSQL (rows <-> objects, WHERE/ORDER BY/LIMIT clauses) lives in
:mod:`agentlightning_core.store.sql`, shared with the other SQL stores.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeAlias, TypeVar

import anyio
import psycopg
from psycopg.pq import TransactionStatus

from agentlightning_core.store.base import PaginatedResult
from agentlightning_core.store.sql import QueryStatements, SqlDialect, changed_fields, update_statement

__all__ = [
    "POSTGRES",
    "Conn",
    "Statement",
    "all_rows",
    "execute_together",
    "one",
    "page",
    "set_fields",
    "transaction",
]

T = TypeVar("T")
_ROLLBACK_SECONDS = 10.0

Conn: TypeAlias = psycopg.AsyncConnection[tuple[Any, ...]]
Statement: TypeAlias = tuple[str, tuple[Any, ...]]
"""A query and its parameters."""

POSTGRES = SqlDialect(
    param="%s",
    contains="strpos({column}, %s) > 0",
    nulls_last="{column} {direction} NULLS LAST",
    no_limit="ALL",
    row_id="ctid",
    array_params=True,
)


async def transaction(conn: Conn, fn: Callable[[Conn], Awaitable[T]]) -> T:
    """Run ``fn`` in one transaction in libpq's pipeline mode: statements are sent as they are
    executed and only reading a result waits for the server, so ``BEGIN``, ``COMMIT`` and the
    statements whose results ``fn`` does not read cost no round trip of their own (an error of
    one of them is raised at ``COMMIT``). On any error the transaction is rolled back."""
    async with rollback_on_error(conn), conn.pipeline():
        await conn.execute(b"BEGIN")
        result = await fn(conn)
        await conn.execute(b"COMMIT")
    return result


@contextlib.asynccontextmanager
async def rollback_on_error(conn: Conn) -> AsyncIterator[None]:
    """Roll back the connection's open transaction when the block raises."""
    try:
        yield
    except BaseException:
        if conn.info.transaction_status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            with anyio.move_on_after(_ROLLBACK_SECONDS, shield=True):
                await conn.execute(b"ROLLBACK")
        raise


async def execute_together(conn: Conn, statements: list[Statement]) -> None:
    """Run writes as one statement (each but the last a data-modifying ``WITH`` query): one
    statement for the client and the server to handle instead of several. They all see the
    data as it was before any of them, so no two may change the same row."""
    *first, (last, last_params) = statements
    if not first:
        await conn.execute(last, last_params)
        return
    ctes = ", ".join(f"w{i} AS ({query})" for i, (query, _) in enumerate(first))
    params = [p for _, ps in first for p in ps]
    await conn.execute(f"WITH {ctes} {last}", (*params, *last_params))


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
