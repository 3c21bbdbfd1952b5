"""SQL building blocks of the entity modules: the connection, SQLite's dialect, chunking.

What does not depend on SQLite (rows <-> objects, WHERE/ORDER BY/LIMIT clauses) lives in
:mod:`agentlightning_core.store.sql`, shared with the other SQL stores.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from agentlightning_core.store import policy
from agentlightning_core.store.base import PaginatedResult
from agentlightning_core.store.sql import QueryStatements, SqlDialect, changed_fields, update_statement
from agentlightning_core.types import TERMINAL_ROLLOUT_STATUSES

__all__ = [
    "CHUNK",
    "QUEUED",
    "SQLITE",
    "TERMINAL_ROLLOUT",
    "Conn",
    "chunks",
    "page",
    "qmarks",
    "set_fields",
]

T = TypeVar("T")
Conn = sqlite3.Connection

SQLITE = SqlDialect(
    param="?",
    contains="instr({column}, ?) > 0",
    nulls_last="({column} IS NULL), {column} {direction}",
    no_limit="-1",
    row_id="rowid",
    # hex ids are stored packed (pack_id): read back as the text callers gave
    packed_id_text="(CASE WHEN typeof({column}) = 'blob' THEN lower(hex({column})) ELSE {column} END)",
)
QUEUED = tuple(str(s) for s in policy.QUEUED_ROLLOUT_STATUSES)
TERMINAL_ROLLOUT = tuple(str(s) for s in TERMINAL_ROLLOUT_STATUSES)
CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit


def chunks(items: Sequence[T]) -> list[Sequence[T]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def qmarks(n: int) -> str:
    return ",".join("?" * n)


def set_fields(conn: Conn, table: str, key_column: str, key: int, record: Any, **fields: Any) -> None:
    """Set every field that is not ``UNSET`` on ``record`` and in its row (JSON-encoded where stored so)."""
    changed = changed_fields(record, fields)
    if changed:
        conn.execute(update_statement(SQLITE, table, key_column, changed), (*changed.values(), key))


def page(conn: Conn, q: QueryStatements, from_row: Callable[[Any], T]) -> PaginatedResult[T]:
    """Run a ``query_*`` page: count the matches, read the page's rows as objects."""
    total = conn.execute(q.count, q.params).fetchone()[0]
    rows = conn.execute(q.select, q.params).fetchall()
    return PaginatedResult([from_row(r) for r in rows], total, q.limit, q.offset)
