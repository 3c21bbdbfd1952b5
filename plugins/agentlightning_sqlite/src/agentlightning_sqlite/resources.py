"""SQL of resources snapshots (the ``resources`` table)."""

from __future__ import annotations

import time
from pathlib import Path

from agentlightning_core import NamedResources, ResourcesNotFoundError, ResourcesUpdate
from agentlightning_core.store import policy
from agentlightning_core.store.sql import (
    RESOURCES_COLUMNS,
    dumps,
    resources_from_row,
)
from agentlightning_sqlite.sql import Conn

__all__ = ["LATEST_ID", "add", "check", "get", "latest", "latest_id", "update"]

LATEST_ID = "SELECT resources_id FROM resources ORDER BY latest_seq DESC LIMIT 1"
"""The id of the latest snapshot (through the index ``resources_latest``)."""


def check(resources: NamedResources) -> str:
    """Validate a caller's resources mapping; returns the stored body."""
    return dumps(ResourcesUpdate("x", 0.0, 0.0, 1, resources).resources)


def _next_seq(conn: Conn) -> int:
    """The next position in the "latest" order (a counter in ``meta``)."""
    row = conn.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'resources_seq' RETURNING value"
    ).fetchone()
    return int(row[0])


def latest_id(conn: Conn) -> str | None:
    row = conn.execute(LATEST_ID).fetchone()
    return None if row is None else str(row[0])


def add(conn: Conn, resources: NamedResources, body: str) -> ResourcesUpdate:
    now = time.time()
    update = ResourcesUpdate(policy.new_resources_id(), now, now, 1, dict(resources))
    conn.execute(
        "INSERT INTO resources (resources_id, create_time, update_time, version, latest_seq, body)"
        " VALUES (?, ?, ?, 1, ?, ?)",
        (update.resources_id, now, now, _next_seq(conn), body),
    )
    return update


def update(conn: Conn, resources_id: str, resources: NamedResources, body: str) -> ResourcesUpdate:
    now = time.time()
    seq = _next_seq(conn)
    row = conn.execute(
        "INSERT INTO resources (resources_id, create_time, update_time, version, latest_seq, body)"
        " VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (resources_id) DO UPDATE SET"
        " update_time = excluded.update_time, version = version + 1, latest_seq = excluded.latest_seq,"
        " body = excluded.body RETURNING create_time, version",
        (resources_id, now, now, seq, body),
    ).fetchone()
    return ResourcesUpdate(resources_id, row[0], now, row[1], dict(resources))


def get(conn: Conn, resources_id: str, path: Path) -> ResourcesUpdate:
    row = conn.execute(
        f"SELECT {RESOURCES_COLUMNS} FROM resources WHERE resources_id = ?", (resources_id,)
    ).fetchone()
    if row is None:
        raise ResourcesNotFoundError(f"Resources {resources_id!r} not found in the store {str(path)!r}")
    return resources_from_row(row)


def latest(conn: Conn) -> ResourcesUpdate | None:
    row = conn.execute(
        f"SELECT {RESOURCES_COLUMNS} FROM resources ORDER BY latest_seq DESC LIMIT 1"
    ).fetchone()
    return resources_from_row(row) if row is not None else None
