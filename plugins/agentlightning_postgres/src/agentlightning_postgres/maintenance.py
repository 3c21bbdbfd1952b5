"""SQL that keeps the store in shape: the watchdog's time-outs, retention, statistics.

The store's watchdog task calls these (``PostgresLightningStore.watchdog_pass``,
``delete_finished``); each function here is one read or one write transaction. Several
store processes may run their watchdogs on one database: a write re-checks, under the
rollout's row lock, what the read found.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentlightning_core.store import policy
from agentlightning_core.store.sql import ATTEMPT_COLUMNS, DEFAULT_CONFIG_JSON, attempt_from_row
from agentlightning_core.types import RolloutConfig, RolloutStatus
from agentlightning_postgres import attempts
from agentlightning_postgres.rollouts import FINISHED_BEFORE
from agentlightning_postgres.sql import Conn, all_rows, one

__all__ = [
    "RETENTION_BATCH",
    "delete_finished_batch",
    "due_attempts",
    "has_finished_before",
    "mark_due",
    "statistics",
]

RETENTION_BATCH = 500
"""Rollouts deleted per transaction, so other writers are not held up."""
_ACTIVE_WITH_CONFIG = (
    f"SELECT {ATTEMPT_COLUMNS}, r.config FROM attempts a JOIN rollouts r ON r.rid = a.rid"
    " WHERE a.status IN ('preparing', 'running')"
)


async def due_attempts(conn: Conn, now: float) -> list[int]:
    """Row keys of active attempts the watchdog would mark now (a read: no lock)."""
    due: list[int] = []
    # Rollouts with the default config (no time-outs: the common case) are skipped in
    # SQL, so a pass over thousands of active attempts parses none of their configs.
    for row in await all_rows(conn, _ACTIVE_WITH_CONFIG + " AND r.config <> %s", (DEFAULT_CONFIG_JSON,)):
        config = RolloutConfig.from_json(row[13])
        if config.timeout_seconds is None and config.unresponsive_seconds is None:
            continue
        if policy.watchdog_verdict(attempt_from_row(row), config, now) is not None:
            due.append(row[9])
    return due


async def mark_due(conn: Conn, due: Sequence[int], now: float, channel: str) -> tuple[int, bool]:
    """Mark those attempts still due ``timeout``/``unresponsive``; returns how many changed and
    whether a rollout became terminal."""
    changed, terminal = 0, False
    rows = await all_rows(
        conn,
        f"SELECT {ATTEMPT_COLUMNS}, r.config FROM attempts a JOIN rollouts r ON r.rid = a.rid"
        " WHERE a.aid = ANY(%s) ORDER BY r.rollout_id FOR UPDATE OF r, a",
        (list(due),),
    )
    for row in rows:
        attempt = attempt_from_row(row)
        verdict = policy.watchdog_verdict(attempt, RolloutConfig.from_json(row[13]), now)
        if verdict is None:
            continue  # changed since we looked (e.g. a heartbeat from another process)
        changed += 1
        terminal |= await attempts.apply_status(conn, row[9], row[10], attempt, verdict, now, channel)
    return changed, terminal


async def has_finished_before(conn: Conn, cutoff: float) -> bool:
    """Whether a finished rollout ended before ``cutoff`` (a read: the common case takes no lock)."""
    return await one(conn, FINISHED_BEFORE, (cutoff, 1)) is not None


async def delete_finished_batch(conn: Conn, cutoff: float) -> int:
    """Delete up to :data:`RETENTION_BATCH` rollouts that ended before ``cutoff``, with their
    attempts and spans; returns how many."""
    rids = [
        r[0]
        for r in await all_rows(conn, FINISHED_BEFORE + " FOR UPDATE SKIP LOCKED", (cutoff, RETENTION_BATCH))
    ]
    if rids:
        await conn.execute("DELETE FROM span_pages WHERE rid = ANY(%s)", (rids,))
        await conn.execute("DELETE FROM attempts WHERE rid = ANY(%s)", (rids,))
        await conn.execute("DELETE FROM rollouts WHERE rid = ANY(%s)", (rids,))
    return len(rids)


async def statistics(conn: Conn) -> dict[str, Any]:
    """The store's counts (``LightningStore.statistics`` without the earlier API's keys)."""
    by_status = {str(s): 0 for s in RolloutStatus}
    spans = span_bytes = 0
    for status, count, n_spans, n_bytes in await all_rows(
        conn, "SELECT status, count(*), sum(span_count), sum(span_bytes) FROM rollouts GROUP BY status"
    ):
        by_status[status] = count
        spans += int(n_spans or 0)
        span_bytes += int(n_bytes or 0)
    counts = await one(
        conn,
        "SELECT (SELECT count(*) FROM rollouts WHERE queue_seq IS NOT NULL),"
        " (SELECT count(*) FROM attempts),"
        " (SELECT count(*) FROM attempts WHERE status IN ('preparing', 'running')),"
        " (SELECT count(*) FROM resources), (SELECT count(*) FROM workers),"
        " (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
        "  WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r')",
    )
    assert counts is not None
    return {
        "rollouts": sum(by_status.values()),
        "rollouts_by_status": by_status,
        "queue_length": counts[0],
        "attempts": counts[1],
        "live_attempts": counts[2],
        "spans": spans,
        "span_bytes": span_bytes,
        "resources": counts[3],
        "workers": counts[4],
        "database_bytes": int(counts[5] or 0),
    }
