"""``SqliteLightningStore``: the store contract on one SQLite file, shared by processes.

Every operation runs on the store's connection thread (:mod:`agentlightning_sqlite.worker`);
every call's changes commit together in a ``BEGIN IMMEDIATE`` transaction (shared with
concurrent calls, each in its own savepoint), so a call that returned is committed and a
call that failed changed nothing. Transition rules come from
:mod:`agentlightning_core.store.policy`, shared with the other backends.

This class checks arguments and runs the SQL of each entity (:mod:`~agentlightning_sqlite.rollouts`,
:mod:`~agentlightning_sqlite.attempts`, :mod:`~agentlightning_sqlite.spans`,
:mod:`~agentlightning_sqlite.resources`, :mod:`~agentlightning_sqlite.workers`) and of
maintenance (:mod:`~agentlightning_sqlite.maintenance`: watchdog, retention, compaction) on
that thread.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import anyio.abc
import anyio.to_thread

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
from agentlightning_sqlite import attempts, maintenance, rollouts, workers
from agentlightning_sqlite import resources as resources_sql
from agentlightning_sqlite import spans as spans_sql
from agentlightning_sqlite.errors import SqliteStoreError
from agentlightning_sqlite.schema import Durability, connect_checkpointer, open_connection
from agentlightning_sqlite.sql import SQLITE, Conn, page
from agentlightning_sqlite.worker import ConnectionWorker

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["SqliteLightningStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SqliteLightningStore(LightningStore):
    """A durable :class:`LightningStore` in one SQLite file (WAL mode).

    Several processes may open the same file: writes are short ``BEGIN IMMEDIATE``
    transactions, so dequeue is atomic across processes and span sequence ids stay unique.

    :param path: the database file, created (with its schema) when missing.
    :param durability: ``"process_crash"`` (default; ``synchronous=NORMAL``: a returned call
        survives the process being killed) or ``"power_loss"`` (``synchronous=FULL``: it also
        survives an OS crash or power cut, at the price of an fsync per write).
    :param watchdog_interval: seconds between watchdog passes (time-outs, unresponsive
        attempts, retention); ``None`` disables the time-out checks.
    :param retention_seconds: when set, finished rollouts whose ``end_time`` is older than
        this are deleted with their attempts and spans by the watchdog.
    :param lock_timeout: seconds to wait for another process's write transaction before
        failing with :class:`SqliteStoreError`.
    :param poll_interval: how often ``wait_for_rollouts`` looks for changes made by *other*
        processes (``PRAGMA data_version``); changes made through this store wake it at once.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = "agentlightning.db",
        *,
        durability: Durability = "process_crash",
        watchdog_interval: float | None = 1.0,
        retention_seconds: float | None = None,
        lock_timeout: float = 30.0,
        poll_interval: float = 0.5,
    ) -> None:
        if durability not in ("process_crash", "power_loss"):
            raise ValueError(f"Unknown durability {durability!r}; expected 'process_crash' or 'power_loss'")
        self.path = Path(path)
        self.durability: Durability = durability
        self.watchdog_interval = check_seconds("watchdog_interval", watchdog_interval)
        self.retention_seconds = check_seconds("retention_seconds", retention_seconds)
        self.lock_timeout = check_seconds("lock_timeout", lock_timeout, allow_none=False)
        self.poll_interval = check_seconds("poll_interval", poll_interval, allow_none=False)
        self._worker: ConnectionWorker | None = None
        self._open_lock = threading.Lock()
        self._task_group: anyio.abc.TaskGroup | None = None
        self._changed = anyio.Event()
        self._span_resources = spans_sql.ResourceRefs()
        self._created = time.monotonic()

    def __repr__(self) -> str:
        return f"SqliteLightningStore({str(self.path)!r}, durability={self.durability!r})"

    # --- lifecycle ---------------------------------------------------------------------

    def _get_worker(self) -> ConnectionWorker:
        with self._open_lock:
            if self._worker is None:
                conn = open_connection(self.path, durability=self.durability, busy_timeout=self.lock_timeout)
                self._worker = ConnectionWorker(
                    conn,
                    self.path,
                    self.lock_timeout,
                    connect_checkpointer=functools.partial(
                        connect_checkpointer, self.path, durability=self.durability
                    ),
                    on_rollback=self._span_resources.clear_refs,
                )
            return self._worker

    async def _opened(self) -> ConnectionWorker:
        if self._worker is None:
            # Opening may wait for another process's lock or run migrations: off the loop.
            worker = await anyio.to_thread.run_sync(self._get_worker)
            return worker
        return self._worker

    async def _read(self, fn: Callable[[Conn], T]) -> T:
        return await (await self._opened()).read(fn)

    async def _write(self, fn: Callable[[Conn], T]) -> T:
        return await (await self._opened()).write(fn)

    async def start(self) -> None:
        """Open the file (creating or migrating it) and start the watchdog. Idempotent."""
        await self._opened()
        if self._task_group is None and (
            self.watchdog_interval is not None or self.retention_seconds is not None
        ):
            tg = anyio.create_task_group()
            await tg.__aenter__()
            self._task_group = tg
            await tg.start(self._watchdog_loop)

    async def aclose(self) -> None:
        """Stop the watchdog and close the file. Idempotent."""
        tg, self._task_group = self._task_group, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        worker, self._worker = self._worker, None
        if worker is not None:
            await anyio.to_thread.run_sync(worker.close)

    def _notify(self) -> None:
        """Wake ``wait_for_rollouts`` callers of this store."""
        self._changed.set()
        self._changed = anyio.Event()

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
        def op(conn: Conn) -> AttemptedRollout:
            now = time.time()
            rid, rollout = rollouts.insert(
                conn, now, input, mode, resources_id, config, metadata, RolloutStatus.PREPARING
            )
            return attempts.new(conn, now, rid, rollout, 0, worker_id)

        return await self._write(op)

    async def enqueue_rollout(
        self,
        input: Any,
        mode: RolloutMode | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Rollout:
        def op(conn: Conn) -> Rollout:
            return rollouts.insert(
                conn,
                time.time(),
                input,
                mode,
                resources_id,
                config,
                metadata,
                RolloutStatus.QUEUING,
                latest_resources=True,
            )[1]

        return await self._write(op)

    async def enqueue_many_rollouts(self, requests: Sequence[EnqueueRequest]) -> list[Rollout]:
        items = list(requests)
        for i, req in enumerate(items):
            if not isinstance(req, EnqueueRequest):
                raise TypeError(
                    f"enqueue_many_rollouts expects EnqueueRequest items; item {i} is {req!r:.80}"
                )

        def op(conn: Conn) -> list[Rollout]:
            now = time.time()
            latest = resources_sql.latest_id(conn)
            return [
                rollouts.insert(
                    conn,
                    now,
                    r.input,
                    r.mode,
                    r.resources_id if r.resources_id is not None else latest,
                    r.config,
                    r.metadata,
                    RolloutStatus.QUEUING,
                )[1]
                for r in items
            ]

        return await self._write(op) if items else []

    async def dequeue_rollout(self, worker_id: str | None = None) -> AttemptedRollout | None:
        got = await self._write(lambda conn: attempts.dequeue(conn, 1, worker_id))
        return got[0] if got else None

    async def dequeue_many_rollouts(self, limit: int, worker_id: str | None = None) -> list[AttemptedRollout]:
        check_positive_int("limit", limit, minimum=0)
        if limit == 0:
            return []
        return await self._write(lambda conn: attempts.dequeue(conn, limit, worker_id))

    async def start_attempt(self, rollout_id: str, worker_id: str | None = None) -> AttemptedRollout:
        return await self._write(lambda conn: attempts.start(conn, rollout_id, worker_id, self.path))

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
        return await self._read(lambda conn: rollouts.get(conn, rollout_id, self.path))

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
        rollout, terminal = await self._write(
            lambda conn: rollouts.update(
                conn,
                rollout_id,
                self.path,
                new_status,
                input=input,
                mode=mode,
                resources_id=resources_id,
                config=config,
                metadata=metadata,
            )
        )
        if terminal:
            self._notify()
        return rollout

    async def wait_for_rollouts(
        self, rollout_ids: Sequence[str], timeout: float | None = None
    ) -> list[Rollout]:
        if isinstance(rollout_ids, str):
            raise TypeError(f"rollout_ids must be a list of ids, got the string {rollout_ids!r}")
        timeout = policy.check_wait_timeout(timeout)
        ids = list(rollout_ids)
        deadline = None if timeout is None else time.monotonic() + timeout

        def data_version(conn: Conn) -> int:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

        while True:
            changed = self._changed  # taken before the check, so no wake-up is missed
            done, version = await self._read(lambda conn: rollouts.finished(conn, ids, self.path))
            if len(done) == len(ids):
                return done
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return done
                wait = self.poll_interval if remaining is None else min(self.poll_interval, remaining)
                with anyio.move_on_after(wait):
                    await changed.wait()
                if changed.is_set():
                    break
                # No change in this process; another process may have committed one.
                if await self._read(data_version) != version:
                    break

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
            lambda conn: attempts.query(conn, rollout_id, self.path, sort_by, sort_order, limit, offset)
        )

    async def get_latest_attempt(self, rollout_id: str) -> Attempt | None:
        return await self._read(lambda conn: attempts.latest(conn, rollout_id, self.path))

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
        attempt, terminal = await self._write(
            lambda conn: attempts.update(
                conn,
                rollout_id,
                attempt_id,
                self.path,
                new_status,
                worker_id,
                last_heartbeat_time,
                metadata,
                checked_reward,
            )
        )
        if terminal:
            self._notify()
        return attempt

    # --- spans -------------------------------------------------------------------------

    async def add_span(self, span: Span) -> Span | None:
        if not isinstance(span, Span):
            raise TypeError(f"add_span expects a Span, got {type(span).__name__}")
        stored = await self._write(lambda conn: spans_sql.add(conn, [span], self._span_resources, self.path))
        return stored[0] if stored else None

    async def add_many_spans(self, spans: Sequence[Span]) -> list[Span]:
        items = list(spans)
        for i, span in enumerate(items):
            if not isinstance(span, Span):
                raise TypeError(f"add_many_spans expects Span items; item {i} is {type(span).__name__}")
        if not items:
            return []
        return await self._write(lambda conn: spans_sql.add(conn, items, self._span_resources, self.path))

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
        return await self._write(lambda conn: spans_sql.allocate_sequence_ids(conn, pairs, self.path))

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
            lambda conn: spans_sql.query(conn, self._span_resources, self.path, rollout_id, attempt_id, query)
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
        return await self._read(lambda conn: resources_sql.get(conn, resources_id, self.path))

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
            SQLITE, resources_id, resources_id_contains, sort_by, sort_order, limit, offset, "rowid"
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
            SQLITE, status_in, worker_id_contains, filter_logic, sort_by, sort_order, limit, offset
        )
        return await self._read(lambda conn: page(conn, q, worker_from_row))

    async def get_worker_by_id(self, worker_id: str) -> Worker:
        return await self._read(lambda conn: workers.get(conn, worker_id, self.path))

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
        stats = await self._read(lambda conn: maintenance.statistics(conn, self.path))
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
            except (SqliteStoreError, sqlite3.Error):
                logger.exception(
                    "Watchdog pass on the SQLite store %s failed; retrying next period", self.path
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
        changed, terminal = await self._write(
            lambda conn: maintenance.mark_due(conn, due, time.time() if now is None else now)
        )
        if changed:
            logger.info("Watchdog marked %d attempt(s) timed out or unresponsive in %s", changed, self.path)
        if terminal:
            self._notify()
        return changed

    async def delete_finished(self, older_than: float) -> int:
        """Delete finished rollouts (with their attempts and spans) that ended more than
        ``older_than`` seconds ago; returns how many were deleted."""
        check_seconds("older_than", older_than, allow_none=False, allow_zero=True)
        cutoff = time.time() - older_than
        if not await self._read(lambda conn: maintenance.has_finished_before(conn, cutoff)):
            return 0  # the common case costs no write lock
        total = 0
        while True:
            n = await self._write(lambda conn: maintenance.delete_finished_batch(conn, cutoff))
            total += n
            if n < maintenance.RETENTION_BATCH:
                break
        if total:
            logger.info(
                "Deleted %d finished rollout(s) older than %g s from %s", total, older_than, self.path
            )
        return total

    async def vacuum(self, older_than: float | None = None) -> dict[str, Any]:
        """Optionally delete finished rollouts older than ``older_than`` seconds, then compact the file.

        Returns ``{"deleted_rollouts", "bytes_before", "bytes_after"}``. Compaction rewrites the
        file and needs a moment without other writers; it waits for them up to ``lock_timeout``.
        """
        worker = await self._opened()
        before = maintenance.file_bytes(self.path)
        deleted = await self.delete_finished(older_than) if older_than is not None else 0
        await worker.read(maintenance.compact)
        return {
            "deleted_rollouts": deleted,
            "bytes_before": before,
            "bytes_after": maintenance.file_bytes(self.path),
        }
