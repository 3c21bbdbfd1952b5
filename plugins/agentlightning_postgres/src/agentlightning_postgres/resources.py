"""SQL of resources snapshots (the ``resources`` table)."""

from __future__ import annotations

import time

from agentlightning_core import NamedResources, ResourcesNotFoundError, ResourcesUpdate
from agentlightning_core.store import policy
from agentlightning_core.store.sql import (
    RESOURCES_COLUMNS,
    dumps,
    resources_from_row,
)
from agentlightning_postgres.sql import Conn, one

__all__ = ["LATEST_ID", "add", "check", "get", "latest", "latest_id", "update"]

LATEST_ID = "SELECT resources_id FROM resources ORDER BY latest_seq DESC LIMIT 1"
"""The id of the latest snapshot (through the index ``resources_latest``)."""


def check(resources: NamedResources) -> str:
    """Validate a caller's resources mapping; returns the stored body."""
    return dumps(ResourcesUpdate("x", 0.0, 0.0, 1, resources).resources)


async def latest_id(conn: Conn) -> str | None:
    found = await one(conn, LATEST_ID)
    return None if found is None else str(found[0])


async def add(conn: Conn, resources: NamedResources, body: str) -> ResourcesUpdate:
    now = time.time()
    update = ResourcesUpdate(policy.new_resources_id(), now, now, 1, dict(resources))
    await conn.execute(
        "INSERT INTO resources (resources_id, create_time, update_time, version, latest_seq, body)"
        " VALUES (%s, %s, %s, 1, nextval('resources_seq'), %s)",
        (update.resources_id, now, now, body),
    )
    return update


async def update(conn: Conn, resources_id: str, resources: NamedResources, body: str) -> ResourcesUpdate:
    now = time.time()
    found = await one(
        conn,
        "INSERT INTO resources AS old (resources_id, create_time, update_time, version, latest_seq, body)"
        " VALUES (%s, %s, %s, 1, nextval('resources_seq'), %s) ON CONFLICT (resources_id) DO UPDATE SET"
        " update_time = excluded.update_time, version = old.version + 1, latest_seq = excluded.latest_seq,"
        " body = excluded.body RETURNING create_time, version",
        (resources_id, now, now, body),
    )
    assert found is not None
    return ResourcesUpdate(resources_id, found[0], now, found[1], dict(resources))


async def get(conn: Conn, resources_id: str, where_: str) -> ResourcesUpdate:
    found = await one(
        conn, f"SELECT {RESOURCES_COLUMNS} FROM resources WHERE resources_id = %s", (resources_id,)
    )
    if found is None:
        raise ResourcesNotFoundError(f"Resources {resources_id!r} not found in the store {where_}")
    return resources_from_row(found)


async def latest(conn: Conn) -> ResourcesUpdate | None:
    found = await one(conn, f"SELECT {RESOURCES_COLUMNS} FROM resources ORDER BY latest_seq DESC LIMIT 1")
    return resources_from_row(found) if found is not None else None
