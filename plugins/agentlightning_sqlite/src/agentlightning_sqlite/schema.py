"""The database schema, its version and the migrations that reach it.

``PRAGMA application_id`` marks a file as an Agent Lightning store; ``PRAGMA user_version``
holds the schema version. ``MIGRATIONS[i]`` upgrades a file from version ``i`` to ``i + 1``,
so version 0 (a new, empty file) runs them all. Never edit a released migration: append one.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Literal

from agentlightning_sqlite.errors import SqliteStoreError

__all__ = [
    "APPLICATION_ID",
    "MIGRATIONS",
    "PAGE_SIZE",
    "SCHEMA_VERSION",
    "WAL_AUTOCHECKPOINT",
    "Durability",
    "connect_checkpointer",
    "open_connection",
]

logger = logging.getLogger(__name__)

APPLICATION_ID = 0x41474C53  # "AGLS"

PAGE_SIZE = 2048
"""Bytes per page of new files. A commit writes each changed page to the log (one WAL frame
each): 2 KiB halves the bytes of a small write against 4 KiB (12 against 22 KiB per enqueue,
measured) and costs no more frames for span batches or space per span (147 against 146 B)."""
WAL_AUTOCHECKPOINT = 4000
"""Log pages after which the writing connection checkpoints itself (SQLite's default: 1000)."""

Durability = Literal["process_crash", "power_loss"]
_SYNCHRONOUS: dict[str, str] = {"process_crash": "NORMAL", "power_loss": "FULL"}

# Rows carry integer keys (rid, aid) so spans reference their rollout and attempt in a few
# bytes. Every index is one more page written per transaction (each WAL frame costs a few
# us), so only queries of the contract get one: attempts are found through their rollout
# (rid), workers (few) are scanned. Rollouts by status: queued ones through rollouts_queue,
# finished ones (and retention by end time) through rollouts_finished, which enqueue,
# dequeue and running updates never touch; preparing/running ones (few) are scanned.
_V1 = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO meta (key, value) VALUES ('resources_seq', 0);

CREATE TABLE rollouts (
    rid INTEGER PRIMARY KEY,
    rollout_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    input TEXT NOT NULL,
    start_time REAL NOT NULL,
    end_time REAL,
    mode TEXT,
    resources_id TEXT,
    config TEXT NOT NULL,
    metadata TEXT NOT NULL,
    queue_seq INTEGER,
    attempt_count INTEGER NOT NULL DEFAULT 0,
    next_span_seq INTEGER NOT NULL DEFAULT 1,
    span_count INTEGER NOT NULL DEFAULT 0,
    span_bytes INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX rollouts_queue ON rollouts (queue_seq) WHERE queue_seq IS NOT NULL;
CREATE INDEX rollouts_start_time ON rollouts (start_time);
CREATE INDEX rollouts_finished ON rollouts (status, end_time)
    WHERE status IN ('succeeded', 'failed', 'cancelled');

CREATE TABLE attempts (
    aid INTEGER PRIMARY KEY,
    rid INTEGER NOT NULL,
    attempt_id TEXT NOT NULL,
    sequence_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    start_time REAL NOT NULL,
    end_time REAL,
    worker_id TEXT,
    last_heartbeat_time REAL,
    metadata TEXT NOT NULL
);
CREATE UNIQUE INDEX attempts_rollout ON attempts (rid, sequence_id);
CREATE INDEX attempts_active ON attempts (status) WHERE status IN ('preparing', 'running');

CREATE TABLE span_resources (
    ref INTEGER PRIMARY KEY,
    body TEXT NOT NULL UNIQUE
);

CREATE TABLE spans (
    rid INTEGER NOT NULL,
    aid INTEGER NOT NULL,
    sequence_id INTEGER NOT NULL,
    span_id TEXT NOT NULL,
    trace_id TEXT NOT NULL,
    parent_id TEXT,
    name TEXT NOT NULL,
    start_time REAL,
    end_time REAL,
    resource_ref INTEGER,
    body BLOB NOT NULL
);
CREATE INDEX spans_rollout ON spans (rid, sequence_id);
CREATE UNIQUE INDEX spans_identity ON spans (aid, span_id);

CREATE TABLE resources (
    resources_id TEXT PRIMARY KEY,
    create_time REAL NOT NULL,
    update_time REAL NOT NULL,
    version INTEGER NOT NULL,
    latest_seq INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX resources_latest ON resources (latest_seq);
CREATE INDEX resources_create_time ON resources (create_time);
CREATE INDEX resources_update_time ON resources (update_time);

CREATE TABLE workers (
    wid INTEGER PRIMARY KEY,
    worker_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    heartbeat_stats TEXT,
    last_heartbeat_time REAL,
    last_dequeue_time REAL,
    last_busy_time REAL,
    last_idle_time REAL,
    current_rollout_id TEXT,
    current_attempt_id TEXT
);
"""

# Attempts record their resources snapshot and final reward; attempts of older files read
# as None for both.
_V2 = """
ALTER TABLE attempts ADD COLUMN resources_id TEXT;
ALTER TABLE attempts ADD COLUMN reward REAL;
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2)
"""``MIGRATIONS[i]`` takes the schema from version ``i`` to ``i + 1`` (SQL script)."""

SCHEMA_VERSION = len(MIGRATIONS)


def open_connection(path: str | Path, *, durability: Durability, busy_timeout: float) -> sqlite3.Connection:
    """Open (creating or migrating) the store file and return a configured connection.

    Raises :class:`SqliteStoreError` naming the file when it is corrupt, belongs to another
    application, or was written by a newer version of this plugin.
    """
    if durability not in _SYNCHRONOUS:
        raise ValueError(f"Unknown durability {durability!r}; expected 'process_crash' or 'power_loss'")
    path = Path(path)
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False, cached_statements=256
        )
    except sqlite3.Error as exc:
        raise SqliteStoreError(
            f"Cannot open the SQLite store file {str(path)!r}: {exc}. "
            "Check that the directory exists and is writable."
        ) from exc
    try:
        _configure(conn, path, durability)
        _migrate(conn, path)
    except BaseException:
        conn.close()
        raise
    return conn


def _configure(conn: sqlite3.Connection, path: Path, durability: Durability) -> None:
    try:
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # takes effect only when the file is new
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise SqliteStoreError(
            f"{str(path)!r} is not a usable SQLite database ({exc}). It may be corrupt or another kind "
            "of file; nothing was changed. Give a new path, or restore the file from a backup."
        ) from exc
    if str(mode).lower() != "wal":
        raise SqliteStoreError(
            f"Cannot switch {str(path)!r} to WAL mode (got journal_mode={mode!r}); "
            "the store needs a local file system that supports WAL (not a network share)."
        )
    conn.execute(f"PRAGMA synchronous={_SYNCHRONOUS[durability]}")
    conn.execute("PRAGMA temp_store=MEMORY")
    conn.execute("PRAGMA cache_size=-16384")  # 16 MiB of page cache per connection
    # A backstop: the worker's background checkpointer has copied most of the log back by
    # then, so this finds little to do and lets the log restart (it stays under ~8 MiB).
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")


def connect_checkpointer(path: str | Path, *, durability: Durability) -> sqlite3.Connection:
    """A second connection to an opened store file, for background checkpoints only."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA synchronous={_SYNCHRONOUS[durability]}")
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if app_id == 0 and version == 0:
            tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise SqliteStoreError(
                    f"{str(path)!r} is an SQLite database of another application ({tables} schema objects, "
                    "no Agent Lightning marker); refusing to touch it. Give the path of a new file."
                )
        elif app_id != APPLICATION_ID:
            raise SqliteStoreError(
                f"{str(path)!r} is an SQLite database of another application (application_id={app_id:#x}); "
                "refusing to touch it. Give the path of a new file."
            )
        if version > SCHEMA_VERSION:
            raise SqliteStoreError(
                f"{str(path)!r} has store schema version {version}, newer than this agentlightning-sqlite "
                f"supports ({SCHEMA_VERSION}). Upgrade it: pip install -U agentlightning-sqlite"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            logger.info("Migrating SQLite store %s to schema version %d", path, target)
            for statement in _statements(MIGRATIONS[target - 1]):
                conn.execute(statement)
        if version < SCHEMA_VERSION:
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit our transaction)."""
    out: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        raise ValueError(f"Incomplete SQL statement in a migration: {buf.strip()[:80]!r}")
    return out
