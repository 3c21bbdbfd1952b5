"""The store contract: the control plane of rollouts, attempts, spans, resources and workers.

Every backend (in memory, SQLite, the HTTP client) implements :class:`LightningStore` and
passes the same conformance suite (``agentlightning_core.testing.store``). State transition
rules live in :mod:`agentlightning_core.store.policy` so every backend applies the same ones.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, overload

import attrs

from agentlightning_core.codec import JsonModel
from agentlightning_core.resources import NamedResources, ResourcesUpdate
from agentlightning_core.spans import Span
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
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = [
    "UNSET",
    "EnqueueRequest",
    "FilterLogic",
    "LightningStore",
    "PaginatedResult",
    "RolloutSortKey",
    "SortOrder",
    "SpanSortKey",
    "Unset",
    "WorkerSortKey",
]

T = TypeVar("T")
SortOrder = Literal["asc", "desc"]
FilterLogic = Literal["and", "or"]
"""How the optional filters of a query combine: all must match, or any."""
RolloutSortKey = Literal["start_time", "end_time", "rollout_id", "status"]
SpanSortKey = Literal["sequence_id", "start_time", "end_time", "span_id", "trace_id", "name"]
WorkerSortKey = Literal[
    "worker_id", "status", "last_heartbeat_time", "last_dequeue_time", "last_busy_time", "last_idle_time"
]


class Unset(enum.Enum):
    """Sentinel type: "leave this field as it is" (distinct from ``None``)."""

    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset.UNSET


@attrs.define(slots=True)
class PaginatedResult(Sequence[T]):
    """A page of results plus the total number of matches before paging.

    A :class:`collections.abc.Sequence` of the page's items (``len``, indexing, slicing, ``in``).
    """

    items: list[T]
    total: int
    limit: int = -1
    offset: int = 0

    def __iter__(self) -> Iterator[T]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        return self.items[index]


@attrs.define(slots=True)
class EnqueueRequest(JsonModel):
    """One rollout to enqueue (the items of :meth:`LightningStore.enqueue_many_rollouts`)."""

    input: Any
    mode: RolloutMode | None = None
    resources_id: str | None = None
    config: RolloutConfig | None = None
    metadata: dict[str, Any] | None = None


class LightningStore(ABC):
    """Asynchronous control plane shared by algorithms and runners.

    Use it as ``async with store:`` so background work (the watchdog) starts and stops with
    it. Unknown ids raise subclasses of :class:`~agentlightning_core.errors.NotFoundError`.
    """

    async def start(self) -> None:
        """Start background work (e.g. the watchdog). Idempotent."""

    async def aclose(self) -> None:
        """Stop background work and release resources. Idempotent."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- rollouts --------------------------------------------------------------------

    @abstractmethod
    async def start_rollout(
        self,
        input: Any,
        mode: RolloutMode | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | None = None,
        metadata: dict[str, Any] | None = None,
        worker_id: str | None = None,
    ) -> AttemptedRollout:
        """Create a rollout and its first attempt at once (status preparing), bypassing the queue."""

    @abstractmethod
    async def enqueue_rollout(
        self,
        input: Any,
        mode: RolloutMode | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Rollout:
        """Add a rollout to the queue (status queuing).

        ``resources_id`` None records the latest resources now; with none stored yet, the
        rollout takes the latest at dequeue.
        """

    @abstractmethod
    async def enqueue_many_rollouts(self, requests: Sequence[EnqueueRequest]) -> list[Rollout]:
        """Enqueue several rollouts in one call, in order."""

    @abstractmethod
    async def dequeue_rollout(self, worker_id: str | None = None) -> AttemptedRollout | None:
        """Take the oldest queuing/requeuing rollout and create its next attempt; None if the queue is empty."""

    @abstractmethod
    async def dequeue_many_rollouts(self, limit: int, worker_id: str | None = None) -> list[AttemptedRollout]:
        """Dequeue up to ``limit`` rollouts in FIFO order."""

    @abstractmethod
    async def start_attempt(self, rollout_id: str, worker_id: str | None = None) -> AttemptedRollout:
        """Create the rollout's next attempt outside the queue (e.g. a manual retry).

        Allowed while the rollout is queuing, requeuing, preparing or running: it leaves the
        queue and becomes preparing; an attempt still active stays as it is but no longer
        changes the rollout. A terminal rollout (succeeded, failed, cancelled) raises
        ``ValueError``: requeue it with ``update_rollout(status="requeuing")`` to run it again.
        """

    @abstractmethod
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
        """Rollouts matching the filters (combined with ``filter_logic``); ``limit=-1`` means all.

        Unsorted results come in enqueue order.
        """

    @abstractmethod
    async def get_rollout_by_id(self, rollout_id: str) -> Rollout:
        """The rollout, or ``RolloutNotFoundError``."""

    @abstractmethod
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
        """Change fields of a rollout; ``UNSET`` leaves a field as it is."""

    @abstractmethod
    async def wait_for_rollouts(
        self, rollout_ids: Sequence[str], timeout: float | None = None
    ) -> list[Rollout]:
        """Wait until every given rollout is terminal or ``timeout`` seconds pass.

        Returns the rollouts that are terminal when it returns, in the order given.
        ``timeout=0`` checks without waiting; ``None`` waits indefinitely.
        """

    # --- attempts --------------------------------------------------------------------

    @abstractmethod
    async def query_attempts(
        self,
        rollout_id: str,
        *,
        sort_by: Literal["sequence_id", "start_time"] = "sequence_id",
        sort_order: SortOrder = "asc",
        limit: int = -1,
        offset: int = 0,
    ) -> PaginatedResult[Attempt]:
        """Attempts of a rollout."""

    @abstractmethod
    async def get_latest_attempt(self, rollout_id: str) -> Attempt | None:
        """The attempt with the highest sequence id, None if the rollout has none."""

    @abstractmethod
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
        """Change an attempt; a terminal status ends it and may requeue or finish the rollout.

        ``reward`` is the attempt's final reward (a finite number or None); the runner records
        it with the attempt's final status.

        ``last_heartbeat_time`` without ``status`` is a heartbeat, as a span is: a preparing or
        unresponsive attempt becomes running (see ``policy.attempt_status_after_heartbeat``).
        A new ``worker_id`` hands the attempt over: its previous worker becomes idle and the
        new one is busy with it while it is active (and idle when it ends).
        """

    # --- spans -----------------------------------------------------------------------

    @abstractmethod
    async def add_span(self, span: Span) -> Span | None:
        """Store a span (a heartbeat for its attempt). A duplicate returns None and stores nothing.

        A span with ``sequence_id == 0`` gets the rollout's next sequence id from the store.
        The caller's span is left as it is: the store keeps, and returns, its own copy.
        """

    @abstractmethod
    async def add_many_spans(self, spans: Sequence[Span]) -> list[Span]:
        """Store several spans in one call; returns (copies of) those newly stored."""

    @abstractmethod
    async def add_otel_span(
        self, rollout_id: str, attempt_id: str, readable_span: ReadableSpan, sequence_id: int | None = None
    ) -> Span | None:
        """Convert an OpenTelemetry SDK span and store it, allocating a sequence id when not given."""

    @abstractmethod
    async def get_next_span_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        """Allocate the next span sequence id of a rollout (strictly increasing, never reused)."""

    async def get_many_span_sequence_ids(self, rollout_attempt_ids: Sequence[tuple[str, str]]) -> list[int]:
        """Allocate one sequence id per ``(rollout_id, attempt_id)`` pair, in order.

        Backends override this to allocate them all in one step; this default asks for each.
        """
        return [await self.get_next_span_sequence_id(r, a) for r, a in rollout_attempt_ids]

    @abstractmethod
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
        """Spans of a rollout, optionally of one attempt (``"latest"``: the latest attempt).

        The field filters (exact, or ``*_contains`` for a substring) combine with
        ``filter_logic``; the rollout and attempt always apply. Raises ``SpansEvictedError``
        when the rollout's spans were evicted.
        """

    # --- resources -------------------------------------------------------------------

    @abstractmethod
    async def add_resources(self, resources: NamedResources) -> ResourcesUpdate:
        """Store a new resources snapshot under a fresh id; it becomes the latest.

        The store copies the mapping: later changes to the caller's dict do not alter the snapshot.
        """

    @abstractmethod
    async def update_resources(self, resources_id: str, resources: NamedResources) -> ResourcesUpdate:
        """Create or replace the snapshot ``resources_id`` (version + 1); it becomes the latest."""

    @abstractmethod
    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate:
        """The snapshot, or ``ResourcesNotFoundError``."""

    @abstractmethod
    async def get_latest_resources(self) -> ResourcesUpdate | None:
        """The most recently added or updated snapshot, None if there is none."""

    @abstractmethod
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
        """Resource snapshots, optionally only ``resources_id`` or those whose id contains a substring."""

    # --- workers ---------------------------------------------------------------------

    @abstractmethod
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
        """Known workers matching the filters; unsorted, in order of first appearance."""

    @abstractmethod
    async def get_worker_by_id(self, worker_id: str) -> Worker:
        """The worker, or ``WorkerNotFoundError``."""

    @abstractmethod
    async def update_worker(
        self,
        worker_id: str,
        *,
        status: WorkerStatus | str | Unset = UNSET,
        heartbeat_stats: dict[str, Any] | Unset | None = UNSET,
    ) -> Worker:
        """Record a worker heartbeat (creating the worker on first call)."""

    # --- introspection ---------------------------------------------------------------

    @abstractmethod
    async def statistics(self) -> dict[str, Any]:
        """Counts (rollouts by status, attempts, spans, resources, workers) and span bytes.

        Also the earlier API's keys: ``name`` (the store class), ``uptime`` (seconds since
        the store object was made) and ``total_rollouts``, ``total_attempts``,
        ``total_spans``, ``total_resources``, ``total_workers``.
        """
