"""The database schema, its version table, the migrations that reach it, and connecting.

A store lives in one PostgreSQL schema (``agentlightning`` unless told otherwise), so several
stores can share a database. Its table ``agl_schema_version`` holds the schema version;
``MIGRATIONS[i]`` (an SQL script, or a coroutine function for what SQL cannot do) upgrades it
from version ``i`` to ``i + 1``, so an empty schema runs them all. Opening takes an advisory lock, so processes starting together migrate once. Never edit
a released migration: append one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from agentlightning_postgres import codec
from agentlightning_postgres.errors import PostgresStoreError
from agentlightning_postgres.sql import Conn

__all__ = [
    "DSN_ENV",
    "MIGRATIONS",
    "RESERVED_WORDS",
    "SCHEMA_VERSION",
    "Migration",
    "channel",
    "check_schema_name",
    "connect",
    "connection_kwargs",
    "migrate",
    "redact",
]

logger = logging.getLogger(__name__)

DSN_ENV = "AGL_POSTGRES_DSN"
"""Environment variable read when the store is given no DSN."""

# Rows carry integer keys (rid, aid) so spans reference their rollout and attempt in a few
# bytes. Queued rollouts are found through rollouts_queue (FIFO by queue_seq, a sequence, so
# concurrent enqueues never contend), finished ones (and retention) through rollouts_finished.
# Span bodies are compact (codec.py); the few over ~2 KiB are compressed again by PostgreSQL,
# with lz4 (faster than its default pglz). Ids and names sort bytewise (COLLATE "C"), as the
# other stores sort them, whatever the database's locale.
_V1 = """
CREATE TABLE agl_schema_version (version integer NOT NULL);
INSERT INTO agl_schema_version (version) VALUES (0);
CREATE SEQUENCE queue_seq;
CREATE SEQUENCE resources_seq;

CREATE TABLE rollouts (
    rid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rollout_id text COLLATE "C" NOT NULL UNIQUE,
    status text NOT NULL,
    input text NOT NULL,
    start_time double precision NOT NULL,
    end_time double precision,
    mode text,
    resources_id text,
    config text NOT NULL,
    metadata text NOT NULL,
    queue_seq bigint,
    attempt_count integer NOT NULL DEFAULT 0,
    next_span_seq bigint NOT NULL DEFAULT 1,
    span_count bigint NOT NULL DEFAULT 0,
    span_bytes bigint NOT NULL DEFAULT 0
);
CREATE INDEX rollouts_queue ON rollouts (queue_seq) WHERE queue_seq IS NOT NULL;
CREATE INDEX rollouts_start_time ON rollouts (start_time);
CREATE INDEX rollouts_finished ON rollouts (end_time) WHERE status IN ('succeeded', 'failed', 'cancelled');

CREATE TABLE attempts (
    aid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    rid bigint NOT NULL,
    attempt_id text COLLATE "C" NOT NULL,
    sequence_id integer NOT NULL,
    status text NOT NULL,
    start_time double precision NOT NULL,
    end_time double precision,
    worker_id text,
    last_heartbeat_time double precision,
    metadata text NOT NULL,
    resources_id text,
    reward double precision
);
CREATE UNIQUE INDEX attempts_rollout ON attempts (rid, sequence_id);
CREATE INDEX attempts_active ON attempts (status) WHERE status IN ('preparing', 'running');

CREATE TABLE span_resources (
    ref integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    body text NOT NULL UNIQUE
);

CREATE TABLE spans (
    rid bigint NOT NULL,
    aid bigint NOT NULL,
    sequence_id bigint NOT NULL,
    span_id text COLLATE "C" NOT NULL,
    trace_id text COLLATE "C" NOT NULL,
    parent_id text COLLATE "C",
    name text COLLATE "C" NOT NULL,
    start_time double precision,
    end_time double precision,
    resource_ref integer,
    body bytea NOT NULL
);
ALTER TABLE spans ALTER COLUMN body SET COMPRESSION lz4;
CREATE INDEX spans_rollout ON spans (rid, sequence_id);
CREATE UNIQUE INDEX spans_identity ON spans (aid, span_id);

CREATE TABLE resources (
    resources_id text COLLATE "C" PRIMARY KEY,
    create_time double precision NOT NULL,
    update_time double precision NOT NULL,
    version integer NOT NULL,
    latest_seq bigint NOT NULL,
    body text NOT NULL
);
CREATE INDEX resources_latest ON resources (latest_seq);

CREATE TABLE workers (
    wid bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    worker_id text COLLATE "C" NOT NULL UNIQUE,
    status text NOT NULL,
    heartbeat_stats text,
    last_heartbeat_time double precision,
    last_dequeue_time double precision,
    last_busy_time double precision,
    last_idle_time double precision,
    current_rollout_id text,
    current_attempt_id text
);
"""

# Spans of one attempt that arrive together are stored as one row, a page (codec.py): one heap
# tuple and one index entry per batch instead of one, and two, per span. The page's span ids
# are a column of their own, for duplicate checks. Bodies are compressed already, so PostgreSQL
# keeps them in the row (MAIN) when the row fits in a block.
_V2_PAGES = """
CREATE TABLE span_pages (
    rid bigint NOT NULL,
    aid bigint NOT NULL,
    first_seq bigint NOT NULL,
    span_ids text[] COLLATE "C" NOT NULL,
    body bytea NOT NULL
);
ALTER TABLE span_pages ALTER COLUMN span_ids SET COMPRESSION lz4;
ALTER TABLE span_pages ALTER COLUMN body SET STORAGE MAIN;
CREATE INDEX span_pages_attempt ON span_pages (rid, aid);
"""
_V1_SPANS = (
    "SELECT rid, aid, sequence_id, span_id, trace_id, parent_id, name, start_time, end_time, resource_ref,"
    " body FROM spans ORDER BY rid, aid, sequence_id, ctid"
)
_INSERT_PAGE = "INSERT INTO span_pages (rid, aid, first_seq, span_ids, body) VALUES (%s, %s, %s, %s, %s)"


async def _v2_span_pages(conn: Conn) -> None:
    """Version 2: the spans of each attempt in pages (read from version 1's row per span)."""
    await conn.execute(_V2_PAGES)
    pages: list[tuple[Any, ...]] = []
    key: tuple[int, int] | None = None
    ids: list[str] = []
    columns: list[codec.PageColumns] = []
    bodies: list[dict[str, Any]] = []

    def flush() -> None:
        if key is not None and ids:
            pages.append((*key, columns[0][0], list(ids), codec.encode_page(columns, bodies)))
        ids.clear()
        columns.clear()
        bodies.clear()

    async with conn.cursor(name="agl_v1_spans") as cur:
        await cur.execute(_V1_SPANS)
        async for row in cur:
            if (row[0], row[1]) != key or len(ids) == codec.PAGE_SPANS:
                flush()
                key = (row[0], row[1])
            ids.append(row[3])
            columns.append([row[2], row[4], row[5], row[6], row[7], row[8], row[9]])
            bodies.append(codec.decode_body(row[10]))
            if len(pages) >= 100:
                await conn.cursor().executemany(_INSERT_PAGE, pages)
                pages.clear()
    flush()
    if pages:
        await conn.cursor().executemany(_INSERT_PAGE, pages)
    await conn.execute("DROP TABLE spans")


Migration = str | Callable[[Conn], Awaitable[None]]
MIGRATIONS: tuple[Migration, ...] = (_V1, _v2_span_pages)
"""``MIGRATIONS[i]`` takes the schema from version ``i`` to ``i + 1`` (an SQL script, or a
coroutine function run on the migrating connection)."""

SCHEMA_VERSION = len(MIGRATIONS)

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,57}")

# The key words PostgreSQL reserves ("reserved" and "reserved (can be function or type)" in the
# appendix "SQL Key Words" of its manual; pg_get_keywords() categories R and T): none can name
# a schema unquoted, so CREATE SCHEMA would fail with a bare syntax error. Those of PostgreSQL
# 15 and system_user (reserved since 16); tests/test_schema.py checks them against the server.
_RESERVED = """
    all analyse analyze and any array as asc asymmetric authorization binary both case cast check
    collate collation column concurrently constraint create cross current_catalog current_date
    current_role current_schema current_time current_timestamp current_user default deferrable desc
    distinct do else end except false fetch for foreign freeze from full grant group having ilike in
    initially inner intersect into is isnull join lateral leading left like limit localtime
    localtimestamp natural not notnull null offset on only or order outer overlaps placing primary
    references returning right select session_user similar some symmetric system_user table
    tablesample then to trailing true union unique user using variadic verbose when where window with
"""
RESERVED_WORDS = frozenset(_RESERVED.split())
"""Names :func:`check_schema_name` refuses although they are lowercase identifiers."""


def check_schema_name(schema: str) -> str:
    """A schema name the store can use unquoted: lowercase letters, digits, ``_``; <= 58 chars;
    not one of PostgreSQL's :data:`RESERVED_WORDS`."""
    if not isinstance(schema, str) or not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"schema must be a lowercase PostgreSQL name (letters, digits, _; at most 58 characters), got {schema!r}"
        )
    if schema in RESERVED_WORDS:
        raise ValueError(
            f"schema {schema!r} is a reserved word of PostgreSQL, which cannot name a schema unquoted;"
            f" pick another name such as 'agl_{schema}'"
        )
    return schema


def channel(schema: str) -> str:
    """The ``LISTEN/NOTIFY`` channel on which the store announces finished rollouts."""
    return f"agl_{schema}"


def redact(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<a DSN that libpq cannot parse>"
    if "password" in params:
        params["password"] = "***"
    return make_conninfo("", **{k: v for k, v in params.items() if v is not None})


def connection_kwargs(dsn: str, schema: str) -> dict[str, str]:
    """Connection options that make ``schema`` the search path (kept with the DSN's own ``options``)."""
    try:
        options = conninfo_to_dict(dsn).get("options") or ""
    except psycopg.ProgrammingError as exc:
        raise PostgresStoreError(f"The PostgreSQL DSN {redact(dsn)} is not valid: {exc}") from None
    return {"options": f"{options} -c search_path={schema}".strip()}


async def connect(dsn: str, schema: str, *, timeout: float) -> Conn:
    """One autocommit connection to the store's database, or :class:`PostgresStoreError` naming the DSN."""
    options = connection_kwargs(dsn, schema)["options"]
    try:
        return await psycopg.AsyncConnection.connect(
            dsn, autocommit=True, connect_timeout=max(1, round(timeout)), options=options
        )
    except psycopg.OperationalError as exc:
        reason = str(exc).strip().replace("\n", " ")
        raise PostgresStoreError(
            f"Cannot connect to the PostgreSQL store at {redact(dsn)}: {reason}. Check the DSN (argument "
            f"dsn= or ${DSN_ENV}), that the server runs and that the user may log in."
        ) from None


async def migrate(conn: Conn, schema: str, where: str) -> None:
    """Create or upgrade the store's tables in ``schema``; refuse foreign or newer ones."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"agentlightning:{schema}",))
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        found = await (
            await conn.execute("SELECT to_regclass(%s)", (f"{schema}.agl_schema_version",))
        ).fetchone()
        if found is None or found[0] is None:
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'S')",
                    (schema,),
                )
            ).fetchone()
            if row is not None and row[0]:
                raise PostgresStoreError(
                    f"The schema {schema!r} of {where} holds {row[0]} tables or sequences of another application "
                    "(no agl_schema_version table); refusing to touch it. Give another schema= or database."
                )
            version = 0
        else:
            row = await (await conn.execute(f"SELECT version FROM {schema}.agl_schema_version")).fetchone()
            version = int(row[0]) if row is not None else 0
        if version > SCHEMA_VERSION:
            raise PostgresStoreError(
                f"The store in schema {schema!r} of {where} has schema version {version}, newer than this "
                f"agentlightning-postgres supports ({SCHEMA_VERSION}). Upgrade it: pip install -U agentlightning-postgres"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            logger.info(
                "Migrating the PostgreSQL store in schema %s of %s to version %d", schema, where, target
            )
            await conn.execute(f"SET LOCAL search_path TO {schema}")
            step = MIGRATIONS[target - 1]
            if isinstance(step, str):
                await conn.execute(step)
            else:
                await step(conn)
        if version < SCHEMA_VERSION:
            await conn.execute(f"UPDATE {schema}.agl_schema_version SET version = %s", (SCHEMA_VERSION,))
