"""A dedicated thread that owns the SQLite connection and runs the store's operations.

One thread per store keeps every statement off the event loop and serialises the
process's use of its connection without locks. A call is handed over through a
``queue.SimpleQueue`` and its result comes back with one ``call_soon_threadsafe`` on an
asyncio future (about 35 us per call here, against 65 us for a one-thread executor and
90 us for ``anyio.to_thread.run_sync``). Under an event loop other than asyncio the caller
waits for the job through ``anyio.to_thread``.

Group commit: the thread takes every write waiting in its queue (up to :data:`MAX_GROUP`)
and runs them in ONE ``BEGIN IMMEDIATE`` transaction, each inside its own ``SAVEPOINT``: a
request that raises rolls back only its own changes and gets its own error, the others
commit. Results are delivered only after ``COMMIT``, so a call that returned is committed.
Concurrent callers (runners, server requests) thus share one commit.

Writes take the write lock up front (``BEGIN IMMEDIATE``), so two processes never deadlock
upgrading read transactions; a busy database is waited for by SQLite's busy handler and
then retried here with backoff until ``lock_timeout`` passes.

Checkpoints: copying the write-ahead log back into the database file costs two fsyncs and
dominated the cost of a commit (~90 us of ~115 us on this machine). A second thread with
its own connection runs ``PRAGMA wal_checkpoint(PASSIVE)`` at most every
:data:`CHECKPOINT_INTERVAL` seconds after writes; the store's connection keeps a higher
``wal_autocheckpoint`` only as a backstop, which then finds little left to copy and lets
the log restart from its beginning.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from agentlightning_sqlite.errors import SqliteStoreError

__all__ = ["CHECKPOINT_INTERVAL", "MAX_GROUP", "ConnectionWorker"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
Waiter = Future[Any] | tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]"]

MAX_GROUP = 64
"""Most write requests committed in one transaction (keeps transactions short for other processes)."""
CHECKPOINT_INTERVAL = 0.05
"""Seconds between background checkpoints while writes happen."""

_STOP = object()


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def _resolve_all(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for fut, ok, value in results:
        if fut.done():  # the caller was cancelled; the result is dropped
            continue
        if ok:
            fut.set_result(value)
        else:
            fut.set_exception(value)


class _GroupFailed(Exception):
    """The whole transaction of a group was lost (its ``COMMIT`` or an automatic rollback)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class _Checkpointer:
    """Background thread running passive checkpoints on its own connection."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], path: Path) -> None:
        self._connect = connect
        self._path = path
        self._dirty = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"agl-sqlite-ckpt:{path.name}", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Note that a transaction committed (cheap when already noted)."""
        if not self._dirty.is_set():
            self._dirty.set()

    def stop(self) -> None:
        self._stopping.set()
        self._dirty.set()
        self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            while True:
                self._dirty.wait()
                if self._stopping.is_set():
                    break
                self._dirty.clear()
                try:
                    if conn is None:
                        conn = self._connect()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error:
                    # Harmless: the store's own connection still checkpoints as a backstop.
                    logger.debug("Background checkpoint of %s failed", self._path, exc_info=True)
                if self._stopping.wait(CHECKPOINT_INTERVAL):
                    break
        finally:
            if conn is not None:
                conn.close()


class ConnectionWorker:
    """Runs jobs ``fn(conn)`` on one thread that owns ``conn``.

    :param connect_checkpointer: opens a second connection to the same file for background
        checkpoints; ``None`` leaves checkpoints to SQLite's automatic ones.
    :param on_rollback: called on the worker thread whenever changes were rolled back
        (e.g. to drop caches of rows that were never committed).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        lock_timeout: float,
        *,
        connect_checkpointer: Callable[[], sqlite3.Connection] | None = None,
        on_rollback: Callable[[], None] | None = None,
    ) -> None:
        self._conn = conn
        self._path = path
        self._lock_timeout = lock_timeout
        self._on_rollback = on_rollback
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self.commits = 0
        """Write transactions committed so far (several requests may share one)."""
        self._checkpointer = (
            _Checkpointer(connect_checkpointer, path) if connect_checkpointer is not None else None
        )
        self._thread = threading.Thread(target=self._loop, name=f"agl-sqlite:{path.name}", daemon=True)
        self._thread.start()

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` outside any explicit transaction (each statement sees a consistent snapshot)."""
        return await self._submit(False, fn)

    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(conn)`` in a write transaction: all of it commits or none, before this returns."""
        return await self._submit(True, fn)

    async def _submit(self, write: bool, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # another event loop (trio): wait on a worker thread
            loop = None
        if loop is not None:
            afut: asyncio.Future[T] = loop.create_future()
            self._put(write, fn, (loop, afut))
            return await afut
        cfut: Future[T] = Future()
        self._put(write, fn, cfut)
        return await anyio.to_thread.run_sync(cfut.result)

    def _put(self, write: bool, fn: Job, waiter: Waiter) -> None:
        if self._closed:
            raise self._closed_error()
        self._jobs.put((write, fn, waiter))

    def _closed_error(self) -> SqliteStoreError:
        return SqliteStoreError(f"The SQLite store {str(self._path)!r} is closed; open a new one to use it.")

    def close(self) -> None:
        """Finish queued jobs, close the connection and join the threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join()

    # --- on the worker thread -----------------------------------------------------------

    def _loop(self) -> None:
        jobs = self._jobs
        stopping = False
        while not stopping:
            batch = [jobs.get()]
            while len(batch) < MAX_GROUP:
                try:
                    batch.append(jobs.get_nowait())
                except queue.Empty:
                    break
            group: list[tuple[Job, Waiter]] = []
            for item in batch:
                if item is _STOP:
                    stopping = True
                    continue
                write, fn, waiter = item
                if stopping:  # queued after close(): refuse, never leave a caller waiting
                    self._deliver([(waiter, False, self._closed_error())])
                elif write:
                    group.append((fn, waiter))
                else:
                    if group:
                        self._run_group(group)
                        group = []
                    self._run_read(fn, waiter)
            if group:
                self._run_group(group)
        while True:  # a call that raced close() past its check: refuse it too
            try:
                _, _, waiter = jobs.get_nowait()
            except queue.Empty:
                break
            self._deliver([(waiter, False, self._closed_error())])
        if self._checkpointer is not None:
            self._checkpointer.stop()
        try:
            self._conn.execute("PRAGMA optimize")
        except sqlite3.Error:
            logger.debug("PRAGMA optimize failed on %s", self._path, exc_info=True)
        self._conn.close()

    @staticmethod
    def _cancelled(waiter: Waiter) -> bool:
        return isinstance(waiter, tuple) and waiter[1].cancelled()

    def _run_read(self, fn: Job, waiter: Waiter) -> None:
        if self._cancelled(waiter):
            return  # cancelled before it started: do not run it
        try:
            result = (waiter, True, fn(self._conn))
        except BaseException as exc:
            result = (waiter, False, self._translate(exc))
        self._deliver([result])

    def _run_group(self, group: list[tuple[Job, Waiter]]) -> None:
        live = [(fn, waiter) for fn, waiter in group if not self._cancelled(waiter)]
        if not live:
            return
        try:
            results = self._commit_group(live)
        except BaseException as exc:  # nothing of the group was committed: all of it failed
            error = self._translate(exc.cause if isinstance(exc, _GroupFailed) else exc)
            results = [(waiter, False, error) for _, waiter in live]
        else:
            if self._checkpointer is not None:
                self._checkpointer.poke()
        self._deliver(results)

    def _commit_group(self, live: list[tuple[Job, Waiter]]) -> list[tuple[Waiter, bool, Any]]:
        conn = self._conn
        self._begin(conn)
        try:
            if len(live) == 1:  # no savepoint needed: the transaction is the request
                fn, waiter = live[0]
                results: list[tuple[Waiter, bool, Any]] = [(waiter, True, fn(conn))]
            else:
                results = [self._run_in_savepoint(conn, fn, waiter) for fn, waiter in live]
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if self._on_rollback is not None:
                self._on_rollback()
            raise
        self.commits += 1
        return results

    def _run_in_savepoint(
        self, conn: sqlite3.Connection, fn: Job, waiter: Waiter
    ) -> tuple[Waiter, bool, Any]:
        conn.execute("SAVEPOINT request")
        try:
            value = fn(conn)
        except BaseException as exc:
            if not conn.in_transaction:  # SQLite rolled back the whole transaction (e.g. disk full)
                raise _GroupFailed(exc) from exc
            conn.execute("ROLLBACK TO request")
            conn.execute("RELEASE request")
            if self._on_rollback is not None:
                self._on_rollback()
            return (waiter, False, self._translate(exc))
        conn.execute("RELEASE request")
        return (waiter, True, value)

    def _begin(self, conn: sqlite3.Connection) -> None:
        deadline = time.monotonic() + self._lock_timeout
        delay = 0.001
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise
            # The busy handler gave up early (it does when a checkpoint or WAL recovery is in
            # progress): back off and try again.
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.05)

    @staticmethod
    def _deliver(results: list[tuple[Waiter, bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for waiter, ok, value in results:
            if isinstance(waiter, Future):
                if ok:
                    waiter.set_result(value)
                else:
                    waiter.set_exception(value)
            else:
                by_loop.setdefault(waiter[0], []).append((waiter[1], ok, value))
        for loop, items in by_loop.items():  # one wake-up per event loop
            try:
                loop.call_soon_threadsafe(_resolve_all, items)
            except RuntimeError:  # the loop is closed; nobody is waiting any more
                logger.debug("Dropped %d SQLite store result(s): their event loop is closed", len(items))

    def _translate(self, exc: BaseException) -> BaseException:
        if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
            return SqliteStoreError(
                f"The SQLite store {str(self._path)!r} stayed locked by another connection for more than "
                f"{self._lock_timeout:g} s ({exc}). Another process holds a long write transaction; "
                "raise lock_timeout or find that process."
            )
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(
            exc, (sqlite3.OperationalError, sqlite3.IntegrityError, sqlite3.ProgrammingError)
        ):
            return SqliteStoreError(
                f"The SQLite store {str(self._path)!r} is damaged ({exc}). Stop every process using it "
                "and restore it from a backup, or recover it with the sqlite3 shell's .recover command."
            )
        return exc
