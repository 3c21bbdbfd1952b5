"""``PostgresLightningStore``: the store contract on a PostgreSQL database, shared by processes
and machines.

Every call that changes something runs in one transaction from the store's connection pool
(psycopg 3), so a call that returned is committed and a call that failed changed nothing.
Changes to a rollout and its attempts lock the rollout's row, so store processes sharing the
database apply them one after the other; dequeue takes queued rollouts with ``SELECT ... FOR
UPDATE SKIP LOCKED`` in the transaction that creates their attempts. A rollout that becomes
terminal is announced with ``NOTIFY`` on commit, which wakes ``wait_for_rollouts`` in every
process. Transition rules come from :mod:`agentlightning_core.store.policy`, shared with the
other backends; the SQL of each entity lives in its own module, as in the SQLite store.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import anyio.abc
import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool

from agentlightning_core import NamedResources, ResourcesUpdate, Span
from agentlightning_core.store import policy
from agentlightning_core.store.base import (
    UNSET,
    EnqueueRequest,
    FilterLogic,
    LightningStore,
    PaginatedResult,
    RolloutSortKey,
    SortOrder,
    SpanSortKey,
    Unset,
    WorkerSortKey,
)
from agentlightning_core.store.sql import (
    check_rollout_query,
    check_span_query,
    resources_from_row,
    resources_query,
    worker_from_row,
    worker_query,
)
from agentlightning_core.types import (
    Attempt,
    AttemptedRollout,
    AttemptStatus,
    Rollout,
    RolloutConfig,
    RolloutMode,
    RolloutStatus,
    Worker,
    WorkerStatus,
    parse_attempt_status,
    parse_rollout_status,
    parse_worker_status,
)
from agentlightning_core.validation import check_mode, check_non_empty_str, check_positive_int, check_seconds
from agentlightning_postgres import attempts, maintenance, rollouts, workers
from agentlightning_postgres import resources as resources_sql
from agentlightning_postgres import schema as pg_schema
from agentlightning_postgres import spans as spans_sql
from agentlightning_postgres.combine import Combiner
from agentlightning_postgres.errors import PostgresStoreError
from agentlightning_postgres.sql import POSTGRES, Conn, page, transaction

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["PostgresLightningStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
_RETRIES = 5
"""Tries of a transaction that PostgreSQL aborted as a deadlock or serialization failure."""
_RECONNECT_SECONDS = 1.0


class PostgresLightningStore(LightningStore):
    """A durable :class:`LightningStore` in a PostgreSQL database.

    Any number of processes (runners, ``agl store serve --workers N`` server processes, on any
    machine) may use the same database and schema at once.

    :param dsn: a libpq connection string or URL (``postgresql://user:pass@host/db``); when
        None, ``$AGL_POSTGRES_DSN``.
    :param schema: the PostgreSQL schema holding the store's tables (created when missing), so
        several stores can share a database.
    :param pool_size: most connections this store opens (besides one for ``LISTEN``).
    :param watchdog_interval: seconds between watchdog passes (time-outs, unresponsive
        attempts, retention); ``None`` disables the time-out checks.
    :param retention_seconds: when set, finished rollouts whose ``end_time`` is older than
        this are deleted with their attempts and spans by the watchdog.
    :param connect_timeout: seconds to wait for the server when connecting.
    """

    def __init__(
        self,
        dsn: str | None = None,
        *,
        schema: str = "agentlightning",
        pool_size: int = 10,
        watchdog_interval: float | None = 1.0,
        retention_seconds: float | None = None,
        connect_timeout: float = 10.0,
    ) -> None:
        if dsn is None:
            dsn = os.environ.get(pg_schema.DSN_ENV) or None
        if dsn is None:
            raise PostgresStoreError(
                "PostgresLightningStore needs a DSN: give dsn='postgresql://user:password@host:5432/dbname' "
                f'(or --store \'{{"type": "postgres", "dsn": ...}}\') or set ${pg_schema.DSN_ENV}'
            )
        if not isinstance(dsn, str):
            raise TypeError(f"dsn must be a connection string, got {type(dsn).__name__}")
        self.dsn = dsn
        self.schema = pg_schema.check_schema_name(schema)
        self.pool_size = check_positive_int("pool_size", pool_size)
        self.watchdog_interval = check_seconds("watchdog_interval", watchdog_interval)
        self.retention_seconds = check_seconds("retention_seconds", retention_seconds)
        self.connect_timeout = check_seconds("connect_timeout", connect_timeout, allow_none=False)
        self.channel = pg_schema.channel(self.schema)
        self.where = f"{pg_schema.redact(dsn)} (schema {self.schema})"
        """How messages name this store: the DSN without its password, and the schema."""
        self._kwargs: dict[str, Any] = {"autocommit": True, **pg_schema.connection_kwargs(dsn, self.schema)}
        self._pool: AsyncConnectionPool[Conn] | None = None
        self._open_lock = anyio.Lock()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._listening = False
        self._changed = anyio.Event()
        self._span_resources = spans_sql.ResourceRefs()
        self._created = time.monotonic()
        # concurrent calls of these kinds run together (group commit): see combine.py
        self._enqueue = Combiner(self._enqueue_batch)
        self._dequeue = Combiner(self._dequeue_batch, max_batch=attempts.DEQUEUE_CHUNK)
        self._update = Combiner(self._update_batch, key=lambda change: change.rollout_id)

    def __repr__(self) -> str:
        return f"PostgresLightningStore({pg_schema.redact(self.dsn)!r}, schema={self.schema!r})"

    # --- lifecycle ---------------------------------------------------------------------

    async def _opened(self) -> AsyncConnectionPool[Conn]:
        if self._pool is not None:
            return self._pool
        async with self._open_lock:
            if self._pool is None:
                # One plain connection first: its failure says why (the pool would only time out).
                conn = await self._connect()
                try:
                    await pg_schema.migrate(conn, self.schema, self.where)
                finally:
                    await conn.close()
                pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs=self._kwargs,
                    open=False,
                    timeout=max(30.0, self.connect_timeout),
                    name=f"agl-postgres-{self.schema}",
                )
                await pool.open(wait=True, timeout=self.connect_timeout)
                self._pool = pool
            return self._pool

    async def _connect(self) -> Conn:
        return await pg_schema.connect(self.dsn, self.schema, timeout=self.connect_timeout)

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` on a pooled connection (autocommit: each statement sees committed data)."""
        pool = await self._opened()
        async with pool.connection() as conn:
            return await fn(conn)

    async def _write(self, fn: Callable[[Conn], Awaitable[T]], *, own: bool = False) -> T:
        """Run ``fn`` in one transaction, tried again when PostgreSQL aborts it as a deadlock.

        The transaction runs in pipeline mode (:func:`sql.transaction`); ``own``: ``fn`` makes
        its own (a single statement, which autocommit makes a transaction, or span batches).
        """
        pool = await self._opened()
        for attempt in range(_RETRIES):
            try:
                async with pool.connection() as conn:
                    return await (fn(conn) if own else transaction(conn, fn))
            except (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure):
                self._span_resources.clear_refs()
                if attempt == _RETRIES - 1:
                    raise
                logger.debug("Transaction on %s aborted by a deadlock; trying again", self.where)
            except BaseException:
                self._span_resources.clear_refs()  # refs inserted by the rolled-back transaction are gone
                raise
        raise AssertionError("unreachable")

    async def start(self) -> None:
        """Connect (creating or migrating the tables), listen for finished rollouts and start
        the watchdog. Idempotent."""
        await self._opened()
        if self._task_group is None:
            tg = anyio.create_task_group()
            await tg.__aenter__()
            self._task_group = tg
            try:
                await tg.start(self._listen_loop)
                if self.watchdog_interval is not None or self.retention_seconds is not None:
                    await tg.start(self._watchdog_loop)
            except BaseException:
                await self.aclose()
                raise

    async def aclose(self) -> None:
        """Stop the watchdog and the listener and close the connections. Idempotent."""
        tg, self._task_group = self._task_group, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _notify(self) -> None:
        """Wake ``wait_for_rollouts`` callers of this store."""
        self._changed.set()
        self._changed = anyio.Event()

    async def _listen_loop(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Wake waiters on every ``NOTIFY`` of the store's channel, reconnecting if the
        connection drops (waiters then look again, so nothing finished meanwhile is missed)."""
        started = False
        while True:
            try:
                conn = await self._connect()
                try:
                    await conn.execute(f"LISTEN {self.channel}")
                    self._listening = True
                    if started:
                        self._notify()  # whatever finished while we were away
                    else:
                        started = True
                        task_status.started()
                    async for _ in conn.notifies():
                        self._notify()
                finally:
                    self._listening = False
                    with anyio.CancelScope(shield=True):
                        await conn.close()
            except (psycopg.OperationalError, PostgresStoreError):
                if not started:
                    raise
                logger.warning(
                    "Lost the LISTEN connection to %s; reconnecting in %g s",
                    self.where,
                    _RECONNECT_SECONDS,
                    exc_info=True,
                )
                self._notify()
                await anyio.sleep(_RECONNECT_SECONDS)

    # --- rollouts ----------------------------------------------------------------------

    async def start_rollout(
        self,
        input: Any,
        mode: RolloutMode | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | None = None,
        metadata: dict[str, Any] | None = None,
        worker_id: str | None = None,
    ) -> AttemptedRollout:
        async def op(conn: Conn) -> AttemptedRollout:
            now = time.time()
            rollout = rollouts.new_rollout(
                now, input, mode, resources_id, config, metadata, RolloutStatus.PREPARING
            )
            rid = await rollouts.insert(conn, rollout)
            return await attempts.new(conn, now, rid, rollout, 0, worker_id)

        return await self._write(op)

    async def enqueue_rollout(
        self,
        input: Any,
        mode: RolloutMode | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Rollout:
        rollout = rollouts.new_rollout(
            time.time(), input, mode, resources_id, config, metadata, RolloutStatus.QUEUING
        )

        return await self._enqueue(rollout)

    async def _enqueue_batch(self, items: list[Rollout]) -> list[Rollout]:
        """Concurrent ``enqueue_rollout`` calls: one statement."""
        if len(items) == 1:  # a lone call: the plain statement costs the client less than arrays
            await self._write(lambda conn: rollouts.insert(conn, items[0], latest_resources=True), own=True)
        else:
            await self._write(lambda conn: rollouts.enqueue_each(conn, items), own=True)
        return items

    async def enqueue_many_rollouts(self, requests: Sequence[EnqueueRequest]) -> list[Rollout]:
        items = list(requests)
        for i, req in enumerate(items):
            if not isinstance(req, EnqueueRequest):
                raise TypeError(
                    f"enqueue_many_rollouts expects EnqueueRequest items; item {i} is {req!r:.80}"
                )

        async def op(conn: Conn) -> list[Rollout]:
            now = time.time()
            latest = await resources_sql.latest_id(conn)
            out = []
            for r in items:
                rollout = rollouts.new_rollout(
                    now,
                    r.input,
                    r.mode,
                    r.resources_id if r.resources_id is not None else latest,
                    r.config,
                    r.metadata,
                    RolloutStatus.QUEUING,
                )
                await rollouts.send_insert(conn, rollout)  # pipelined: no round trip of its own
                out.append(rollout)
            return out

        return await self._write(op) if items else []

    async def dequeue_rollout(self, worker_id: str | None = None) -> AttemptedRollout | None:
        return await self._dequeue(worker_id)

    async def _dequeue_batch(self, workers: list[str | None]) -> list[AttemptedRollout | None]:
        """Concurrent ``dequeue_rollout`` calls: one statement hands out a rollout to each."""
        return await self._write(lambda conn: attempts.dequeue_each(conn, workers), own=True)

    async def dequeue_many_rollouts(self, limit: int, worker_id: str | None = None) -> list[AttemptedRollout]:
        check_positive_int("limit", limit, minimum=0)
        if limit == 0:
            return []
        return await self._write(lambda conn: attempts.dequeue(conn, limit, worker_id), own=True)

    async def start_attempt(self, rollout_id: str, worker_id: str | None = None) -> AttemptedRollout:
        return await self._write(lambda conn: attempts.start(conn, rollout_id, worker_id, self.where))

    async def query_rollouts(
        self,
        *,
        status_in: Sequence[RolloutStatus | str] | None = None,
        rollout_id_in: Sequence[str] | None = None,
        rollout_id_contains: str | None = None,
        filter_logic: FilterLogic = "and",
        sort_by: RolloutSortKey | None = None,
        sort_order: SortOrder = "asc",
        limit: int = -1,
        offset: int = 0,
    ) -> PaginatedResult[Rollout]:
        statuses = check_rollout_query(
            status_in, rollout_id_in, rollout_id_contains, filter_logic, sort_by, sort_order, limit, offset
        )
        return await self._read(
            lambda conn: rollouts.query(
                conn,
                statuses,
                rollout_id_in,
                rollout_id_contains,
                filter_logic,
                sort_by,
                sort_order,
                limit,
                offset,
            )
        )

    async def get_rollout_by_id(self, rollout_id: str) -> Rollout:
        return await self._read(lambda conn: rollouts.get(conn, rollout_id, self.where))

    async def update_rollout(
        self,
        rollout_id: str,
        *,
        input: Any = UNSET,
        mode: RolloutMode | Unset | None = UNSET,
        resources_id: str | Unset | None = UNSET,
        status: RolloutStatus | str | Unset = UNSET,
        config: RolloutConfig | Unset = UNSET,
        metadata: dict[str, Any] | Unset = UNSET,
    ) -> Rollout:
        new_status = parse_rollout_status(status) if not isinstance(status, Unset) else None
        if not isinstance(mode, Unset):
            check_mode("mode", mode)
        if not isinstance(config, (Unset, RolloutConfig)):
            raise TypeError(f"config must be a RolloutConfig, got {type(config).__name__}")
        if not isinstance(metadata, (Unset, dict)):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        rollout, _ = await self._write(
            lambda conn: rollouts.update(
                conn,
                rollout_id,
                self.where,
                self.channel,
                new_status,
                input=input,
                mode=mode,
                resources_id=resources_id,
                config=config,
                metadata=metadata,
            )
        )
        return rollout

    async def wait_for_rollouts(
        self, rollout_ids: Sequence[str], timeout: float | None = None
    ) -> list[Rollout]:
        if isinstance(rollout_ids, str):
            raise TypeError(f"rollout_ids must be a list of ids, got the string {rollout_ids!r}")
        timeout = policy.check_wait_timeout(timeout)
        ids = list(rollout_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._task_group is not None:
            return await self._wait(ids, deadline)
        # Not started (no shared listener): listen for the length of this call.
        async with anyio.create_task_group() as tg:
            await tg.start(self._listen_loop)
            try:
                done = await self._wait(ids, deadline)
            finally:
                tg.cancel_scope.cancel()
        return done

    async def _wait(self, ids: list[str], deadline: float | None) -> list[Rollout]:
        while True:
            changed = self._changed  # taken before the check, so no wake-up is missed
            done = await self._read(lambda conn: rollouts.finished(conn, ids, self.where))
            remaining = None if deadline is None else deadline - time.monotonic()
            if len(done) == len(ids) or (remaining is not None and remaining <= 0):
                return done
            with anyio.move_on_after(remaining):
                await changed.wait()
            if not changed.is_set():
                return done

    # --- attempts ----------------------------------------------------------------------

    async def query_attempts(
        self,
        rollout_id: str,
        *,
        sort_by: Literal["sequence_id", "start_time"] = "sequence_id",
        sort_order: SortOrder = "asc",
        limit: int = -1,
        offset: int = 0,
    ) -> PaginatedResult[Attempt]:
        policy.check_paging(limit, offset)
        policy.check_sort(sort_by, sort_order, ("sequence_id", "start_time"))
        return await self._read(
            lambda conn: attempts.query(conn, rollout_id, self.where, sort_by, sort_order, limit, offset)
        )

    async def get_latest_attempt(self, rollout_id: str) -> Attempt | None:
        return await self._read(lambda conn: attempts.latest(conn, rollout_id, self.where))

    async def update_attempt(
        self,
        rollout_id: str,
        attempt_id: str | Literal["latest"],
        *,
        status: AttemptStatus | str | Unset = UNSET,
        worker_id: str | Unset | None = UNSET,
        last_heartbeat_time: float | Unset = UNSET,
        metadata: dict[str, Any] | Unset = UNSET,
        reward: float | Unset | None = UNSET,
    ) -> Attempt:
        new_status = parse_attempt_status(status) if not isinstance(status, Unset) else None
        if not isinstance(metadata, (Unset, dict)):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
        checked_reward = reward if isinstance(reward, Unset) else policy.check_reward(reward)
        return await self._update(
            attempts.Change(
                rollout_id, attempt_id, new_status, worker_id, last_heartbeat_time, metadata, checked_reward
            )
        )

    async def _update_batch(self, changes: list[attempts.Change]) -> list[Attempt]:
        """Concurrent ``update_attempt`` calls (one per rollout): one transaction."""
        if len(changes) == 1:  # a lone call: the plain statements cost the client less than arrays
            attempt, _ = await self._write(
                lambda conn: attempts.update(conn, changes[0], self.where, self.channel)
            )
            return [attempt]
        return await self._write(lambda conn: attempts.update_each(conn, changes, self.where, self.channel))

    # --- spans -------------------------------------------------------------------------

    async def add_span(self, span: Span) -> Span | None:
        if not isinstance(span, Span):
            raise TypeError(f"add_span expects a Span, got {type(span).__name__}")
        stored = await self._write(
            lambda conn: spans_sql.add(conn, [span], self._span_resources, self.where, self.channel), own=True
        )
        return stored[0] if stored else None

    async def add_many_spans(self, spans: Sequence[Span]) -> list[Span]:
        items = list(spans)
        for i, span in enumerate(items):
            if not isinstance(span, Span):
                raise TypeError(f"add_many_spans expects Span items; item {i} is {type(span).__name__}")
        if not items:
            return []
        return await self._write(
            lambda conn: spans_sql.add(conn, items, self._span_resources, self.where, self.channel), own=True
        )

    async def add_otel_span(
        self, rollout_id: str, attempt_id: str, readable_span: ReadableSpan, sequence_id: int | None = None
    ) -> Span | None:
        span = Span.from_opentelemetry(
            readable_span, rollout_id=rollout_id, attempt_id=attempt_id, sequence_id=sequence_id or 0
        )
        return await self.add_span(span)

    async def get_next_span_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        return (await self.get_many_span_sequence_ids([(rollout_id, attempt_id)]))[0]

    async def get_many_span_sequence_ids(self, rollout_attempt_ids: Sequence[tuple[str, str]]) -> list[int]:
        pairs = [(r, a) for r, a in rollout_attempt_ids]
        if not pairs:
            return []
        return await self._write(lambda conn: spans_sql.allocate_sequence_ids(conn, pairs, self.where))

    async def query_spans(
        self,
        rollout_id: str,
        attempt_id: str | Literal["latest"] | None = None,
        *,
        name: str | None = None,
        name_contains: str | None = None,
        trace_id: str | None = None,
        trace_id_contains: str | None = None,
        span_id: str | None = None,
        span_id_contains: str | None = None,
        parent_id: str | None = None,
        parent_id_contains: str | None = None,
        filter_logic: FilterLogic = "and",
        sort_by: SpanSortKey = "sequence_id",
        sort_order: SortOrder = "asc",
        limit: int = -1,
        offset: int = 0,
    ) -> PaginatedResult[Span]:
        query = check_span_query(
            filter_logic,
            sort_by,
            sort_order,
            limit,
            offset,
            (
                name,
                name_contains,
                trace_id,
                trace_id_contains,
                span_id,
                span_id_contains,
                parent_id,
                parent_id_contains,
            ),
        )
        return await self._read(
            lambda conn: spans_sql.query(
                conn, self._span_resources, self.where, rollout_id, attempt_id, query
            )
        )

    # --- resources ---------------------------------------------------------------------

    async def add_resources(self, resources: NamedResources) -> ResourcesUpdate:
        body = resources_sql.check(resources)
        return await self._write(lambda conn: resources_sql.add(conn, resources, body))

    async def update_resources(self, resources_id: str, resources: NamedResources) -> ResourcesUpdate:
        check_non_empty_str("resources_id", resources_id)
        body = resources_sql.check(resources)
        return await self._write(lambda conn: resources_sql.update(conn, resources_id, resources, body))

    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate:
        return await self._read(lambda conn: resources_sql.get(conn, resources_id, self.where))

    async def get_latest_resources(self) -> ResourcesUpdate | None:
        return await self._read(resources_sql.latest)

    async def query_resources(
        self,
        *,
        resources_id: str | None = None,
        resources_id_contains: str | None = None,
        sort_by: Literal["create_time", "update_time", "resources_id"] = "update_time",
        sort_order: SortOrder = "asc",
        limit: int = -1,
        offset: int = 0,
    ) -> PaginatedResult[ResourcesUpdate]:
        q = resources_query(
            POSTGRES, resources_id, resources_id_contains, sort_by, sort_order, limit, offset, "latest_seq"
        )
        return await self._read(lambda conn: page(conn, q, resources_from_row))

    # --- workers -----------------------------------------------------------------------

    async def query_workers(
        self,
        *,
        status_in: Sequence[WorkerStatus | str] | None = None,
        worker_id_contains: str | None = None,
        filter_logic: FilterLogic = "and",
        sort_by: WorkerSortKey | None = None,
        sort_order: SortOrder = "asc",
        limit: int = -1,
        offset: int = 0,
    ) -> PaginatedResult[Worker]:
        q = worker_query(
            POSTGRES, status_in, worker_id_contains, filter_logic, sort_by, sort_order, limit, offset
        )
        return await self._read(lambda conn: page(conn, q, worker_from_row))

    async def get_worker_by_id(self, worker_id: str) -> Worker:
        return await self._read(lambda conn: workers.get(conn, worker_id, self.where))

    async def update_worker(
        self,
        worker_id: str,
        *,
        status: WorkerStatus | str | Unset = UNSET,
        heartbeat_stats: dict[str, Any] | Unset | None = UNSET,
    ) -> Worker:
        check_non_empty_str("worker_id", worker_id)
        new_status = parse_worker_status(status) if not isinstance(status, Unset) else None
        if not isinstance(heartbeat_stats, (Unset, dict)) and heartbeat_stats is not None:
            raise TypeError(f"heartbeat_stats must be a dict or None, got {type(heartbeat_stats).__name__}")
        set_stats = not isinstance(heartbeat_stats, Unset)
        return await self._write(
            lambda conn: workers.update(conn, worker_id, new_status, heartbeat_stats, set_stats)
        )

    # --- introspection -----------------------------------------------------------------

    async def statistics(self) -> dict[str, Any]:
        stats = await self._read(maintenance.statistics)
        return policy.with_earlier_statistics(stats, self, self._created)

    # --- watchdog and retention -------------------------------------------------------

    async def _watchdog_loop(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        interval = self.watchdog_interval if self.watchdog_interval is not None else 1.0
        while True:
            await anyio.sleep(interval)
            try:
                if self.watchdog_interval is not None:
                    await self.watchdog_pass()
                if self.retention_seconds is not None:
                    await self.delete_finished(older_than=self.retention_seconds)
            except (PostgresStoreError, psycopg.Error):
                logger.exception(
                    "Watchdog pass on the PostgreSQL store %s failed; retrying next period", self.where
                )

    async def watchdog_pass(self, now: float | None = None) -> int:
        """Mark overdue active attempts ``timeout``/``unresponsive`` now; returns how many changed.

        The watchdog task calls this every ``watchdog_interval`` seconds.
        """
        due = await self._read(
            lambda conn: maintenance.due_attempts(conn, time.time() if now is None else now)
        )
        if not due:
            return 0
        changed, _ = await self._write(
            lambda conn: maintenance.mark_due(conn, due, time.time() if now is None else now, self.channel)
        )
        if changed:
            logger.info("Watchdog marked %d attempt(s) timed out or unresponsive in %s", changed, self.where)
        return changed

    async def delete_finished(self, older_than: float) -> int:
        """Delete finished rollouts (with their attempts and spans) that ended more than
        ``older_than`` seconds ago; returns how many were deleted."""
        check_seconds("older_than", older_than, allow_none=False, allow_zero=True)
        cutoff = time.time() - older_than
        if not await self._read(lambda conn: maintenance.has_finished_before(conn, cutoff)):
            return 0  # the common case takes no lock
        total = 0
        while True:
            n = await self._write(lambda conn: maintenance.delete_finished_batch(conn, cutoff))
            total += n
            if n < maintenance.RETENTION_BATCH:
                break
        if total:
            logger.info(
                "Deleted %d finished rollout(s) older than %g s from %s", total, older_than, self.where
            )
        return total
