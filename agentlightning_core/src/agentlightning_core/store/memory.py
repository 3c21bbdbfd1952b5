"""The in-memory store: fast, thread-safe, bounded in memory, with a real watchdog.

Every state change happens under one :class:`threading.Lock` that is never held across an
``await``, so tasks of any event loop and plain threads can share one store. Stored rollouts,
attempts and workers are never mutated in place: a change stores a new object, so what a
caller got back is a stable snapshot (nested containers are shared; don't mutate them). The
caller's own objects are not changed either: spans and resources mappings are stored as copies.
Transition rules come from :mod:`agentlightning_core.store.policy`.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
import threading
import time
import typing
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import anyio
import attrs

from agentlightning_core._records import copier, replace
from agentlightning_core.errors import (
    AttemptNotFoundError,
    ResourcesNotFoundError,
    RolloutNotFoundError,
    SpansEvictedError,
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
from agentlightning_core.validation import (
    check_mode,
    check_non_empty_str,
    check_positive_int,
    check_seconds,
)

if TYPE_CHECKING:
    from anyio.abc import TaskGroup
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["DEFAULT_SPAN_BUDGET_FRACTION", "InMemoryLightningStore", "estimate_span_bytes"]

logger = logging.getLogger(__name__)

DEFAULT_SPAN_BUDGET_FRACTION = 0.25
"""Share of physical memory spans may use when no budget is given."""

_now = time.time
_QUEUED = policy.QUEUED_ROLLOUT_STATUSES
_ACTIVE = policy.ACTIVE_ATTEMPT_STATUSES
_DEFAULT_CONFIG = RolloutConfig()
_NO_ATTEMPTS: list[Attempt] = []
_ROLLOUT_TEMPLATE = Rollout(rollout_id="ro-template", input=None, start_time=0.0)
_new_rollout = copier(
    Rollout, ("rollout_id", "input", "start_time", "mode", "resources_id", "status", "config", "metadata")
)
_copy_config = copier(RolloutConfig, ("retry_condition",))
_SPAN_SORT_KEYS = typing.get_args(SpanSortKey)
_WORKER_SORT_KEYS = typing.get_args(WorkerSortKey)
_copy_span = copier(Span, ("sequence_id", "rollout_id", "attempt_id", "trace_id"))
"""The stored copy of a caller's span (the span path calls it directly)."""


def _own(resources: NamedResources) -> NamedResources:
    """The store's own copy of a caller's resources mapping (anything else is left for validation)."""
    return dict(resources) if isinstance(resources, dict) else resources


# --- span size estimate ------------------------------------------------------------

_SPAN_BASE_BYTES = 480  # the Span object, its id strings, floats, dict headers, list + set slots


def _value_bytes(value: Any, depth: int = 0) -> int:
    if isinstance(value, str):
        return 49 + len(value)
    if value is None or isinstance(value, bool):
        return 8
    if isinstance(value, (int, float)):
        return 32
    if depth > 4:
        return 64
    if isinstance(value, dict):
        return 64 + sum(
            40 + _value_bytes(k, depth + 1) + _value_bytes(v, depth + 1) for k, v in value.items()
        )
    if isinstance(value, (list, tuple)):
        return 56 + sum(8 + _value_bytes(v, depth + 1) for v in value)
    if attrs.has(type(value)):
        return 64 + sum(
            8 + _value_bytes(getattr(value, f.name), depth + 1) for f in attrs.fields(type(value))
        )
    return 64


def estimate_span_bytes(span: Span) -> int:
    """A cheap estimate of the resident size of a stored span (no deep ``sys.getsizeof`` walk).

    Checked against measured RSS by ``benchmarks/store_bench.py``.
    """
    size = _SPAN_BASE_BYTES + len(span.name)
    attributes = span.attributes
    if attributes:
        size += 64
        for value in attributes.values():
            # keys are usually shared (interned) strings; count the slot plus the value
            t = type(value)
            if t is str:
                size += 89 + len(value)
            elif t is int or t is float:
                size += 72
            else:
                size += 40 + _value_bytes(value)
    if span.events:
        size += _value_bytes(span.events)
    if span.links:
        size += _value_bytes(span.links)
    return size


def _physical_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


# --- internal records --------------------------------------------------------------


class _RolloutRecord:
    """Everything the store keeps about one rollout."""

    __slots__ = (
        "attempts",
        "evicted",
        "next_sequence_id",
        "order",
        "rollout",
        "span_bytes",
        "span_keys",
        "spans",
        "spans_in_order",
    )

    def __init__(self, rollout: Rollout, order: int) -> None:
        self.rollout = rollout
        self.order = order  # position in enqueue order
        self.attempts: list[Attempt] = _NO_ATTEMPTS  # replaced, never appended to, on the first attempt
        # created with the first span: most rollouts in a queue have none yet
        self.spans: list[Span] | None = None
        self.span_keys: dict[str, set[str]] | None = None
        self.next_sequence_id = policy.FIRST_SEQUENCE_ID
        self.span_bytes = 0
        self.spans_in_order = True  # spans list sorted by sequence_id
        self.evicted = False


def _attempt_position(rec: _RolloutRecord, attempt_id: str) -> int | None:
    """Index of an attempt in ``rec.attempts`` (few per rollout: a scan from the latest is fastest)."""
    attempts = rec.attempts
    for i in range(len(attempts) - 1, -1, -1):
        if attempts[i].attempt_id == attempt_id:
            return i
    return None


class _Waiter:
    """One ``wait_for_rollouts`` call: the ids it still waits for and how to wake it from any thread."""

    __slots__ = ("event", "loop", "pending", "thread", "trio_token")

    def __init__(self, pending: set[str]) -> None:
        self.pending = pending
        self.event = anyio.Event()
        self.thread = threading.get_ident()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.trio_token: Any = None
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:  # not asyncio: trio is anyio's other backend
            trio = importlib.import_module("trio")
            self.trio_token = trio.lowlevel.current_trio_token()

    def wake(self) -> None:
        if threading.get_ident() == self.thread:
            self.event.set()
            return
        try:
            if self.loop is not None:
                self.loop.call_soon_threadsafe(self.event.set)
            else:
                self.trio_token.run_sync_soon(self.event.set)
        except RuntimeError:  # the waiter's loop has closed: nobody is waiting any more
            pass


# --- the store ---------------------------------------------------------------------


class InMemoryLightningStore(LightningStore):
    """A :class:`LightningStore` kept in this process's memory.

    :param watchdog_interval: seconds between watchdog passes (time-outs, unresponsive
        attempts); ``None`` disables the watchdog.
    :param span_budget_bytes: most bytes (estimated) that stored spans may use; over it, the
        spans of finished rollouts are evicted oldest first.
    :param span_budget_fraction: the budget as a share of physical memory, used when
        ``span_budget_bytes`` is not given (default 0.25).
    """

    def __init__(
        self,
        *,
        watchdog_interval: float | None = 1.0,
        span_budget_bytes: int | None = None,
        span_budget_fraction: float | None = None,
    ) -> None:
        check_seconds("watchdog_interval", watchdog_interval)
        check_positive_int("span_budget_bytes", span_budget_bytes, allow_none=True)
        if span_budget_fraction is not None and not 0 < span_budget_fraction <= 1:
            raise ValueError(f"span_budget_fraction must be in (0, 1], got {span_budget_fraction!r}")
        if span_budget_bytes is None:
            fraction = DEFAULT_SPAN_BUDGET_FRACTION if span_budget_fraction is None else span_budget_fraction
            span_budget_bytes = int(_physical_memory_bytes() * fraction)
        self.watchdog_interval = watchdog_interval
        self.span_budget_bytes: int = span_budget_bytes

        self._lock = threading.Lock()
        self._rollouts: dict[str, _RolloutRecord] = {}
        self._attempt_owner: dict[str, _RolloutRecord] = {}
        self._queue: OrderedDict[str, None] = OrderedDict()
        self._live: dict[str, _RolloutRecord] = {}  # attempts preparing/running
        self._finished: OrderedDict[str, None] = OrderedDict()  # terminal rollouts with spans, oldest first
        self._status_counts: dict[RolloutStatus, int] = dict.fromkeys(RolloutStatus, 0)
        self._attempt_count = 0
        self._span_count = 0
        self._span_bytes = 0
        self._evicted_rollouts = 0
        self._evicted_spans = 0
        self._dropped_spans = 0
        self._over_budget_warned = False
        self._resources: dict[str, ResourcesUpdate] = {}
        self._latest_resources_id: str | None = None
        self._workers: dict[str, Worker] = {}
        self._waiters: dict[str, list[_Waiter]] = {}
        self._wakes: list[_Waiter] = []
        self._task_group: TaskGroup | None = None
        self._created = time.monotonic()

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        if self._task_group is not None or self.watchdog_interval is None:
            return
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._task_group = tg
        await tg.start(self._watchdog_loop)

    async def aclose(self) -> None:
        tg, self._task_group = self._task_group, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)

    async def _watchdog_loop(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        assert self.watchdog_interval is not None
        task_status.started()
        while True:
            await anyio.sleep(self.watchdog_interval)
            try:
                self.run_watchdog_once()
            except Exception:  # keep watching; a bug here must not silently stop time-outs
                logger.exception(
                    "Store watchdog pass failed; it will run again in %ss", self.watchdog_interval
                )

    def run_watchdog_once(self, now: float | None = None) -> int:
        """Mark timed-out and unresponsive attempts now; returns how many changed.

        The background watchdog calls this every ``watchdog_interval`` seconds.
        """
        now = _now() if now is None else now
        changed = 0
        with self._lock:
            for attempt_id, rec in list(self._live.items()):
                config = rec.rollout.config
                if config.timeout_seconds is None and config.unresponsive_seconds is None:
                    continue
                idx = _attempt_position(rec, attempt_id)
                assert idx is not None
                attempt = rec.attempts[idx]
                verdict = policy.watchdog_verdict(attempt, config, now)
                if verdict is not None:
                    logger.info(
                        "Attempt %s of rollout %s is %s", attempt_id, attempt.rollout_id, verdict.value
                    )
                    self._set_attempt(rec, idx, replace(attempt, status=verdict, end_time=now), now)
                    changed += 1
        self._flush_wakes()
        return changed

    # --- internal transitions (call with the lock held) ------------------------------

    def _record(self, rollout_id: str) -> _RolloutRecord:
        rec = self._rollouts.get(rollout_id)
        if rec is None:
            raise RolloutNotFoundError(f"Rollout {rollout_id!r} not found in the store; check the id")
        return rec

    def _attempt_idx(self, rec: _RolloutRecord, attempt_id: str) -> int:
        if attempt_id == "latest":
            if not rec.attempts:
                raise AttemptNotFoundError(
                    f"Rollout {rec.rollout.rollout_id!r} has no attempts yet, so it has no 'latest' attempt"
                )
            return len(rec.attempts) - 1
        idx = _attempt_position(rec, attempt_id)
        if idx is None:
            raise AttemptNotFoundError(
                f"Attempt {attempt_id!r} not found in rollout {rec.rollout.rollout_id!r}; "
                "check both ids (attempt ids belong to one rollout)"
            )
        return idx

    def _set_rollout(self, rec: _RolloutRecord, new: Rollout, now: float) -> None:
        old = rec.rollout
        rec.rollout = new
        old_status, status = old.status, new.status
        if old_status is status:
            return
        counts = self._status_counts
        counts[old_status] -= 1
        counts[status] += 1
        rid = new.rollout_id
        if status in _QUEUED:
            if old_status not in _QUEUED:
                self._queue[rid] = None
        elif old_status in _QUEUED:
            self._queue.pop(rid, None)
        was_terminal = old_status in TERMINAL_ROLLOUT_STATUSES
        if status in TERMINAL_ROLLOUT_STATUSES:
            if not was_terminal:
                waiters = self._waiters.pop(rid, None)
                if waiters:
                    for w in waiters:
                        w.pending.discard(rid)
                        if not w.pending:
                            self._wakes.append(w)
                if rec.spans:
                    self._finished[rid] = None
                    self._enforce_budget()
        elif was_terminal:
            # back to work (requeued): its spans are no longer evictable, and new ones are kept
            self._finished.pop(rid, None)
            rec.evicted = False

    def _set_attempt(self, rec: _RolloutRecord, idx: int, new: Attempt, now: float) -> None:
        old = rec.attempts[idx]
        rec.attempts[idx] = new
        status = new.status
        if status is old.status:
            return
        aid = new.attempt_id
        if status in _ACTIVE:
            self._live[aid] = rec
        else:
            self._live.pop(aid, None)
        if new.worker_id is not None and status in TERMINAL_ATTEMPT_STATUSES:
            self._worker_idle(new.worker_id, aid, now)
        if idx == len(rec.attempts) - 1:
            rstatus = policy.rollout_status_for_attempt(rec.rollout, new)
            if rstatus is not None:
                r = rec.rollout
                self._set_rollout(
                    rec,
                    replace(r, status=rstatus, end_time=policy.end_time_for(rstatus, r.end_time, now)),
                    now,
                )

    def _new_attempt(self, rec: _RolloutRecord, worker_id: str | None, now: float) -> AttemptedRollout:
        rollout = rec.rollout
        resources_id = rollout.resources_id if rollout.resources_id is not None else self._latest_resources_id
        attempt = Attempt(
            rollout_id=rollout.rollout_id,
            attempt_id=policy.new_attempt_id(),
            sequence_id=len(rec.attempts) + 1,
            start_time=now,
            status=AttemptStatus.PREPARING,
            worker_id=worker_id,
            resources_id=resources_id,
        )
        rec.attempts = [*rec.attempts, attempt]
        self._attempt_owner[attempt.attempt_id] = rec
        self._live[attempt.attempt_id] = rec
        self._attempt_count += 1
        self._set_rollout(
            rec,
            replace(rollout, status=RolloutStatus.PREPARING, end_time=None, resources_id=resources_id),
            now,
        )
        if worker_id is not None:
            self._worker_busy(worker_id, attempt, now)
        return AttemptedRollout(rollout=rec.rollout, attempt=attempt)

    def _add_rollout(self, rollout: Rollout) -> _RolloutRecord:
        rec = _RolloutRecord(rollout, len(self._rollouts))
        self._rollouts[rollout.rollout_id] = rec
        self._status_counts[rollout.status] += 1
        if rollout.status in _QUEUED:
            self._queue[rollout.rollout_id] = None
        return rec

    def _flush_wakes(self) -> None:
        if not self._wakes:
            return
        with self._lock:
            wakes, self._wakes = self._wakes, []
        for waiter in wakes:
            waiter.wake()

    # --- workers (internal) ----------------------------------------------------------

    def _worker(self, worker_id: str) -> Worker:
        worker = self._workers.get(worker_id)
        if worker is None:
            worker = self._workers[worker_id] = Worker(worker_id=worker_id)
        return worker

    def _worker_busy(self, worker_id: str, attempt: Attempt, now: float) -> None:
        self._workers[worker_id] = replace(
            self._worker(worker_id),
            status=WorkerStatus.BUSY,
            last_dequeue_time=now,
            last_busy_time=now,
            current_rollout_id=attempt.rollout_id,
            current_attempt_id=attempt.attempt_id,
        )

    def _hand_over(self, old: Attempt, new: Attempt, now: float) -> None:
        """An attempt changes worker: the old one is released, the new one busy while it is active."""
        if old.worker_id is not None:
            self._worker_idle(old.worker_id, old.attempt_id, now)
        if new.worker_id is not None and old.status in _ACTIVE:
            self._worker_busy(new.worker_id, new, now)

    def _worker_idle(self, worker_id: str, attempt_id: str, now: float) -> None:
        worker = self._workers.get(worker_id)
        if worker is not None and worker.current_attempt_id == attempt_id:
            self._workers[worker_id] = replace(
                worker,
                status=WorkerStatus.IDLE,
                last_idle_time=now,
                current_rollout_id=None,
                current_attempt_id=None,
            )

    # --- rollouts --------------------------------------------------------------------

    @staticmethod
    def _make_rollout(
        input: Any,
        mode: RolloutMode | None,
        resources_id: str | None,
        config: RolloutConfig | None,
        metadata: dict[str, Any] | None,
        status: RolloutStatus,
        now: float,
    ) -> Rollout:
        if config is not None and not isinstance(config, RolloutConfig):
            raise TypeError(f"config must be a RolloutConfig, got {type(config).__name__}")
        if mode is not None:
            check_mode("mode", mode)
        # copied from a template: every field is ours or checked above (a hot path)
        rollout: Rollout = _new_rollout(
            _ROLLOUT_TEMPLATE,
            policy.new_rollout_id(),
            input,
            now,
            mode,
            resources_id,
            status,
            config
            if config is not None
            else _copy_config(_DEFAULT_CONFIG, list(_DEFAULT_CONFIG.retry_condition)),
            dict(metadata) if metadata else {},
        )
        return rollout

    async def start_rollout(
        self,
        input: Any,
        mode: RolloutMode | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | None = None,
        metadata: dict[str, Any] | None = None,
        worker_id: str | None = None,
    ) -> AttemptedRollout:
        now = _now()
        rollout = self._make_rollout(
            input, mode, resources_id, config, metadata, RolloutStatus.PREPARING, now
        )
        with self._lock:
            rec = self._add_rollout(rollout)
            return self._new_attempt(rec, worker_id, now)

    async def enqueue_rollout(
        self,
        input: Any,
        mode: RolloutMode | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Rollout:
        # the latest resources now (one attribute read: no lock needed to see a whole value)
        pinned = resources_id if resources_id is not None else self._latest_resources_id
        rollout = self._make_rollout(input, mode, pinned, config, metadata, RolloutStatus.QUEUING, _now())
        with self._lock:
            self._add_rollout(rollout)
        return rollout

    async def enqueue_many_rollouts(self, requests: Sequence[EnqueueRequest]) -> list[Rollout]:
        now = _now()
        latest = self._latest_resources_id
        rollouts = [
            self._make_rollout(
                r.input,
                r.mode,
                r.resources_id if r.resources_id is not None else latest,
                r.config,
                r.metadata,
                RolloutStatus.QUEUING,
                now,
            )
            for r in requests
        ]
        with self._lock:
            for rollout in rollouts:
                self._add_rollout(rollout)
        return rollouts

    async def dequeue_rollout(self, worker_id: str | None = None) -> AttemptedRollout | None:
        got = await self.dequeue_many_rollouts(1, worker_id)
        return got[0] if got else None

    async def dequeue_many_rollouts(self, limit: int, worker_id: str | None = None) -> list[AttemptedRollout]:
        check_positive_int("limit", limit, minimum=0)
        now = _now()
        out: list[AttemptedRollout] = []
        with self._lock:
            queue = self._queue
            while queue and len(out) < limit:
                rollout_id, _ = queue.popitem(last=False)
                out.append(self._new_attempt(self._rollouts[rollout_id], worker_id, now))
            if worker_id is not None and not out:
                self._workers[worker_id] = replace(self._worker(worker_id), last_dequeue_time=now)
        return out

    async def start_attempt(self, rollout_id: str, worker_id: str | None = None) -> AttemptedRollout:
        now = _now()
        with self._lock:
            rec = self._record(rollout_id)
            policy.check_can_start_attempt(rec.rollout)
            return self._new_attempt(rec, worker_id, now)

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
        predicate = policy.rollout_predicate(status_in, rollout_id_in, rollout_id_contains, filter_logic)
        with self._lock:
            if rollout_id_in is not None and filter_logic == "and":
                recs = [self._rollouts[i] for i in dict.fromkeys(rollout_id_in) if i in self._rollouts]
                # keep enqueue order, as for the unfiltered query
                recs.sort(key=lambda rec: rec.order)
                rollouts = [rec.rollout for rec in recs]
            else:
                rollouts = [rec.rollout for rec in self._rollouts.values()]
        if predicate is not None:
            rollouts = [r for r in rollouts if predicate(r)]
        rollouts = policy.sort_items(
            rollouts, sort_by, sort_order, ("start_time", "end_time", "rollout_id", "status")
        )
        return policy.paginate(rollouts, limit, offset)

    async def get_rollout_by_id(self, rollout_id: str) -> Rollout:
        with self._lock:
            return self._record(rollout_id).rollout

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
        changes: dict[str, Any] = {}
        if input is not UNSET:
            changes["input"] = input
        if mode is not UNSET:
            changes["mode"] = check_mode("mode", mode)
        if resources_id is not UNSET:
            changes["resources_id"] = resources_id
        if config is not UNSET:
            if not isinstance(config, RolloutConfig):
                raise TypeError(f"config must be a RolloutConfig, got {type(config).__name__}")
            changes["config"] = config
        if metadata is not UNSET:
            if not isinstance(metadata, dict):
                raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
            changes["metadata"] = dict(metadata)
        new_status = None if isinstance(status, Unset) else parse_rollout_status(status)
        now = _now()
        with self._lock:
            rec = self._record(rollout_id)
            if new_status is not None:
                changes["status"] = new_status
                changes["end_time"] = policy.end_time_for(new_status, rec.rollout.end_time, now)
                if new_status in _QUEUED and rec.rollout.status in _QUEUED:
                    self._queue.move_to_end(rollout_id)  # re-queued explicitly: back of the line
            self._set_rollout(rec, replace(rec.rollout, **changes), now)
            result = rec.rollout
        self._flush_wakes()
        return result

    async def wait_for_rollouts(
        self, rollout_ids: Sequence[str], timeout: float | None = None
    ) -> list[Rollout]:
        if isinstance(rollout_ids, str):
            raise TypeError(f"rollout_ids must be a list of ids, got the string {rollout_ids!r}")
        timeout = policy.check_wait_timeout(timeout)
        waiter: _Waiter | None = None
        with self._lock:
            recs = [self._record(rid) for rid in rollout_ids]
            pending = {
                r.rollout.rollout_id for r in recs if r.rollout.status not in TERMINAL_ROLLOUT_STATUSES
            }
            if pending and timeout != 0:
                waiter = _Waiter(pending)
                for rid in pending:
                    self._waiters.setdefault(rid, []).append(waiter)
        if waiter is not None:
            try:
                with anyio.move_on_after(timeout):
                    await waiter.event.wait()
            finally:
                with self._lock:
                    for rid in waiter.pending:
                        waiting = self._waiters.get(rid)
                        if waiting is not None and waiter in waiting:
                            waiting.remove(waiter)
                            if not waiting:
                                del self._waiters[rid]
        return [r.rollout for r in recs if r.rollout.status in TERMINAL_ROLLOUT_STATUSES]

    # --- attempts --------------------------------------------------------------------

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
        with self._lock:
            attempts = list(self._record(rollout_id).attempts)
        return policy.paginate(
            policy.sort_items(attempts, sort_by, sort_order, ("sequence_id", "start_time")), limit, offset
        )

    async def get_latest_attempt(self, rollout_id: str) -> Attempt | None:
        with self._lock:
            attempts = self._record(rollout_id).attempts
            return attempts[-1] if attempts else None

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
        changes: dict[str, Any] = {}
        new_status = None if isinstance(status, Unset) else parse_attempt_status(status)
        if reward is not UNSET:
            changes["reward"] = policy.check_reward(reward)
        if worker_id is not UNSET:
            changes["worker_id"] = worker_id
        if last_heartbeat_time is not UNSET:
            changes["last_heartbeat_time"] = last_heartbeat_time
        if metadata is not UNSET:
            if not isinstance(metadata, dict):
                raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
            changes["metadata"] = dict(metadata)
        now = _now()
        with self._lock:
            rec = self._record(rollout_id)
            idx = self._attempt_idx(rec, attempt_id)
            attempt = rec.attempts[idx]
            if new_status is None and last_heartbeat_time is not UNSET:
                # an explicit heartbeat revives the attempt exactly as a span does
                revived = policy.attempt_status_after_heartbeat(attempt.status)
                if revived is not attempt.status:
                    new_status = revived
            if new_status is not None:
                changes["status"] = new_status
                changes["end_time"] = policy.end_time_for(new_status, attempt.end_time, now)
            new = replace(attempt, **changes)
            if new.worker_id != attempt.worker_id:
                self._hand_over(attempt, new, now)
            self._set_attempt(rec, idx, new, now)
        self._flush_wakes()
        return new

    # --- spans -----------------------------------------------------------------------

    def _span_target(self, rollout_id: str, attempt_id: str) -> tuple[_RolloutRecord, str]:
        """The record and the stored attempt id for spans of an attempt; raises for unknown ids."""
        rec = self._record(rollout_id)
        if attempt_id == "latest":
            raise AttemptNotFoundError(
                f"Span of rollout {rollout_id!r} names attempt 'latest'; spans need a concrete attempt id"
            )
        return rec, rec.attempts[self._attempt_idx(rec, attempt_id)].attempt_id

    def _store_span(self, rec: _RolloutRecord, attempt_id: str, span: Span) -> Span | None:
        """Store a copy of one span of ``rec`` (lock held) and return it; None for a duplicate
        or an evicted rollout. The caller's span is not changed."""
        if rec.evicted:
            self._dropped_spans += 1
            return None
        by_attempt = rec.span_keys
        if by_attempt is None:
            by_attempt = rec.span_keys = {}
            rec.spans = []
            if rec.rollout.status in TERMINAL_ROLLOUT_STATUSES:
                # late spans of a rollout that ended without any: evictable like the others
                self._finished[rec.rollout.rollout_id] = None
        keys = by_attempt.get(attempt_id)
        if keys is None:
            keys = by_attempt[attempt_id] = set()
        span_id = span.span_id
        if span_id in keys:
            return None
        keys.add(span_id)
        seq, rec.next_sequence_id = policy.next_sequence_id(rec.next_sequence_id, span.sequence_id)
        # the stored copy shares the strings many spans repeat instead of keeping one per span
        span = _copy_span(span, seq, rec.rollout.rollout_id, attempt_id, sys.intern(span.trace_id))
        spans = rec.spans
        assert spans is not None
        if spans and spans[-1].sequence_id > seq:
            rec.spans_in_order = False
        spans.append(span)
        size = estimate_span_bytes(span)
        rec.span_bytes += size
        self._span_bytes += size
        self._span_count += 1
        return span

    def _heartbeat(self, rec: _RolloutRecord, attempt_id: str, now: float) -> None:
        idx = _attempt_position(rec, attempt_id)
        assert idx is not None
        attempt = rec.attempts[idx]
        self._set_attempt(
            rec,
            idx,
            replace(
                attempt,
                status=policy.attempt_status_after_heartbeat(attempt.status),
                last_heartbeat_time=now,
                end_time=None if attempt.status is AttemptStatus.UNRESPONSIVE else attempt.end_time,
            ),
            now,
        )

    def _after_spans(self) -> None:
        if self._span_bytes > self.span_budget_bytes:
            self._enforce_budget()

    async def add_span(self, span: Span) -> Span | None:
        now = _now()
        with self._lock:
            rec, attempt_id = self._span_target(span.rollout_id, span.attempt_id)
            stored = self._store_span(rec, attempt_id, span)
            if not rec.evicted:
                self._heartbeat(rec, attempt_id, now)
            if stored is not None:
                self._after_spans()
        return stored

    async def add_many_spans(self, spans: Sequence[Span]) -> list[Span]:
        now = _now()
        stored: list[Span] = []
        with self._lock:
            # resolve every (rollout, attempt) first so an unknown id stores nothing
            targets: dict[tuple[str, str], tuple[_RolloutRecord, str]] = {}
            for span in spans:
                key = (span.rollout_id, span.attempt_id)
                if key not in targets:
                    targets[key] = self._span_target(*key)
            last_key: tuple[str, str] | None = None
            rec, attempt_id = None, ""
            for span in spans:
                key = (span.rollout_id, span.attempt_id)
                if key != last_key:
                    rec, attempt_id = targets[key]
                    last_key = key
                assert rec is not None
                copy = self._store_span(rec, attempt_id, span)
                if copy is not None:
                    stored.append(copy)
            for rec, attempt_id in targets.values():
                if not rec.evicted:
                    self._heartbeat(rec, attempt_id, now)
            if stored:
                self._after_spans()
        return stored

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
        with self._lock:
            recs = []
            for rollout_id, attempt_id in rollout_attempt_ids:  # every id checked before any is used
                rec = self._record(rollout_id)
                self._attempt_idx(rec, attempt_id)
                recs.append(rec)
            seqs = []
            for rec in recs:
                seqs.append(rec.next_sequence_id)
                rec.next_sequence_id += 1
            return seqs

    def _evicted_error(self, rollout_id: str) -> SpansEvictedError:
        return SpansEvictedError(
            f"Spans of rollout {rollout_id!r} were evicted after it finished, to keep stored spans within "
            f"the span budget of {self.span_budget_bytes} bytes. Read spans soon after a rollout ends, or "
            "raise the budget: InMemoryLightningStore(span_budget_bytes=...) or span_budget_fraction=..."
        )

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
        filters = (name, name_contains, trace_id, trace_id_contains, span_id, span_id_contains, parent_id)
        if parent_id_contains is None and filters.count(None) == len(filters):  # the common read
            policy.check_filter_logic(filter_logic)
            predicate = None
        else:
            predicate = policy.span_predicate(
                filter_logic,
                name=name,
                name_contains=name_contains,
                trace_id=trace_id,
                trace_id_contains=trace_id_contains,
                span_id=span_id,
                span_id_contains=span_id_contains,
                parent_id=parent_id,
                parent_id_contains=parent_id_contains,
            )
        with self._lock:
            rec = self._record(rollout_id)
            if rec.evicted:
                raise self._evicted_error(rollout_id)
            in_order = rec.spans_in_order
            if attempt_id is None:
                spans = list(rec.spans or ())
            elif attempt_id == "latest" and not rec.attempts:
                spans = []
            else:
                aid = rec.attempts[self._attempt_idx(rec, attempt_id)].attempt_id
                spans = [s for s in rec.spans or () if s.attempt_id == aid]
        if predicate is not None:
            spans = [s for s in spans if predicate(s)]
        if sort_by == "sequence_id" and in_order and sort_order in ("asc", "desc"):
            if sort_order == "desc":
                spans.reverse()
        else:
            spans = policy.sort_items(spans, sort_by, sort_order, _SPAN_SORT_KEYS)
        return policy.paginate(spans, limit, offset)

    def _enforce_budget(self) -> None:
        """Evict spans of finished rollouts, oldest first, until within budget (lock held)."""
        budget = self.span_budget_bytes
        if self._span_bytes <= budget:
            self._over_budget_warned = False
            return
        finished = self._finished
        evicted = 0
        while self._span_bytes > budget and finished:
            rid, _ = finished.popitem(last=False)
            rec = self._rollouts[rid]
            self._span_bytes -= rec.span_bytes
            count = len(rec.spans or ())
            self._span_count -= count
            self._evicted_spans += count
            rec.spans = None
            rec.span_keys = None
            rec.span_bytes = 0
            rec.spans_in_order = True
            rec.evicted = True
            evicted += 1
        self._evicted_rollouts += evicted
        if evicted:
            logger.info("Evicted spans of %d finished rollouts to stay within %d bytes", evicted, budget)
        if self._span_bytes > budget and not self._over_budget_warned:
            self._over_budget_warned = True
            logger.warning(
                "Spans of unfinished rollouts use %d bytes, over the span budget of %d bytes; nothing "
                "can be evicted until rollouts finish. Raise span_budget_bytes if this is expected.",
                self._span_bytes,
                budget,
            )

    # --- resources -------------------------------------------------------------------

    async def add_resources(self, resources: NamedResources) -> ResourcesUpdate:
        now = _now()
        update = ResourcesUpdate(
            resources_id=policy.new_resources_id(),
            create_time=now,
            update_time=now,
            version=1,
            resources=_own(resources),
        )
        with self._lock:
            self._resources[update.resources_id] = update
            self._latest_resources_id = update.resources_id
        return update

    async def update_resources(self, resources_id: str, resources: NamedResources) -> ResourcesUpdate:
        now = _now()
        with self._lock:
            old = self._resources.get(resources_id)
            update = ResourcesUpdate(
                resources_id=resources_id,
                create_time=old.create_time if old is not None else now,
                update_time=now,
                version=old.version + 1 if old is not None else 1,
                resources=_own(resources),
            )
            self._resources[resources_id] = update
            self._latest_resources_id = resources_id
        return update

    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate:
        with self._lock:
            update = self._resources.get(resources_id)
        if update is None:
            raise ResourcesNotFoundError(f"Resources {resources_id!r} not found in the store; check the id")
        return update

    async def get_latest_resources(self) -> ResourcesUpdate | None:
        with self._lock:
            rid = self._latest_resources_id
            return self._resources[rid] if rid is not None else None

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
        with self._lock:
            if resources_id is not None:
                one = self._resources.get(resources_id)
                updates = [one] if one is not None else []
            else:
                updates = list(self._resources.values())
        if resources_id_contains is not None:
            updates = [u for u in updates if resources_id_contains in u.resources_id]
        return policy.paginate(
            policy.sort_items(updates, sort_by, sort_order, ("create_time", "update_time", "resources_id")),
            limit,
            offset,
        )

    # --- workers ---------------------------------------------------------------------

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
        predicate = policy.worker_predicate(status_in, worker_id_contains, filter_logic)
        with self._lock:
            workers = list(self._workers.values())
        if predicate is not None:
            workers = [w for w in workers if predicate(w)]
        return policy.paginate(
            policy.sort_items(workers, sort_by, sort_order, _WORKER_SORT_KEYS), limit, offset
        )

    async def get_worker_by_id(self, worker_id: str) -> Worker:
        with self._lock:
            worker = self._workers.get(worker_id)
        if worker is None:
            raise WorkerNotFoundError(
                f"Worker {worker_id!r} not found in the store; workers appear when they dequeue or call update_worker"
            )
        return worker

    async def update_worker(
        self,
        worker_id: str,
        *,
        status: WorkerStatus | str | Unset = UNSET,
        heartbeat_stats: dict[str, Any] | Unset | None = UNSET,
    ) -> Worker:
        check_non_empty_str("worker_id", worker_id)
        now = _now()
        changes: dict[str, Any] = {"last_heartbeat_time": now}
        if not isinstance(status, Unset):
            new_status = parse_worker_status(status)
            changes["status"] = new_status
            if new_status is WorkerStatus.BUSY:
                changes["last_busy_time"] = now
            elif new_status is WorkerStatus.IDLE:
                changes["last_idle_time"] = now
        if heartbeat_stats is not UNSET:
            changes["heartbeat_stats"] = dict(heartbeat_stats) if heartbeat_stats is not None else None
        with self._lock:
            worker = self._workers[worker_id] = replace(self._worker(worker_id), **changes)
        return worker

    # --- introspection ---------------------------------------------------------------

    async def statistics(self) -> dict[str, Any]:
        with self._lock:
            stats = {
                "rollouts": len(self._rollouts),
                "rollouts_by_status": {s.value: n for s, n in self._status_counts.items()},
                "queue_length": len(self._queue),
                "attempts": self._attempt_count,
                "live_attempts": len(self._live),
                "spans": self._span_count,
                "span_bytes": self._span_bytes,
                "span_budget_bytes": self.span_budget_bytes,
                "evicted_rollouts": self._evicted_rollouts,
                "evicted_spans": self._evicted_spans,
                "dropped_spans": self._dropped_spans,
                "resources": len(self._resources),
                "workers": len(self._workers),
            }
        return policy.with_earlier_statistics(stats, self, self._created)
