"""SQL building blocks shared by the entity modules: the connection type, clauses, chunking."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, TypeVar

from agentlightning_core.store import policy
from agentlightning_core.store.base import FilterLogic, SortOrder, Unset
from agentlightning_core.types import TERMINAL_ROLLOUT_STATUSES
from agentlightning_sqlite import codec

__all__ = [
    "CHUNK",
    "FINISHED",
    "QUEUED",
    "TERMINAL_ROLLOUT",
    "Conn",
    "chunks",
    "id_text",
    "limit_clause",
    "order_by",
    "qmarks",
    "set_fields",
    "where",
]

T = TypeVar("T")
Conn = sqlite3.Connection

QUEUED = tuple(str(s) for s in policy.QUEUED_ROLLOUT_STATUSES)
TERMINAL_ROLLOUT = tuple(str(s) for s in TERMINAL_ROLLOUT_STATUSES)
FINISHED = "status IN ('succeeded', 'failed', 'cancelled')"
"""The condition of the partial index ``rollouts_finished``, word for word (SQLite matches it so)."""
assert set(TERMINAL_ROLLOUT) == {"succeeded", "failed", "cancelled"}, "update FINISHED and the schema"
CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit


def order_by(column: str, sort_order: SortOrder, tie: str) -> str:
    """ORDER BY clause: NULLs last in both directions, ties in ``tie`` order (stable)."""
    direction = "DESC" if sort_order == "desc" else "ASC"
    return f"ORDER BY ({column} IS NULL), {column} {direction}, {tie}"


def limit_clause(limit: int, offset: int) -> str:
    return f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit != -1 or offset else ""


def chunks(items: Sequence[T]) -> list[Sequence[T]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]


def qmarks(n: int) -> str:
    return ",".join("?" * n)


def id_text(column: str) -> str:
    """An id column as the text callers gave (hex ids are stored packed: see ``codec.pack_id``)."""
    return f"(CASE WHEN typeof({column}) = 'blob' THEN lower(hex({column})) ELSE {column} END)"


def where(clauses: list[str], filter_logic: FilterLogic) -> str:
    """The optional filters joined by ``filter_logic``, parenthesised ('' when there are none)."""
    policy.check_filter_logic(filter_logic)
    return f"({f' {filter_logic.upper()} '.join(clauses)})" if clauses else ""


_JSON_FIELDS = frozenset({"input", "config", "metadata"})


def set_fields(conn: Conn, table: str, key_column: str, key: int, record: Any, **fields: Any) -> None:
    """Set every field that is not ``UNSET`` on ``record`` and in its row (JSON-encoded where stored so)."""
    changed: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, Unset):
            continue
        setattr(record, name, value)
        changed[name] = codec.dumps(value) if name in _JSON_FIELDS else value
    if changed:
        sets = ", ".join(f"{name} = ?" for name in changed)
        conn.execute(f"UPDATE {table} SET {sets} WHERE {key_column} = ?", (*changed.values(), key))
