"""``SqliteLightningStore``: the store contract on one SQLite file, shared by processes.

Every operation runs on the store's connection thread (:mod:`agentlightning_sqlite.worker`);
every call's changes commit together in a ``BEGIN IMMEDIATE`` transaction (shared with
concurrent calls, each in its own savepoint), so a call that returned is committed and a
call that failed changed nothing. Transition rules come from
:mod:`agentlightning_core.store.policy`, shared with the other backends.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
import threading
import time
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import anyio
import anyio.abc
import anyio.to_thread

from agentlightning_core.errors import (
    AttemptNotFoundError,
    ResourcesNotFoundError,
    RolloutNotFoundError,
    WorkerNotFoundError,
)
from agentlightning_core.resources import NamedResources, ResourcesUpdate
from agentlightning_core.spans import Span
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
from agentlightning_core.store.copying import copier
from agentlightning_core.types import (
    TERMINAL_ATTEMPT_STATUSES,
    TERMINAL_ROLLOUT_STATUSES,
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
from agentlightning_sqlite import codec
from agentlightning_sqlite.codec import ATTEMPT_COLUMNS, ROLLOUT_COLUMNS, SPAN_COLUMNS, WORKER_COLUMNS
from agentlightning_sqlite.errors import SqliteStoreError
from agentlightning_sqlite.schema import Durability, connect_checkpointer, open_connection
from agentlightning_sqlite.worker import ConnectionWorker

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["SqliteLightningStore"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Conn = sqlite3.Connection

_QUEUED = tuple(str(s) for s in policy.QUEUED_ROLLOUT_STATUSES)
_TERMINAL_ROLLOUT = tuple(str(s) for s in TERMINAL_ROLLOUT_STATUSES)
_FINISHED = "status IN ('succeeded', 'failed', 'cancelled')"
"""The condition of the partial index ``rollouts_finished``, word for word (SQLite matches it so)."""
assert set(_TERMINAL_ROLLOUT) == {"succeeded", "failed", "cancelled"}, "update _FINISHED and the schema"
_CHUNK = 500  # ids per IN (...) list, well under SQLite's variable limit
_with_sequence_id = copier(Span, ("sequence_id",))  # the stored copy of a caller's span
_RETENTION_BATCH = 200  # rollouts deleted per transaction, so other writers are not held up


_ROLLOUT_INSERT_COLUMNS = (
    "INSERT INTO rollouts (rollout_id, status, input, start_time, mode, resources_id, config, metadata,"
    " next_span_seq, queue_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
)
_INSERT_ROLLOUT = _ROLLOUT_INSERT_COLUMNS + "NULL)"
# The queue position behind every queued rollout, found in the same statement.
_INSERT_QUEUED_ROLLOUT = (
    _ROLLOUT_INSERT_COLUMNS + "(SELECT coalesce((SELECT queue_seq FROM rollouts WHERE queue_seq IS NOT NULL"
    " ORDER BY queue_seq DESC LIMIT 1), 0) + 1))"
)


def _order(column: str, sort_order: SortOrder, tie: str) -> str:
    """ORDER BY clause: NULLs last in both directions, ties in ``tie`` order (stable)."""
    direction = "DESC" if sort_order == "desc" else "ASC"
    return f"ORDER BY ({column} IS NULL), {column} {direction}, {tie}"


def _limit(limit: int, offset: int) -> str:
    return f" LIMIT {int(limit)} OFFSET {int(offset)}" if limit != -1 or offset else ""


def _chunks(items: Sequence[T]) -> list[Sequence[T]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


_JSON_FIELDS = frozenset({"input", "config", "metadata"})


def _set_fields(conn: Conn, table: str, key_column: str, key: int, record: Any, **fields: Any) -> None:
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


def _qmarks(n: int) -> str:
    return ",".join("?" * n)


def _id_text(column: str) -> str:
    """An id column as the text callers gave (hex ids are stored packed: see ``codec.pack_id``)."""
    return f"(CASE WHEN typeof({column}) = 'blob' THEN lower(hex({column})) ELSE {column} END)"


def _where(clauses: list[str], filter_logic: FilterLogic) -> str:
    """The optional filters joined by ``filter_logic``, parenthesised ('' when there are none)."""
    policy.check_filter_logic(filter_logic)
    return f"({f' {filter_logic.upper()} '.join(clauses)})" if clauses else ""


_SPAN_SORT_KEYS = typing.get_args(SpanSortKey)
_WORKER_SORT_KEYS = typing.get_args(WorkerSortKey)
_LATEST_RESOURCES = "SELECT resources_id FROM resources ORDER BY latest_seq DESC LIMIT 1"


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
        self._resource_refs: dict[str, int] = {}
        self._resource_bodies: dict[int, dict[str, Any]] = {}
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
                    on_rollback=self._resource_refs.clear,
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

    def _insert_rollout(
        self,
        conn: Conn,
        now: float,
        input: Any,
        mode: RolloutMode | None,
        resources_id: str | None,
        config: RolloutConfig | None,
        metadata: dict[str, Any] | None,
        status: RolloutStatus,
    ) -> tuple[int, Rollout]:
        rollout = Rollout(
            rollout_id=policy.new_rollout_id(),
            input=input,
            start_time=now,
            mode=mode,
            resources_id=resources_id,
            status=status,
            config=config if config is not None else RolloutConfig(),
            metadata=metadata if metadata is not None else {},
        )
        queued = status in policy.QUEUED_ROLLOUT_STATUSES
        cur = conn.execute(
            _INSERT_QUEUED_ROLLOUT if queued else _INSERT_ROLLOUT,
            (
                rollout.rollout_id,
                str(rollout.status),
                codec.dumps(rollout.input),
                now,
                rollout.mode,
                rollout.resources_id,
                codec.DEFAULT_CONFIG_JSON if config is None else codec.dumps(rollout.config),
                "{}" if not rollout.metadata else codec.dumps(rollout.metadata),
                policy.FIRST_SEQUENCE_ID,
            ),
        )
        rid = cur.lastrowid
        assert rid is not None
        return rid, rollout

    @staticmethod
    def _next_queue_seq(conn: Conn) -> int:
        """A queue position behind every queued rollout (FIFO by the time they entered the queue)."""
        row = conn.execute(
            "SELECT queue_seq FROM rollouts WHERE queue_seq IS NOT NULL ORDER BY queue_seq DESC LIMIT 1"
        ).fetchone()
        return 1 if row is None else int(row[0]) + 1

    @staticmethod
    def _latest_resources_id(conn: Conn) -> str | None:
        row = conn.execute(_LATEST_RESOURCES).fetchone()
        return None if row is None else str(row[0])

    @staticmethod
    def _next_counter(conn: Conn, key: str, n: int = 1) -> int:
        """Reserve ``n`` values of a counter in ``meta``; returns the first."""
        row = conn.execute(
            "UPDATE meta SET value = value + ? WHERE key = ? RETURNING value", (n, key)
        ).fetchone()
        return int(row[0]) - n + 1

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
            rid, rollout = self._insert_rollout(
                conn, now, input, mode, resources_id, config, metadata, RolloutStatus.PREPARING
            )
            return self._new_attempt(conn, now, rid, rollout, 0, worker_id)

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
            resources = resources_id if resources_id is not None else self._latest_resources_id(conn)
            return self._insert_rollout(
                conn, time.time(), input, mode, resources, config, metadata, RolloutStatus.QUEUING
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
            latest = self._latest_resources_id(conn)
            return [
                self._insert_rollout(
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

    def _new_attempt(
        self, conn: Conn, now: float, rid: int, rollout: Rollout, previous: int, worker_id: str | None
    ) -> AttemptedRollout:
        """Create attempt ``previous + 1`` of a rollout and move the rollout accordingly."""
        attempt = Attempt(
            rollout_id=rollout.rollout_id,
            attempt_id=policy.new_attempt_id(),
            sequence_id=previous + 1,
            start_time=now,
            worker_id=worker_id,
        )
        conn.execute(
            "INSERT INTO attempts (rid, attempt_id, sequence_id, status, start_time, worker_id, metadata)"
            " VALUES (?, ?, ?, ?, ?, ?, '{}')",
            (rid, attempt.attempt_id, attempt.sequence_id, str(attempt.status), now, worker_id),
        )
        # A new attempt (re)starts its rollout (never a terminal one: callers checked); a
        # rollout without resources takes the latest ones (looked up in the same statement).
        rollout.status = RolloutStatus.PREPARING
        rollout.end_time = None
        rollout.resources_id = conn.execute(
            "UPDATE rollouts SET attempt_count = ?, status = 'preparing', end_time = NULL, queue_seq = NULL,"
            f" resources_id = coalesce(?, ({_LATEST_RESOURCES}))"
            " WHERE rid = ? RETURNING resources_id",
            (attempt.sequence_id, rollout.resources_id, rid),
        ).fetchone()[0]
        if worker_id is not None:
            self._worker_took(conn, now, worker_id, rollout.rollout_id, attempt.attempt_id)
        return AttemptedRollout(rollout=rollout, attempt=attempt)

    def _dequeue(self, conn: Conn, limit: int, worker_id: str | None) -> list[AttemptedRollout]:
        rows = conn.execute(
            f"SELECT {ROLLOUT_COLUMNS}, r.attempt_count FROM rollouts r"
            " WHERE r.queue_seq IS NOT NULL ORDER BY r.queue_seq LIMIT ?",
            (limit,),
        ).fetchall()
        now = time.time()
        if not rows and worker_id is not None:
            conn.execute(
                "INSERT INTO workers (worker_id, status, last_dequeue_time) VALUES (?, 'unknown', ?)"
                " ON CONFLICT (worker_id) DO UPDATE SET last_dequeue_time = excluded.last_dequeue_time",
                (worker_id, now),
            )
        return [
            self._new_attempt(conn, now, row[0], codec.rollout_from_row(row), row[10], worker_id)
            for row in rows
        ]

    async def dequeue_rollout(self, worker_id: str | None = None) -> AttemptedRollout | None:
        got = await self._write(lambda conn: self._dequeue(conn, 1, worker_id))
        return got[0] if got else None

    async def dequeue_many_rollouts(self, limit: int, worker_id: str | None = None) -> list[AttemptedRollout]:
        check_positive_int("limit", limit, minimum=0)
        if limit == 0:
            return []
        return await self._write(lambda conn: self._dequeue(conn, limit, worker_id))

    def _rollout_row(self, conn: Conn, rollout_id: str, extra: str = "") -> tuple[Any, ...]:
        row = conn.execute(
            f"SELECT {ROLLOUT_COLUMNS}{extra} FROM rollouts r WHERE r.rollout_id = ?", (rollout_id,)
        ).fetchone()
        if row is None:
            raise RolloutNotFoundError(f"Rollout {rollout_id!r} not found in the store {str(self.path)!r}")
        return tuple(row)

    async def start_attempt(self, rollout_id: str, worker_id: str | None = None) -> AttemptedRollout:
        def op(conn: Conn) -> AttemptedRollout:
            row = self._rollout_row(conn, rollout_id, ", r.attempt_count")
            rollout = codec.rollout_from_row(row)
            policy.check_can_start_attempt(rollout)
            return self._new_attempt(conn, time.time(), row[0], rollout, row[10], worker_id)

        return await self._write(op)

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
        policy.check_paging(limit, offset)
        policy.rollout_predicate(status_in, rollout_id_in, rollout_id_contains, filter_logic)  # validates
        policy.check_sort(sort_by, sort_order, ("start_time", "end_time", "rollout_id", "status"))
        clauses: list[str] = []
        params: list[Any] = []
        if status_in is not None:
            statuses = sorted({str(parse_rollout_status(s)) for s in status_in})
            clause = f"r.status IN ({_qmarks(len(statuses))})" if statuses else "0"
            # Implied terms that let SQLite use a partial index (rollouts_finished, rollouts_queue).
            if statuses and set(statuses) <= set(_TERMINAL_ROLLOUT):
                clause = f"({clause} AND r.{_FINISHED})"
            elif statuses and set(statuses) <= set(_QUEUED):
                clause = f"({clause} AND r.queue_seq IS NOT NULL)"
            clauses.append(clause)
            params += statuses
        if rollout_id_in is not None:
            ids = list(dict.fromkeys(rollout_id_in))
            clauses.append("r.rollout_id IN (SELECT value FROM json_each(?))")
            params.append(codec.dumps(ids))
        if rollout_id_contains is not None:
            clauses.append("instr(r.rollout_id, ?) > 0")
            params.append(rollout_id_contains)
        where = f" WHERE {_where(clauses, filter_logic)}" if clauses else ""
        direction = "DESC" if sort_order == "desc" else "ASC"
        if sort_by is None:
            order = f"ORDER BY r.rid {direction}"
        elif sort_by == "end_time":  # the only nullable one: NULLs last
            order = _order("r.end_time", sort_order, "r.rid")
        else:  # NOT NULL columns: a plain ORDER BY lets SQLite walk an index
            order = f"ORDER BY r.{sort_by} {direction}, r.rid {direction}"

        def op(conn: Conn) -> PaginatedResult[Rollout]:
            rows = conn.execute(
                f"SELECT {ROLLOUT_COLUMNS} FROM rollouts r{where} {order}{_limit(limit, offset)}", params
            ).fetchall()
            if limit == -1 and offset == 0:
                total = len(rows)
            else:
                total = conn.execute(f"SELECT count(*) FROM rollouts r{where}", params).fetchone()[0]
            return PaginatedResult([codec.rollout_from_row(r) for r in rows], total, limit, offset)

        return await self._read(op)

    async def get_rollout_by_id(self, rollout_id: str) -> Rollout:
        return await self._read(lambda conn: codec.rollout_from_row(self._rollout_row(conn, rollout_id)))

    def _set_rollout_status(
        self, conn: Conn, rid: int, rollout: Rollout, status: RolloutStatus, now: float, requeue: bool = False
    ) -> bool:
        """Write a rollout's new status, end time and queue position; True if it became terminal.

        A rollout entering the queue goes to its back; ``requeue`` sends an already queued one there too.
        """
        was_queued = rollout.status in policy.QUEUED_ROLLOUT_STATUSES
        was_terminal = rollout.status in TERMINAL_ROLLOUT_STATUSES
        rollout.status = status
        rollout.end_time = policy.end_time_for(status, rollout.end_time, now)
        queued = status in policy.QUEUED_ROLLOUT_STATUSES
        if queued and (requeue or not was_queued):
            conn.execute(
                "UPDATE rollouts SET status = ?, end_time = ?, queue_seq = ? WHERE rid = ?",
                (str(status), rollout.end_time, self._next_queue_seq(conn), rid),
            )
        else:
            conn.execute(
                "UPDATE rollouts SET status = ?, end_time = ?"
                + ("" if queued else ", queue_seq = NULL")
                + " WHERE rid = ?",
                (str(status), rollout.end_time, rid),
            )
        return status in TERMINAL_ROLLOUT_STATUSES and not was_terminal

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

        def op(conn: Conn) -> tuple[Rollout, bool]:
            row = self._rollout_row(conn, rollout_id)
            rid, rollout = row[0], codec.rollout_from_row(row)
            _set_fields(
                conn,
                "rollouts",
                "rid",
                rid,
                rollout,
                input=input,
                mode=mode,
                resources_id=resources_id,
                config=config,
                metadata=metadata,
            )
            terminal = False
            if new_status is not None:
                terminal = self._set_rollout_status(conn, rid, rollout, new_status, time.time(), requeue=True)
            return rollout, terminal

        rollout, terminal = await self._write(op)
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

        def check(conn: Conn) -> tuple[list[Rollout], int]:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            rollouts: dict[str, Rollout] = {}
            for part in _chunks(ids):
                for row in conn.execute(
                    f"SELECT {ROLLOUT_COLUMNS} FROM rollouts r WHERE r.rollout_id IN ({_qmarks(len(part))})",
                    part,
                ):
                    rollouts[row[1]] = codec.rollout_from_row(row)
            for i in ids:
                if i not in rollouts:
                    raise RolloutNotFoundError(f"Rollout {i!r} not found in the store {str(self.path)!r}")
            return [rollouts[i] for i in ids if rollouts[i].is_terminal], version

        def data_version(conn: Conn) -> int:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

        while True:
            changed = self._changed  # taken before the check, so no wake-up is missed
            done, version = await self._read(check)
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

        def op(conn: Conn) -> PaginatedResult[Attempt]:
            rid = self._rollout_row(conn, rollout_id)[0]
            total = conn.execute("SELECT count(*) FROM attempts WHERE rid = ?", (rid,)).fetchone()[0]
            rows = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN rollouts r ON r.rid = a.rid WHERE a.rid = ? "
                f"{_order('a.' + sort_by, sort_order, 'a.sequence_id')}{_limit(limit, offset)}",
                (rid,),
            ).fetchall()
            return PaginatedResult([codec.attempt_from_row(r) for r in rows], total, limit, offset)

        return await self._read(op)

    async def get_latest_attempt(self, rollout_id: str) -> Attempt | None:
        def op(conn: Conn) -> Attempt | None:
            rid = self._rollout_row(conn, rollout_id)[0]
            row = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN rollouts r ON r.rid = a.rid"
                " WHERE a.rid = ? ORDER BY a.sequence_id DESC LIMIT 1",
                (rid,),
            ).fetchone()
            return codec.attempt_from_row(row) if row is not None else None

        return await self._read(op)

    def _attempt_row(self, conn: Conn, rollout_id: str, attempt_id: str) -> tuple[Any, ...]:
        if attempt_id == "latest":
            rid = self._rollout_row(conn, rollout_id)[0]
            row = conn.execute(
                f"SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN rollouts r ON r.rid = a.rid"
                " WHERE a.rid = ? ORDER BY a.sequence_id DESC LIMIT 1",
                (rid,),
            ).fetchone()
            if row is None:
                raise AttemptNotFoundError(
                    f"Rollout {rollout_id!r} has no attempts yet, so it has no 'latest' attempt"
                )
            return tuple(row)
        row = conn.execute(
            f"SELECT {ATTEMPT_COLUMNS} FROM attempts a JOIN rollouts r ON r.rid = a.rid"
            " WHERE a.attempt_id = ? AND r.rollout_id = ?",
            (attempt_id, rollout_id),
        ).fetchone()
        if row is None:
            self._rollout_row(conn, rollout_id)  # an unknown rollout is reported as such
            raise AttemptNotFoundError(f"Attempt {attempt_id!r} not found in rollout {rollout_id!r}")
        return tuple(row)

    def _apply_attempt_status(
        self, conn: Conn, aid: int, rid: int, attempt: Attempt, status: AttemptStatus, now: float
    ) -> bool:
        """Set an attempt's status and carry the consequence to its rollout if it is the latest.

        Returns True when the rollout became terminal.
        """
        unchanged = status is attempt.status
        attempt.status = status
        attempt.end_time = policy.end_time_for(status, attempt.end_time, now)
        conn.execute(
            "UPDATE attempts SET status = ?, end_time = ? WHERE aid = ?", (str(status), attempt.end_time, aid)
        )
        if unchanged:
            return False
        if status in TERMINAL_ATTEMPT_STATUSES and attempt.worker_id is not None:
            self._worker_released(conn, now, attempt.worker_id, attempt.attempt_id)
        row = conn.execute(
            f"SELECT {ROLLOUT_COLUMNS}, r.attempt_count FROM rollouts r WHERE r.rid = ?", (rid,)
        ).fetchone()
        if row[10] != attempt.sequence_id:
            return False  # an older attempt never changes the rollout
        rollout = codec.rollout_from_row(row)
        new_status = policy.rollout_status_for_attempt(rollout, attempt)
        if new_status is None:
            return False
        return self._set_rollout_status(conn, rid, rollout, new_status, now)

    async def update_attempt(
        self,
        rollout_id: str,
        attempt_id: str | Literal["latest"],
        *,
        status: AttemptStatus | str | Unset = UNSET,
        worker_id: str | Unset | None = UNSET,
        last_heartbeat_time: float | Unset = UNSET,
        metadata: dict[str, Any] | Unset = UNSET,
    ) -> Attempt:
        new_status = parse_attempt_status(status) if not isinstance(status, Unset) else None
        if not isinstance(metadata, (Unset, dict)):
            raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")

        def op(conn: Conn) -> tuple[Attempt, bool]:
            row = self._attempt_row(conn, rollout_id, attempt_id)
            aid, rid, attempt = row[9], row[10], codec.attempt_from_row(row)
            if not isinstance(worker_id, Unset) and worker_id != attempt.worker_id:
                self._hand_over(conn, attempt, worker_id)
            _set_fields(
                conn,
                "attempts",
                "aid",
                aid,
                attempt,
                worker_id=worker_id,
                last_heartbeat_time=last_heartbeat_time,
                metadata=metadata,
            )
            status = new_status
            if status is None and not isinstance(last_heartbeat_time, Unset):
                # an explicit heartbeat revives the attempt exactly as a span does
                revived = policy.attempt_status_after_heartbeat(attempt.status)
                status = revived if revived is not attempt.status else None
            terminal = False
            if status is not None:
                terminal = self._apply_attempt_status(conn, aid, rid, attempt, status, time.time())
            return attempt, terminal

        attempt, terminal = await self._write(op)
        if terminal:
            self._notify()
        return attempt

    # --- spans -------------------------------------------------------------------------

    def _resource_ref(self, conn: Conn, resource: dict[str, Any]) -> int:
        body = codec.dumps(resource)
        ref = self._resource_refs.get(body)
        if ref is None:
            conn.execute("INSERT OR IGNORE INTO span_resources (body) VALUES (?)", (body,))
            ref = int(conn.execute("SELECT ref FROM span_resources WHERE body = ?", (body,)).fetchone()[0])
            self._resource_refs[body] = ref
        return ref

    def _resources_for(self, conn: Conn, refs: set[int]) -> dict[int, dict[str, Any]]:
        missing = [r for r in refs if r not in self._resource_bodies]
        for part in _chunks(missing):
            for ref, body in conn.execute(
                f"SELECT ref, body FROM span_resources WHERE ref IN ({_qmarks(len(part))})", part
            ):
                self._resource_bodies[ref] = codec.loads(body)
        return self._resource_bodies

    def _add_spans(self, conn: Conn, spans: Sequence[Span]) -> list[Span]:
        now = time.time()
        groups: dict[tuple[str, str], list[Span]] = {}
        for span in spans:
            groups.setdefault((span.rollout_id, span.attempt_id), []).append(span)
        stored: list[Span] = []
        rows: list[tuple[Any, ...]] = []
        rollout_totals: dict[int, list[int]] = {}
        pack_id, encode_body, next_sequence_id = (
            codec.pack_id,
            codec.encode_span_body,
            policy.next_sequence_id,
        )
        last_trace: str | None = None
        packed_trace: str | bytes | None = None
        last_resource: dict[str, Any] | None = None
        last_ref: int | None = None
        for (rollout_id, attempt_id), group in groups.items():
            arow = self._attempt_row(conn, rollout_id, attempt_id)
            aid, rid, attempt = arow[9], arow[10], codec.attempt_from_row(arow)
            seen: set[str | bytes | None] = set()
            keys = [pack_id(s.span_id) for s in group]
            # parents are mostly spans of the same batch: reuse their packed ids
            packed_ids: dict[str | None, str | bytes | None] = {None: None}
            packed_ids.update(zip([s.span_id for s in group], keys, strict=True))
            for part in _chunks(keys):
                seen.update(
                    r[0]
                    for r in conn.execute(
                        f"SELECT span_id FROM spans WHERE aid = ? AND span_id IN ({_qmarks(len(part))})",
                        (aid, *part),
                    )
                )
            totals = rollout_totals.get(rid)
            if totals is None:
                next_seq = conn.execute(
                    "SELECT next_span_seq FROM rollouts WHERE rid = ?", (rid,)
                ).fetchone()[0]
                totals = rollout_totals[rid] = [next_seq, 0, 0]
            for span, key in zip(group, keys, strict=True):
                if key in seen:
                    continue  # a duplicate: stored once only
                seen.add(key)
                seq, totals[0] = next_sequence_id(totals[0], span.sequence_id)
                if seq != span.sequence_id:  # allocated: on a copy; the caller's span stays as given
                    span = _with_sequence_id(span, seq)
                body = encode_body(span)
                trace_id = span.trace_id
                if trace_id != last_trace:  # spans of a batch mostly share their trace
                    last_trace, packed_trace = trace_id, pack_id(trace_id)
                resource = span.resource
                if not resource:
                    ref = None
                elif resource != last_resource:  # and their OTel resource
                    ref = last_ref = self._resource_ref(conn, resource)
                    last_resource = resource
                else:
                    ref = last_ref
                rows.append(
                    (
                        rid,
                        aid,
                        seq,
                        key,
                        packed_trace,
                        packed_ids[parent] if (parent := span.parent_id) in packed_ids else pack_id(parent),
                        span.name,
                        span.start_time,
                        span.end_time,
                        ref,
                        body,
                    )
                )
                totals[1] += 1
                totals[2] += len(body)
                stored.append(span)
            self._heartbeat(conn, aid, rid, attempt, now)
        conn.executemany(
            "INSERT INTO spans (rid, aid, sequence_id, span_id, trace_id, parent_id, name, start_time, end_time,"
            " resource_ref, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "UPDATE rollouts SET next_span_seq = ?, span_count = span_count + ?, span_bytes = span_bytes + ? WHERE rid = ?",
            [(t[0], t[1], t[2], rid) for rid, t in rollout_totals.items()],
        )
        return stored

    def _heartbeat(self, conn: Conn, aid: int, rid: int, attempt: Attempt, now: float) -> None:
        new_status = policy.attempt_status_after_heartbeat(attempt.status)
        conn.execute("UPDATE attempts SET last_heartbeat_time = ? WHERE aid = ?", (now, aid))
        attempt.last_heartbeat_time = now
        if new_status is not attempt.status:
            self._apply_attempt_status(conn, aid, rid, attempt, new_status, now)

    async def add_span(self, span: Span) -> Span | None:
        if not isinstance(span, Span):
            raise TypeError(f"add_span expects a Span, got {type(span).__name__}")
        stored = await self._write(lambda conn: self._add_spans(conn, [span]))
        return stored[0] if stored else None

    async def add_many_spans(self, spans: Sequence[Span]) -> list[Span]:
        items = list(spans)
        for i, span in enumerate(items):
            if not isinstance(span, Span):
                raise TypeError(f"add_many_spans expects Span items; item {i} is {type(span).__name__}")
        if not items:
            return []
        return await self._write(lambda conn: self._add_spans(conn, items))

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

        def op(conn: Conn) -> list[int]:
            return [
                int(
                    conn.execute(
                        "UPDATE rollouts SET next_span_seq = next_span_seq + 1 WHERE rid = ?"
                        " RETURNING next_span_seq - 1",
                        (self._attempt_row(conn, rollout_id, attempt_id)[10],),
                    ).fetchone()[0]
                )
                for rollout_id, attempt_id in pairs
            ]

        return await self._write(op) if pairs else []

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
        policy.check_paging(limit, offset)
        policy.check_sort(sort_by, sort_order, _SPAN_SORT_KEYS)
        # The field filters, evaluated only on this rollout's rows (found through spans_rollout).
        filters: list[str] = []
        filter_params: list[Any] = []
        for column, exact, part in (
            ("name", name, name_contains),
            ("trace_id", trace_id, trace_id_contains),
            ("span_id", span_id, span_id_contains),
            ("parent_id", parent_id, parent_id_contains),
        ):
            if exact is not None:
                filters.append(f"s.{column} = ?")
                filter_params.append(exact if column == "name" else codec.pack_id(exact))
            if part is not None:
                text = f"s.{column}" if column == "name" else _id_text(f"s.{column}")
                filters.append(f"instr({text}, ?) > 0")
                filter_params.append(part)
        field_filter = _where(filters, filter_logic)
        if sort_by == "sequence_id":
            direction = "DESC" if sort_order == "desc" else "ASC"
            order = f"ORDER BY s.sequence_id {direction}, s.rowid {direction}"
        else:
            key = _id_text(f"s.{sort_by}") if sort_by in ("span_id", "trace_id") else f"s.{sort_by}"
            order = _order(key, sort_order, "s.sequence_id, s.rowid")

        def op(conn: Conn) -> PaginatedResult[Span]:
            clauses = ["s.rid = ?"]
            params: list[Any] = []
            if attempt_id is None:
                params.append(self._rollout_row(conn, rollout_id)[0])
            else:
                try:
                    arow = self._attempt_row(conn, rollout_id, attempt_id)
                except AttemptNotFoundError:
                    if attempt_id != "latest":
                        raise
                    return PaginatedResult([], 0, limit, offset)
                params.append(arow[10])
                clauses.append("s.aid = ?")
                params.append(arow[9])
            if field_filter:
                clauses.append(field_filter)
                params.extend(filter_params)
            where = " AND ".join(clauses)
            rows = conn.execute(
                f"SELECT {SPAN_COLUMNS} FROM spans s JOIN rollouts r ON r.rid = s.rid JOIN attempts a ON a.aid = s.aid"
                f" WHERE {where} {order}{_limit(limit, offset)}",
                params,
            ).fetchall()
            if limit == -1 and offset == 0:
                total = len(rows)
            else:
                total = conn.execute(f"SELECT count(*) FROM spans s WHERE {where}", params).fetchone()[0]
            refs = {r[9] for r in rows if r[9] is not None}
            resources = self._resources_for(conn, refs) if refs else self._resource_bodies
            return PaginatedResult([codec.span_from_row(r, resources) for r in rows], total, limit, offset)

        return await self._read(op)

    # --- resources ---------------------------------------------------------------------

    @staticmethod
    def _check_resources(resources: NamedResources) -> str:
        return codec.dumps(ResourcesUpdate("x", 0.0, 0.0, 1, resources).resources)

    async def add_resources(self, resources: NamedResources) -> ResourcesUpdate:
        body = self._check_resources(resources)

        def op(conn: Conn) -> ResourcesUpdate:
            now = time.time()
            update = ResourcesUpdate(policy.new_resources_id(), now, now, 1, dict(resources))
            conn.execute(
                "INSERT INTO resources (resources_id, create_time, update_time, version, latest_seq, body)"
                " VALUES (?, ?, ?, 1, ?, ?)",
                (update.resources_id, now, now, self._next_counter(conn, "resources_seq"), body),
            )
            return update

        return await self._write(op)

    async def update_resources(self, resources_id: str, resources: NamedResources) -> ResourcesUpdate:
        check_non_empty_str("resources_id", resources_id)
        body = self._check_resources(resources)

        def op(conn: Conn) -> ResourcesUpdate:
            now = time.time()
            seq = self._next_counter(conn, "resources_seq")
            row = conn.execute(
                "INSERT INTO resources (resources_id, create_time, update_time, version, latest_seq, body)"
                " VALUES (?, ?, ?, 1, ?, ?) ON CONFLICT (resources_id) DO UPDATE SET"
                " update_time = excluded.update_time, version = version + 1, latest_seq = excluded.latest_seq,"
                " body = excluded.body RETURNING create_time, version",
                (resources_id, now, now, seq, body),
            ).fetchone()
            return ResourcesUpdate(resources_id, row[0], now, row[1], dict(resources))

        return await self._write(op)

    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate:
        def op(conn: Conn) -> ResourcesUpdate:
            row = conn.execute(
                "SELECT resources_id, create_time, update_time, version, body FROM resources WHERE resources_id = ?",
                (resources_id,),
            ).fetchone()
            if row is None:
                raise ResourcesNotFoundError(
                    f"Resources {resources_id!r} not found in the store {str(self.path)!r}"
                )
            return codec.resources_from_row(row)

        return await self._read(op)

    async def get_latest_resources(self) -> ResourcesUpdate | None:
        def op(conn: Conn) -> ResourcesUpdate | None:
            row = conn.execute(
                "SELECT resources_id, create_time, update_time, version, body FROM resources"
                " ORDER BY latest_seq DESC LIMIT 1"
            ).fetchone()
            return codec.resources_from_row(row) if row is not None else None

        return await self._read(op)

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
        policy.check_paging(limit, offset)
        policy.check_sort(sort_by, sort_order, ("create_time", "update_time", "resources_id"))
        clauses: list[str] = []
        params: list[Any] = []
        if resources_id is not None:
            clauses.append("resources_id = ?")
            params.append(resources_id)
        if resources_id_contains is not None:
            clauses.append("instr(resources_id, ?) > 0")
            params.append(resources_id_contains)
        where = f" WHERE {' AND '.join(clauses)}" if clauses else ""

        def op(conn: Conn) -> PaginatedResult[ResourcesUpdate]:
            total = conn.execute(f"SELECT count(*) FROM resources{where}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT resources_id, create_time, update_time, version, body FROM resources{where} "
                f"{_order(sort_by, sort_order, 'rowid')}{_limit(limit, offset)}",
                params,
            ).fetchall()
            return PaginatedResult([codec.resources_from_row(r) for r in rows], total, limit, offset)

        return await self._read(op)

    # --- workers -----------------------------------------------------------------------

    @staticmethod
    def _worker_took(conn: Conn, now: float, worker_id: str, rollout_id: str, attempt_id: str) -> None:
        conn.execute(
            "INSERT INTO workers (worker_id, status, last_dequeue_time, last_busy_time, current_rollout_id,"
            " current_attempt_id) VALUES (?, 'busy', ?, ?, ?, ?) ON CONFLICT (worker_id) DO UPDATE SET"
            " status = 'busy', last_dequeue_time = excluded.last_dequeue_time,"
            " last_busy_time = excluded.last_busy_time, current_rollout_id = excluded.current_rollout_id,"
            " current_attempt_id = excluded.current_attempt_id",
            (worker_id, now, now, rollout_id, attempt_id),
        )

    def _hand_over(self, conn: Conn, attempt: Attempt, worker_id: str | None) -> None:
        """An attempt changes worker: the old one is released, the new one busy while it is active."""
        now = time.time()
        if attempt.worker_id is not None:
            self._worker_released(conn, now, attempt.worker_id, attempt.attempt_id)
        if worker_id is not None and attempt.status in policy.ACTIVE_ATTEMPT_STATUSES:
            self._worker_took(conn, now, worker_id, attempt.rollout_id, attempt.attempt_id)

    @staticmethod
    def _worker_released(conn: Conn, now: float, worker_id: str, attempt_id: str) -> None:
        conn.execute(
            "UPDATE workers SET status = 'idle', last_idle_time = ?, current_rollout_id = NULL,"
            " current_attempt_id = NULL WHERE worker_id = ? AND current_attempt_id = ?",
            (now, worker_id, attempt_id),
        )

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
        policy.check_paging(limit, offset)
        policy.check_sort(sort_by, sort_order, _WORKER_SORT_KEYS)
        clauses: list[str] = []
        params: list[Any] = []
        if status_in is not None:
            statuses = sorted({str(parse_worker_status(s)) for s in status_in})
            clauses.append(f"status IN ({_qmarks(len(statuses))})" if statuses else "0")
            params += statuses
        if worker_id_contains is not None:
            clauses.append("instr(worker_id, ?) > 0")
            params.append(worker_id_contains)
        where = _where(clauses, filter_logic)
        where = f" WHERE {where}" if where else ""
        direction = "DESC" if sort_order == "desc" else "ASC"
        order = f"ORDER BY wid {direction}" if sort_by is None else _order(sort_by, sort_order, "wid")

        def op(conn: Conn) -> PaginatedResult[Worker]:
            total = conn.execute(f"SELECT count(*) FROM workers{where}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {WORKER_COLUMNS} FROM workers{where} {order}{_limit(limit, offset)}", params
            ).fetchall()
            return PaginatedResult([codec.worker_from_row(r) for r in rows], total, limit, offset)

        return await self._read(op)

    async def get_worker_by_id(self, worker_id: str) -> Worker:
        def op(conn: Conn) -> Worker:
            row = conn.execute(
                f"SELECT {WORKER_COLUMNS} FROM workers WHERE worker_id = ?", (worker_id,)
            ).fetchone()
            if row is None:
                raise WorkerNotFoundError(f"Worker {worker_id!r} not found in the store {str(self.path)!r}")
            return codec.worker_from_row(row)

        return await self._read(op)

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

        def op(conn: Conn) -> Worker:
            now = time.time()
            conn.execute(
                "INSERT INTO workers (worker_id, status) VALUES (?, 'unknown') ON CONFLICT (worker_id) DO NOTHING",
                (worker_id,),
            )
            sets = ["last_heartbeat_time = ?"]
            params: list[Any] = [now]
            if new_status is not None:
                sets.append("status = ?")
                params.append(str(new_status))
                if new_status is WorkerStatus.BUSY:
                    sets.append("last_busy_time = ?")
                    params.append(now)
                elif new_status is WorkerStatus.IDLE:
                    sets.append("last_idle_time = ?")
                    params.append(now)
            if not isinstance(heartbeat_stats, Unset):
                sets.append("heartbeat_stats = ?")
                params.append(codec.dumps(heartbeat_stats) if heartbeat_stats is not None else None)
            row = conn.execute(
                f"UPDATE workers SET {', '.join(sets)} WHERE worker_id = ? RETURNING {WORKER_COLUMNS}",
                (*params, worker_id),
            ).fetchone()
            return codec.worker_from_row(row)

        return await self._write(op)

    # --- introspection -----------------------------------------------------------------

    async def statistics(self) -> dict[str, Any]:
        def op(conn: Conn) -> dict[str, Any]:
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
                "queue_length": conn.execute(
                    "SELECT count(*) FROM rollouts WHERE queue_seq IS NOT NULL"
                ).fetchone()[0],
                "attempts": conn.execute("SELECT count(*) FROM attempts").fetchone()[0],
                "live_attempts": conn.execute(
                    "SELECT count(*) FROM attempts WHERE status IN ('preparing', 'running')"
                ).fetchone()[0],
                "spans": spans,
                "span_bytes": span_bytes,
                "resources": conn.execute("SELECT count(*) FROM resources").fetchone()[0],
                "workers": conn.execute("SELECT count(*) FROM workers").fetchone()[0],
                "file_bytes": _file_bytes(self.path),
            }

        return policy.with_earlier_statistics(await self._read(op), self, self._created)

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

        def find(conn: Conn) -> list[int]:
            t = time.time() if now is None else now
            due: list[int] = []
            # Rollouts with the default config (no time-outs: the common case) are skipped in
            # SQL, so a pass over thousands of active attempts parses none of their configs.
            for row in conn.execute(
                f"SELECT {ATTEMPT_COLUMNS}, r.config FROM attempts a JOIN rollouts r ON r.rid = a.rid"
                " WHERE a.status IN ('preparing', 'running') AND r.config <> ?",
                (codec.DEFAULT_CONFIG_JSON,),
            ):
                config = RolloutConfig.from_json(row[11])
                if config.timeout_seconds is None and config.unresponsive_seconds is None:
                    continue
                if policy.watchdog_verdict(codec.attempt_from_row(row), config, t) is not None:
                    due.append(row[9])
            return due

        def apply(conn: Conn) -> tuple[int, bool]:
            t = time.time() if now is None else now
            changed, terminal = 0, False
            for part in _chunks(due):
                for row in conn.execute(
                    f"SELECT {ATTEMPT_COLUMNS}, r.config FROM attempts a JOIN rollouts r ON r.rid = a.rid"
                    f" WHERE a.aid IN ({_qmarks(len(part))})",
                    part,
                ).fetchall():
                    attempt = codec.attempt_from_row(row)
                    verdict = policy.watchdog_verdict(attempt, RolloutConfig.from_json(row[11]), t)
                    if verdict is None:
                        continue  # changed since we looked (e.g. a heartbeat from another process)
                    changed += 1
                    terminal |= self._apply_attempt_status(conn, row[9], row[10], attempt, verdict, t)
            return changed, terminal

        due = await self._read(find)
        if not due:
            return 0
        changed, terminal = await self._write(apply)
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

        select = f"SELECT rid FROM rollouts WHERE {_FINISHED} AND end_time < ? LIMIT ?"  # rollouts_finished

        def any_due(conn: Conn) -> bool:
            return conn.execute(select, (cutoff, 1)).fetchone() is not None

        def op(conn: Conn) -> int:
            rids = [r[0] for r in conn.execute(select, (cutoff, _RETENTION_BATCH))]
            if rids:
                marks = _qmarks(len(rids))
                conn.execute(f"DELETE FROM spans WHERE rid IN ({marks})", rids)
                conn.execute(f"DELETE FROM attempts WHERE rid IN ({marks})", rids)
                conn.execute(f"DELETE FROM rollouts WHERE rid IN ({marks})", rids)
            return len(rids)

        if not await self._read(any_due):  # the common case costs no write lock
            return 0
        total = 0
        while True:
            n = await self._write(op)
            total += n
            if n < _RETENTION_BATCH:
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
        before = _file_bytes(self.path)
        deleted = await self.delete_finished(older_than) if older_than is not None else 0

        def compact(conn: Conn) -> None:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await worker.read(compact)
        return {"deleted_rollouts": deleted, "bytes_before": before, "bytes_after": _file_bytes(self.path)}


def _file_bytes(path: Path) -> int:
    """Size of the database file plus its write-ahead log."""
    total = 0
    for p in (path, path.with_name(path.name + "-wal")):
        with contextlib.suppress(FileNotFoundError):
            total += p.stat().st_size
    return total
