"""SQL that keeps the file in shape: the watchdog's time-outs, retention, compaction, statistics.

The store's watchdog task calls these (``SqliteLightningStore.watchdog_pass``,
``delete_finished``, ``vacuum``); each function here is one read or one write transaction.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentlightning_core.store import policy
from agentlightning_core.store.sql import ATTEMPT_COLUMNS, DEFAULT_CONFIG_JSON, FINISHED, attempt_from_row
from agentlightning_core.types import RolloutConfig, RolloutStatus
from agentlightning_sqlite import attempts
from agentlightning_sqlite.sql import Conn, chunks, qmarks

__all__ = [
    "RETENTION_BATCH",
    "compact",
    "delete_finished_batch",
    "due_attempts",
    "file_bytes",
    "has_finished_before",
    "mark_due",
    "statistics",
]

logger = logging.getLogger(__name__)

RETENTION_BATCH = 200
"""Rollouts deleted per transaction, so other writers are not held up."""
_ACTIVE_WITH_CONFIG = (
    f"SELECT {ATTEMPT_COLUMNS}, r.config FROM attempts a JOIN rollouts r ON r.rid = a.rid"
    " WHERE a.status IN ('preparing', 'running')"
)
_FINISHED_BEFORE = f"SELECT rid FROM rollouts WHERE {FINISHED} AND end_time < ? LIMIT ?"  # rollouts_finished


def due_attempts(conn: Conn, now: float) -> list[int]:
    """Row keys of active attempts the watchdog would mark now (a read: no write lock)."""
    due: list[int] = []
    # Rollouts with the default config (no time-outs: the common case) are skipped in
    # SQL, so a pass over thousands of active attempts parses none of their configs.
    for row in conn.execute(_ACTIVE_WITH_CONFIG + " AND r.config <> ?", (DEFAULT_CONFIG_JSON,)):
        config = RolloutConfig.from_json(row[13])
        if config.timeout_seconds is None and config.unresponsive_seconds is None:
            continue
        if policy.watchdog_verdict(attempt_from_row(row), config, now) is not None:
            due.append(row[9])
    return due


def mark_due(conn: Conn, due: Sequence[int], now: float) -> tuple[int, bool]:
    """Mark those attempts still due ``timeout``/``unresponsive``; returns how many changed and
    whether a rollout became terminal."""
    changed, terminal = 0, False
    for part in chunks(due):
        for row in conn.execute(
            f"SELECT {ATTEMPT_COLUMNS}, r.config FROM attempts a JOIN rollouts r ON r.rid = a.rid"
            f" WHERE a.aid IN ({qmarks(len(part))})",
            part,
        ).fetchall():
            attempt = attempt_from_row(row)
            verdict = policy.watchdog_verdict(attempt, RolloutConfig.from_json(row[13]), now)
            if verdict is None:
                continue  # changed since we looked (e.g. a heartbeat from another process)
            changed += 1
            terminal |= attempts.apply_status(conn, row[9], row[10], attempt, verdict, now)
    return changed, terminal


def has_finished_before(conn: Conn, cutoff: float) -> bool:
    """Whether a finished rollout ended before ``cutoff`` (a read: the common case takes no lock)."""
    return conn.execute(_FINISHED_BEFORE, (cutoff, 1)).fetchone() is not None


def delete_finished_batch(conn: Conn, cutoff: float) -> int:
    """Delete up to :data:`RETENTION_BATCH` rollouts that ended before ``cutoff``, with their
    attempts and spans; returns how many."""
    rids = [r[0] for r in conn.execute(_FINISHED_BEFORE, (cutoff, RETENTION_BATCH))]
    if rids:
        marks = qmarks(len(rids))
        conn.execute(f"DELETE FROM spans WHERE rid IN ({marks})", rids)
        conn.execute(f"DELETE FROM attempts WHERE rid IN ({marks})", rids)
        conn.execute(f"DELETE FROM rollouts WHERE rid IN ({marks})", rids)
    return len(rids)


def compact(conn: Conn) -> None:
    """Copy the log back, rewrite the file without free pages, and empty the log again."""
    _truncate_log(conn)
    conn.execute("VACUUM")
    _truncate_log(conn)


def _truncate_log(conn: Conn, tries: int = 100) -> None:
    """Checkpoint the whole log and truncate it. The background checkpointer may hold the
    checkpoint lock for a moment, and SQLite then answers busy at once instead of waiting (the
    log, holding a copy of the whole vacuumed file, stayed behind); so try again, up to ~1 s."""
    for _ in range(tries):
        if conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0:
            return
        time.sleep(0.01)
    logger.warning(
        "Could not truncate the write-ahead log of the SQLite store: other connections kept it busy"
    )


def file_bytes(path: Path) -> int:
    """Size of the database file plus its write-ahead log."""
    total = 0
    for p in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += p.stat().st_size
    return total


def statistics(conn: Conn, path: Path) -> dict[str, Any]:
    """The store's counts (``LightningStore.statistics`` without the earlier API's keys)."""
    by_status = {str(s): 0 for s in RolloutStatus}
    spans = span_bytes = 0
    for status, count, n_spans, n_bytes in conn.execute(
        "SELECT status, count(*), sum(span_count), sum(span_bytes) FROM rollouts GROUP BY status"
    ):
        by_status[status] = count
        spans += n_spans or 0
        span_bytes += n_bytes or 0
    return {
        "rollouts": sum(by_status.values()),
        "rollouts_by_status": by_status,
        "queue_length": conn.execute("SELECT count(*) FROM rollouts WHERE queue_seq IS NOT NULL").fetchone()[
            0
        ],
        "attempts": conn.execute("SELECT count(*) FROM attempts").fetchone()[0],
        "live_attempts": conn.execute(
            "SELECT count(*) FROM attempts WHERE status IN ('preparing', 'running')"
        ).fetchone()[0],
        "spans": spans,
        "span_bytes": span_bytes,
        "resources": conn.execute("SELECT count(*) FROM resources").fetchone()[0],
        "workers": conn.execute("SELECT count(*) FROM workers").fetchone()[0],
        "file_bytes": file_bytes(path),
    }
