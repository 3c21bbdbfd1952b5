"""Conformance suite for :class:`~agentlightning_core.store.base.LightningStore` backends.

Every store (in memory, SQLite, the HTTP client, third-party ones) runs these tests unchanged.

Subclassing contract
--------------------
Subclass :class:`StoreConformance` in a test module under a name pytest collects
(``Test...``) and provide one fixture, ``store_factory``, returning a callable that takes
keyword options and returns a new, *empty, not yet started* store::

    from agentlightning_core.testing.store import StoreConformance, SpanBudgetConformance

    class TestMyStore(StoreConformance):
        @pytest.fixture
        def store_factory(self, tmp_path):
            return lambda **options: MyStore(path=tmp_path / "db", **options)

    class TestMyStoreBudget(SpanBudgetConformance):
        store_factory = TestMyStore.store_factory  # the same fixture

Options the suites pass (a store must accept them):

- ``watchdog_interval`` (float seconds): period of the background watchdog; the suite uses
  :data:`WATCHDOG_INTERVAL` (20 ms) so time-out tests finish quickly;
- ``span_budget_bytes`` (int, :class:`SpanBudgetConformance` only): the span memory budget.

The suite enters the store with ``async with`` (starting its watchdog) and leaves it at the
end of each test. The factory may be called more than once per test (each call must give
an independent, empty store). Tests are ``anyio`` tests; the module that subclasses chooses
the backend through the usual ``anyio_backend`` fixture. Don't override the suite's tests
except to mark one ``xfail`` with a reason.

The classes are named so that pytest does not collect them where they are only imported.
"""

from __future__ import annotations

import collections.abc
import inspect
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import anyio
import attrs
import pytest

from agentlightning_core.errors import (
    AttemptNotFoundError,
    NotFoundError,
    ResourcesNotFoundError,
    RolloutNotFoundError,
    SpansEvictedError,
    WorkerNotFoundError,
)
from agentlightning_core.resources import LLM, PromptTemplate
from agentlightning_core.spans import Span
from agentlightning_core.store.base import UNSET, EnqueueRequest, LightningStore
from agentlightning_core.testing.conformance import ConformanceSuite
from agentlightning_core.types import AttemptStatus, Rollout, RolloutConfig, RolloutStatus, WorkerStatus

__all__ = [
    "WATCHDOG_INTERVAL",
    "SpanBudgetConformance",
    "StoreConformance",
    "StoreFactory",
    "make_span",
    "signature_drift",
    "store_methods",
    "wait_until",
]

WATCHDOG_INTERVAL = 0.02
"""Watchdog period the suites ask for, in seconds."""

DEADLINE = 5.0
"""Longest any condition is waited for before a test fails."""


class StoreFactory(Protocol):
    def __call__(self, **options: Any) -> LightningStore: ...


def make_span(
    rollout_id: str,
    attempt_id: str,
    index: int,
    *,
    sequence_id: int = 0,
    name: str = "step",
    trace_id: str = "0" * 31 + "1",
    parent_id: str | None = None,
    start_time: float | None = None,
    **attributes: Any,
) -> Span:
    """A small span; ``index`` makes its span id, ``sequence_id=0`` lets the store allocate one."""
    start = 1_700_000_000.0 + index if start_time is None else start_time
    return Span(
        rollout_id=rollout_id,
        attempt_id=attempt_id,
        sequence_id=sequence_id,
        trace_id=trace_id,
        span_id=f"{index + 1:016x}",
        parent_id=parent_id,
        name=name,
        start_time=start,
        end_time=start + 0.5,
        attributes=dict(attributes),
    )


async def wait_until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = DEADLINE) -> None:
    """Re-check ``check`` until it holds; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for: {what}")
        await anyio.sleep(WATCHDOG_INTERVAL / 2)


def store_methods(base: type = LightningStore) -> dict[str, inspect.Signature]:
    """The public store methods of ``base`` (every public coroutine method) by name."""
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(base, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }


def _shape(signature: inspect.Signature) -> str:
    """A signature's parameter names, kinds and defaults (annotations left out), without ``self``."""
    params = [p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()]
    return str(inspect.Signature(params[1:]))


def signature_drift(cls: type, base: type = LightningStore) -> list[str]:
    """How the store methods of ``cls`` differ from ``base``'s in parameter names, kinds or
    defaults: one line per method that differs (empty when they agree)."""
    problems: list[str] = []
    for name, expected in store_methods(base).items():
        method = getattr(cls, name, None)
        if method is None or not inspect.iscoroutinefunction(method):
            problems.append(f"{cls.__name__}.{name} is missing or not a coroutine method")
            continue
        got, want = _shape(inspect.signature(method)), _shape(expected)
        if got != want:
            problems.append(f"{cls.__name__}.{name}{got} differs from {base.__name__}.{name}{want}")
    return problems


def _retry(max_attempts: int, *statuses: str, **kw: Any) -> RolloutConfig:
    return RolloutConfig(max_attempts=max_attempts, retry_condition=list(statuses), **kw)


class StoreConformance(ConformanceSuite):
    """Behaviour every :class:`LightningStore` must show; see the module docstring to subclass."""

    pytestmark = [pytest.mark.anyio]

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        """Override: return ``lambda **options: YourStore(**options)`` (new, empty, not started)."""
        raise NotImplementedError(f"{type(self).__name__} must define the store_factory fixture")

    @pytest.fixture
    async def store(self, store_factory: StoreFactory) -> AsyncIterator[LightningStore]:
        async with store_factory(watchdog_interval=WATCHDOG_INTERVAL) as store:
            yield store

    # --- enqueue / dequeue -----------------------------------------------------------

    async def test_enqueue_returns_a_queuing_rollout_with_the_given_fields(
        self, store: LightningStore
    ) -> None:
        config = _retry(2, "failed", timeout_seconds=30.0)
        r = await store.enqueue_rollout(
            {"q": "2+2"}, mode="train", resources_id="rs-x", config=config, metadata={"k": 1}
        )
        assert r.status is RolloutStatus.QUEUING
        assert r.rollout_id and r.end_time is None and r.start_time > 0
        got = await store.get_rollout_by_id(r.rollout_id)
        assert got == r
        assert (got.input, got.mode, got.resources_id, got.metadata) == (
            {"q": "2+2"},
            "train",
            "rs-x",
            {"k": 1},
        )
        assert got.config == config

    async def test_rollout_ids_are_unique(self, store: LightningStore) -> None:
        many = await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(50)])
        one = await store.enqueue_rollout(0)
        assert len({r.rollout_id for r in [*many, one]}) == 51

    async def test_dequeue_is_fifo_and_creates_first_attempt(self, store: LightningStore) -> None:
        rollouts = await store.enqueue_many_rollouts([EnqueueRequest(input=i, mode="val") for i in range(3)])
        assert [r.input for r in rollouts] == [0, 1, 2]
        got = [await store.dequeue_rollout(worker_id="w1") for _ in range(3)]
        assert [g.rollout_id for g in got if g] == [r.rollout_id for r in rollouts]
        first = got[0]
        assert first is not None
        assert first.attempt.sequence_id == 1
        assert first.attempt.status is AttemptStatus.PREPARING
        assert first.attempt.worker_id == "w1"
        assert first.attempt.rollout_id == first.rollout_id
        assert first.rollout.status is RolloutStatus.PREPARING
        assert first.input == 0 and first.mode == "val"
        assert await store.dequeue_rollout() is None

    async def test_dequeue_many_respects_limit_and_order(self, store: LightningStore) -> None:
        rollouts = await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(5)])
        first = await store.dequeue_many_rollouts(3)
        rest = await store.dequeue_many_rollouts(10)
        assert [a.rollout_id for a in first + rest] == [r.rollout_id for r in rollouts]
        assert await store.dequeue_many_rollouts(2) == []

    async def test_dequeue_on_empty_store_returns_none(self, store: LightningStore) -> None:
        assert await store.dequeue_rollout() is None

    async def test_start_rollout_bypasses_the_queue(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x", mode="test", worker_id="w9")
        assert ar.rollout.status is RolloutStatus.PREPARING
        assert ar.attempt.sequence_id == 1 and ar.attempt.worker_id == "w9"
        assert await store.dequeue_rollout() is None
        assert (await store.get_latest_attempt(ar.rollout_id)) == ar.attempt

    async def test_start_attempt_creates_the_next_attempt(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        second = await store.start_attempt(ar.rollout_id, worker_id="w2")
        assert second.attempt.sequence_id == 2
        assert second.attempt.attempt_id != ar.attempt_id
        assert second.rollout.status is RolloutStatus.PREPARING
        attempts = await store.query_attempts(ar.rollout_id)
        assert [a.sequence_id for a in attempts] == [1, 2]

    async def test_start_attempt_takes_a_rollout_off_the_queue(self, store: LightningStore) -> None:
        r = await store.enqueue_rollout("x")
        await store.start_attempt(r.rollout_id)
        assert await store.dequeue_rollout() is None

    async def test_start_attempt_refuses_a_finished_rollout(self, store: LightningStore) -> None:
        succeeded = await store.start_rollout("s")
        await store.update_attempt(succeeded.rollout_id, succeeded.attempt_id, status="succeeded")
        failed = await store.start_rollout("f")
        await store.update_attempt(failed.rollout_id, failed.attempt_id, status="failed")
        cancelled = await store.enqueue_rollout("c")
        await store.update_rollout(cancelled.rollout_id, status="cancelled")
        for rollout_id, status in (
            (succeeded.rollout_id, "succeeded"),
            (failed.rollout_id, "failed"),
            (cancelled.rollout_id, "cancelled"),
        ):
            before = await store.get_rollout_by_id(rollout_id)
            attempts = (await store.query_attempts(rollout_id)).total
            with pytest.raises(ValueError, match=rf"{rollout_id}.*{status}.*update_rollout"):
                await store.start_attempt(rollout_id, worker_id="w1")
            assert await store.get_rollout_by_id(rollout_id) == before, "a refused attempt changes nothing"
            assert (await store.query_attempts(rollout_id)).total == attempts
        # requeued through update_rollout, it may run again
        await store.update_rollout(failed.rollout_id, status="requeuing")
        again = await store.start_attempt(failed.rollout_id)
        assert again.attempt.sequence_id == 2 and again.rollout.status is RolloutStatus.PREPARING

    async def test_cancelled_rollout_is_never_dequeued(self, store: LightningStore) -> None:
        a = await store.enqueue_rollout("a")
        b = await store.enqueue_rollout("b")
        cancelled = await store.update_rollout(a.rollout_id, status="cancelled")
        assert cancelled.status is RolloutStatus.CANCELLED and cancelled.end_time is not None
        got = await store.dequeue_rollout()
        assert got is not None and got.rollout_id == b.rollout_id
        assert await store.dequeue_rollout() is None

    async def test_requeue_by_update_rollout_makes_it_dequeuable_again(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        await store.update_attempt(ar.rollout_id, ar.attempt_id, status="failed")
        assert (await store.get_rollout_by_id(ar.rollout_id)).status is RolloutStatus.FAILED
        requeued = await store.update_rollout(ar.rollout_id, status="requeuing")
        assert requeued.end_time is None
        got = await store.dequeue_rollout()
        assert got is not None and got.rollout_id == ar.rollout_id and got.attempt.sequence_id == 2

    # --- update_rollout / query_rollouts ---------------------------------------------

    async def test_update_rollout_changes_only_given_fields(self, store: LightningStore) -> None:
        r = await store.enqueue_rollout("in", mode="train", resources_id="rs-1", metadata={"a": 1})
        u = await store.update_rollout(r.rollout_id, resources_id=None, metadata={"b": 2})
        assert u.resources_id is None and u.metadata == {"b": 2}
        assert u.mode == "train" and u.input == "in" and u.status is RolloutStatus.QUEUING
        u2 = await store.update_rollout(r.rollout_id, mode=UNSET, input="new", config=_retry(3, "timeout"))
        assert u2.input == "new" and u2.mode == "train" and u2.config.max_attempts == 3
        assert await store.get_rollout_by_id(r.rollout_id) == u2

    async def test_update_rollout_terminal_status_sets_end_time(self, store: LightningStore) -> None:
        r = await store.enqueue_rollout("x")
        for status in ("succeeded", "failed", "cancelled"):
            u = await store.update_rollout(r.rollout_id, status=status)
            assert u.status == status and u.end_time is not None and u.end_time >= u.start_time
            await store.update_rollout(r.rollout_id, status="queuing")
        assert (await store.get_rollout_by_id(r.rollout_id)).end_time is None

    async def test_update_rollout_rejects_bad_values(self, store: LightningStore) -> None:
        r = await store.enqueue_rollout("x")
        with pytest.raises(ValueError, match="'finished'"):
            await store.update_rollout(r.rollout_id, status="finished")
        with pytest.raises(ValueError, match="'nightly'"):
            await store.update_rollout(r.rollout_id, mode="nightly")  # type: ignore[arg-type]
        assert (await store.get_rollout_by_id(r.rollout_id)).status is RolloutStatus.QUEUING
        with pytest.raises(ValueError, match="'weekly'"):
            await store.enqueue_rollout("y", mode="weekly")  # type: ignore[arg-type]
        assert (await store.query_rollouts()).total == 1

    async def test_unknown_rollout_ids_raise_naming_the_id(self, store: LightningStore) -> None:
        calls: list[Callable[[], Awaitable[Any]]] = [
            lambda: store.get_rollout_by_id("ro-missing"),
            lambda: store.update_rollout("ro-missing", status="failed"),
            lambda: store.start_attempt("ro-missing"),
            lambda: store.query_attempts("ro-missing"),
            lambda: store.get_latest_attempt("ro-missing"),
            lambda: store.update_attempt("ro-missing", "latest", status="failed"),
            lambda: store.query_spans("ro-missing"),
            lambda: store.get_next_span_sequence_id("ro-missing", "at-x"),
            lambda: store.add_span(make_span("ro-missing", "at-x", 0)),
            lambda: store.wait_for_rollouts(["ro-missing"], timeout=0),
        ]
        for call in calls:
            with pytest.raises(RolloutNotFoundError, match="ro-missing") as info:
                await call()
            assert isinstance(info.value, NotFoundError) and isinstance(info.value, KeyError)

    async def test_query_rollouts_filters(self, store: LightningStore) -> None:
        rs = await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(4)])
        ids = [r.rollout_id for r in rs]
        await store.update_rollout(ids[1], status="succeeded")
        await store.update_rollout(ids[2], status="failed")
        everything = await store.query_rollouts()
        assert [r.rollout_id for r in everything] == ids and everything.total == 4
        done = await store.query_rollouts(status_in=["succeeded", RolloutStatus.FAILED])
        assert sorted(r.rollout_id for r in done) == sorted(ids[1:3])
        picked = await store.query_rollouts(rollout_id_in=[ids[3], ids[0], "ro-nope"])
        assert [r.rollout_id for r in picked] == [ids[0], ids[3]]
        both = await store.query_rollouts(status_in=["queuing"], rollout_id_in=[ids[0], ids[1]])
        assert [r.rollout_id for r in both] == [ids[0]]
        either = await store.query_rollouts(status_in=["failed"], rollout_id_in=[ids[0]], filter_logic="or")
        assert sorted(r.rollout_id for r in either) == sorted([ids[0], ids[2]])
        part = await store.query_rollouts(rollout_id_contains=ids[3][-6:])
        assert [r.rollout_id for r in part] == [ids[3]]
        with pytest.raises(ValueError, match="'done'"):
            await store.query_rollouts(status_in=["done"])

    async def test_query_rollouts_sorting_and_paging(self, store: LightningStore) -> None:
        rs = await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(6)])
        by_id = sorted(r.rollout_id for r in rs)
        desc = await store.query_rollouts(sort_by="rollout_id", sort_order="desc")
        assert [r.rollout_id for r in desc] == by_id[::-1]
        page = await store.query_rollouts(sort_by="rollout_id", limit=2, offset=3)
        assert [r.rollout_id for r in page] == by_id[3:5]
        assert page.total == 6 and page.limit == 2 and page.offset == 3
        tail = await store.query_rollouts(sort_by="rollout_id", limit=-1, offset=4)
        assert [r.rollout_id for r in tail] == by_id[4:]
        assert len(await store.query_rollouts(offset=10)) == 0
        await store.update_rollout(rs[4].rollout_id, status="succeeded")
        await store.update_rollout(rs[1].rollout_id, status="succeeded")
        for order in ("asc", "desc"):
            ended = await store.query_rollouts(sort_by="end_time", sort_order=order)
            ends = [r.end_time for r in ended]
            assert ends[2:] == [None] * 4, "rollouts without an end time sort last"
            assert ends[:2] == sorted(ends[:2], reverse=order == "desc")  # type: ignore[type-var]
        with pytest.raises(ValueError, match="-5"):
            await store.query_rollouts(limit=-5)
        with pytest.raises(ValueError, match="-1"):
            await store.query_rollouts(offset=-1)
        with pytest.raises(ValueError, match="'sideways'"):
            await store.query_rollouts(sort_order="sideways")  # type: ignore[arg-type]

    async def test_query_rollouts_by_id_list_and_substring(self, store: LightningStore) -> None:
        rs = await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(3)])
        ids = [r.rollout_id for r in rs]
        await store.update_rollout(ids[2], status="cancelled")
        got = await store.query_rollouts(
            rollout_id_in=[ids[2], ids[1]], status_in=["queuing"], sort_by="rollout_id", sort_order="desc"
        )
        assert [r.rollout_id for r in got] == [ids[1]]
        none = await store.query_rollouts(rollout_id_in=[], rollout_id_contains=ids[0], filter_logic="or")
        assert [r.rollout_id for r in none] == [ids[0]]
        with pytest.raises((TypeError, ValueError), match="rollout_id_in"):  # a list, not one id
            await store.query_rollouts(rollout_id_in=ids[0])
        with pytest.raises(ValueError, match="'xor'"):
            await store.query_rollouts(filter_logic="xor")  # type: ignore[arg-type]

    async def test_paginated_result_is_a_sequence(self, store: LightningStore) -> None:
        rs = await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(4)])
        page = await store.query_rollouts(limit=3)
        assert isinstance(page, collections.abc.Sequence)
        assert (
            page[0] == rs[0]
            and page[-1] == rs[2]
            and [r.rollout_id for r in page[1:]] == [r.rollout_id for r in rs[1:3]]
        )
        assert rs[1] in page and rs[3] not in page and page.index(rs[2]) == 2 and page.count(rs[0]) == 1
        assert [r.rollout_id for r in reversed(page)] == [r.rollout_id for r in rs[2::-1]]
        assert page.total == 4 and len(page) == 3

    # --- attempts and transitions ----------------------------------------------------

    async def test_attempted_rollout_reads_like_its_rollout(self, store: LightningStore) -> None:
        config = RolloutConfig(max_attempts=2, retry_condition=["failed"])
        await store.enqueue_rollout({"q": 1}, mode="train", config=config, metadata={"k": "v"})
        dequeued = await store.dequeue_rollout(worker_id="w")
        started = await store.start_rollout("direct", mode="val")
        assert dequeued is not None
        for ar in (dequeued, started, await store.start_attempt(started.rollout_id)):
            for field in attrs.fields(Rollout):
                assert getattr(ar, field.name) == getattr(ar.rollout, field.name), field.name
            assert ar.status is RolloutStatus.PREPARING and not ar.is_terminal
            assert ar.attempt.rollout_id == ar.rollout_id and ar.attempt_id == ar.attempt.attempt_id
        assert dequeued.config == config and dequeued.metadata == {"k": "v"} and dequeued.mode == "train"
        assert dequeued.input == {"q": 1} and dequeued.end_time is None and dequeued.start_time > 0

    async def test_attempt_success_finishes_the_rollout(self, store: LightningStore) -> None:
        await store.enqueue_rollout("x")
        ar = await store.dequeue_rollout()
        assert ar is not None
        running = await store.update_attempt(ar.rollout_id, ar.attempt_id, status="running")
        assert running.status is AttemptStatus.RUNNING and running.end_time is None
        assert (await store.get_rollout_by_id(ar.rollout_id)).status is RolloutStatus.RUNNING
        done = await store.update_attempt(ar.rollout_id, "latest", status=AttemptStatus.SUCCEEDED)
        assert done.status is AttemptStatus.SUCCEEDED and done.end_time is not None
        r = await store.get_rollout_by_id(ar.rollout_id)
        assert r.status is RolloutStatus.SUCCEEDED and r.end_time is not None

    async def test_failure_without_retry_fails_the_rollout(self, store: LightningStore) -> None:
        await store.enqueue_rollout("x", config=_retry(3, "timeout"))  # failed is not retried
        ar = await store.dequeue_rollout()
        assert ar is not None
        await store.update_attempt(ar.rollout_id, ar.attempt_id, status="failed")
        r = await store.get_rollout_by_id(ar.rollout_id)
        assert r.status is RolloutStatus.FAILED and r.end_time is not None
        assert await store.dequeue_rollout() is None

    async def test_retries_until_max_attempts(self, store: LightningStore) -> None:
        r = await store.enqueue_rollout("x", config=_retry(3, "failed"))
        for seq in (1, 2, 3):
            ar = await store.dequeue_rollout(worker_id=f"w{seq}")
            assert ar is not None and ar.rollout_id == r.rollout_id and ar.attempt.sequence_id == seq
            await store.update_attempt(ar.rollout_id, ar.attempt_id, status="failed")
            expected = RolloutStatus.REQUEUING if seq < 3 else RolloutStatus.FAILED
            assert (await store.get_rollout_by_id(r.rollout_id)).status is expected
        assert await store.dequeue_rollout() is None
        attempts = await store.query_attempts(r.rollout_id, sort_order="desc")
        assert [a.sequence_id for a in attempts] == [3, 2, 1]
        assert all(a.status is AttemptStatus.FAILED and a.end_time is not None for a in attempts)

    async def test_requeued_rollout_goes_to_the_back_of_the_queue(self, store: LightningStore) -> None:
        a = await store.enqueue_rollout("a", config=_retry(2, "failed"))
        b = await store.enqueue_rollout("b")
        first = await store.dequeue_rollout()
        assert first is not None and first.rollout_id == a.rollout_id
        await store.update_attempt(a.rollout_id, first.attempt_id, status="failed")
        order = [(await store.dequeue_rollout()) for _ in range(2)]
        assert [x.rollout_id for x in order if x] == [b.rollout_id, a.rollout_id]

    async def test_older_attempt_never_changes_the_rollout(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x", config=_retry(5, "failed"))
        await store.start_attempt(ar.rollout_id)
        await store.update_attempt(ar.rollout_id, ar.attempt_id, status="failed")
        assert (await store.get_rollout_by_id(ar.rollout_id)).status is RolloutStatus.PREPARING
        await store.update_attempt(ar.rollout_id, ar.attempt_id, status="succeeded")
        assert (await store.get_rollout_by_id(ar.rollout_id)).status is RolloutStatus.PREPARING

    async def test_terminal_rollout_is_changed_only_by_update_rollout(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        await store.update_rollout(ar.rollout_id, status="cancelled")
        await store.update_attempt(ar.rollout_id, ar.attempt_id, status="succeeded")
        assert (await store.get_rollout_by_id(ar.rollout_id)).status is RolloutStatus.CANCELLED

    async def test_update_attempt_other_fields(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x", worker_id="w1")
        u = await store.update_attempt(ar.rollout_id, ar.attempt_id, worker_id="w2", metadata={"m": 1})
        assert (u.worker_id, u.metadata, u.status) == ("w2", {"m": 1}, "preparing")
        u2 = await store.update_attempt(ar.rollout_id, "latest", worker_id=None)
        assert u2.worker_id is None and u2.metadata == {"m": 1}
        assert await store.get_latest_attempt(ar.rollout_id) == u2

    async def test_attempt_records_its_final_reward(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        assert ar.attempt.reward is None
        rewarded = await store.update_attempt(ar.rollout_id, ar.attempt_id, status="succeeded", reward=0.75)
        assert rewarded.reward == 0.75 and rewarded.status is AttemptStatus.SUCCEEDED
        assert (await store.get_latest_attempt(ar.rollout_id)) == rewarded
        assert [a.reward for a in await store.query_attempts(ar.rollout_id)] == [0.75]
        kept = await store.update_attempt(ar.rollout_id, ar.attempt_id, metadata={"m": 1})
        assert kept.reward == 0.75  # not given: unchanged
        assert (await store.update_attempt(ar.rollout_id, "latest", reward=-2)).reward == -2.0
        assert (await store.update_attempt(ar.rollout_id, "latest", reward=None)).reward is None
        for bad in (float("nan"), float("inf"), True, "1.0"):
            with pytest.raises(ValueError, match="reward must be a finite number"):
                await store.update_attempt(ar.rollout_id, ar.attempt_id, reward=bad)  # type: ignore[arg-type]
        assert (await store.get_latest_attempt(ar.rollout_id)) == await store.update_attempt(
            ar.rollout_id, "latest", metadata={"m": 1}
        )

    async def test_attempt_carries_the_resources_it_runs_with(self, store: LightningStore) -> None:
        none_yet = await store.start_rollout("before any resources")
        assert none_yet.attempt.resources_id is None
        first = await store.add_resources({"prompt": PromptTemplate("Hi {name}")})
        queued = await store.enqueue_rollout("x")  # records the latest now
        second = await store.add_resources({"prompt": PromptTemplate("Bye {name}")})
        dequeued = await store.dequeue_rollout()
        assert dequeued is not None and dequeued.attempt.resources_id == first.resources_id
        started = await store.start_rollout("y")
        assert started.attempt.resources_id == second.resources_id
        pinned = await store.start_rollout("z", resources_id=first.resources_id)
        assert pinned.attempt.resources_id == first.resources_id
        # a later attempt runs with what its rollout names then
        await store.update_rollout(queued.rollout_id, resources_id=second.resources_id)
        retried = await store.start_attempt(queued.rollout_id)
        assert retried.attempt.resources_id == second.resources_id
        attempts = await store.query_attempts(queued.rollout_id)
        assert [a.resources_id for a in attempts] == [first.resources_id, second.resources_id]

    async def test_explicit_heartbeat_is_a_heartbeat(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        u = await store.update_attempt(ar.rollout_id, ar.attempt_id, last_heartbeat_time=123.0)
        assert (u.last_heartbeat_time, u.status, u.end_time) == (123.0, AttemptStatus.RUNNING, None)
        assert (await store.get_rollout_by_id(ar.rollout_id)).status is RolloutStatus.RUNNING
        # a status given with it wins
        done = await store.update_attempt(
            ar.rollout_id, ar.attempt_id, status="succeeded", last_heartbeat_time=124.0
        )
        assert done.status is AttemptStatus.SUCCEEDED and done.last_heartbeat_time == 124.0
        # and a finished attempt stays finished
        late = await store.update_attempt(ar.rollout_id, ar.attempt_id, last_heartbeat_time=125.0)
        assert late.status is AttemptStatus.SUCCEEDED and late.end_time == done.end_time
        assert (await store.get_rollout_by_id(ar.rollout_id)).status is RolloutStatus.SUCCEEDED

    async def test_update_attempt_rejects_bad_status_and_unknown_ids(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        other = await store.start_rollout("y")
        with pytest.raises(ValueError, match="update_rollout"):
            await store.update_attempt(ar.rollout_id, ar.attempt_id, status="cancelled")
        with pytest.raises(ValueError, match="'exploded'"):
            await store.update_attempt(ar.rollout_id, ar.attempt_id, status="exploded")
        with pytest.raises(AttemptNotFoundError, match="at-missing"):
            await store.update_attempt(ar.rollout_id, "at-missing", status="failed")
        with pytest.raises(AttemptNotFoundError, match=other.attempt_id):
            await store.update_attempt(ar.rollout_id, other.attempt_id, status="failed")
        queued = await store.enqueue_rollout("z")
        with pytest.raises(AttemptNotFoundError, match=queued.rollout_id):
            await store.update_attempt(queued.rollout_id, "latest", status="failed")
        assert (await store.get_latest_attempt(ar.rollout_id)) == ar.attempt

    async def test_attempt_queries(self, store: LightningStore) -> None:
        r = await store.enqueue_rollout("x")
        assert await store.get_latest_attempt(r.rollout_id) is None
        assert (await store.query_attempts(r.rollout_id)).total == 0
        for _ in range(4):
            await store.start_attempt(r.rollout_id)
        page = await store.query_attempts(
            r.rollout_id, sort_by="start_time", sort_order="desc", limit=2, offset=1
        )
        assert [a.sequence_id for a in page] == [3, 2] and page.total == 4
        latest = await store.get_latest_attempt(r.rollout_id)
        assert latest is not None and latest.sequence_id == 4

    # --- spans -----------------------------------------------------------------------

    async def test_span_is_a_heartbeat(self, store: LightningStore) -> None:
        await store.enqueue_rollout("x")
        ar = await store.dequeue_rollout()
        assert ar is not None
        stored = await store.add_span(make_span(ar.rollout_id, ar.attempt_id, 0))
        assert stored is not None and stored.sequence_id >= 1
        attempt = await store.get_latest_attempt(ar.rollout_id)
        assert attempt is not None and attempt.status is AttemptStatus.RUNNING
        assert attempt.last_heartbeat_time is not None
        assert (await store.get_rollout_by_id(ar.rollout_id)).status is RolloutStatus.RUNNING

    async def test_spans_round_trip(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        span = make_span(ar.rollout_id, ar.attempt_id, 7, name="llm", parent_id="00000000000000aa", tokens=12)
        await store.add_span(span)
        got = await store.query_spans(ar.rollout_id)
        assert len(got) == 1 and got.total == 1
        s = got[0]
        assert (s.span_id, s.name, s.parent_id, s.attributes) == (
            span.span_id,
            "llm",
            "00000000000000aa",
            {"tokens": 12},
        )
        assert (s.rollout_id, s.attempt_id, s.trace_id) == (ar.rollout_id, ar.attempt_id, span.trace_id)
        assert s.start_time == span.start_time and s.end_time == span.end_time

    async def test_callers_spans_are_left_unchanged(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        span = make_span(ar.rollout_id, ar.attempt_id, 0)
        original = attrs.evolve(span)
        stored = await store.add_span(span)
        assert stored is not None and stored.sequence_id >= 1
        assert span == original and span.sequence_id == 0, "add_span changed the caller's span"
        batch = [make_span(ar.rollout_id, ar.attempt_id, i) for i in range(1, 4)]
        originals = [attrs.evolve(s) for s in batch]
        added = await store.add_many_spans(batch)
        assert [s.sequence_id > 0 for s in added] == [True] * 3
        assert batch == originals, "add_many_spans changed the caller's spans"
        # a refused batch leaves them unchanged too
        refused = [make_span(ar.rollout_id, ar.attempt_id, 9), make_span(ar.rollout_id, "at-ghost", 10)]
        refused_originals = [attrs.evolve(s) for s in refused]
        with pytest.raises(AttemptNotFoundError):
            await store.add_many_spans(refused)
        assert refused == refused_originals
        assert (await store.query_spans(ar.rollout_id)).total == 4

    async def test_duplicate_span_is_stored_once(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        assert await store.add_span(make_span(ar.rollout_id, ar.attempt_id, 0)) is not None
        assert await store.add_span(make_span(ar.rollout_id, ar.attempt_id, 0)) is None
        added = await store.add_many_spans([make_span(ar.rollout_id, ar.attempt_id, i) for i in range(3)])
        assert sorted(s.span_id for s in added) == [f"{i + 1:016x}" for i in (1, 2)]
        assert (await store.query_spans(ar.rollout_id)).total == 3
        # the same span id under another attempt is a different span
        second = await store.start_attempt(ar.rollout_id)
        assert await store.add_span(make_span(ar.rollout_id, second.attempt_id, 0)) is not None
        assert (await store.query_spans(ar.rollout_id)).total == 4

    async def test_sequence_ids_strictly_increase_and_are_never_reused(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        rid, aid = ar.rollout_id, ar.attempt_id
        seqs = [await store.get_next_span_sequence_id(rid, aid) for _ in range(3)]
        assert seqs == sorted(set(seqs)) and seqs[0] >= 1
        s1 = await store.add_span(make_span(rid, aid, 0))  # 0: allocated by the store
        assert s1 is not None and s1.sequence_id > seqs[-1]
        s2 = await store.add_span(make_span(rid, aid, 1, sequence_id=s1.sequence_id + 10))
        assert s2 is not None and s2.sequence_id == s1.sequence_id + 10
        nxt = await store.get_next_span_sequence_id(rid, aid)
        assert nxt > s2.sequence_id
        batch = await store.add_many_spans([make_span(rid, aid, i) for i in range(2, 6)])
        bseqs = [s.sequence_id for s in batch]
        assert bseqs == sorted(set(bseqs)) and bseqs[0] > nxt
        other = await store.start_rollout("y")
        assert await store.get_next_span_sequence_id(other.rollout_id, other.attempt_id) >= 1
        with pytest.raises(AttemptNotFoundError, match="at-nope"):
            await store.get_next_span_sequence_id(rid, "at-nope")

    async def test_query_spans_filters_sorting_paging(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        rid = ar.rollout_id
        t2 = "0" * 31 + "2"
        await store.add_many_spans(
            [
                make_span(rid, ar.attempt_id, 0, name="root", start_time=50.0),
                make_span(rid, ar.attempt_id, 1, name="llm", parent_id=f"{1:016x}", start_time=10.0),
                make_span(
                    rid, ar.attempt_id, 2, name="llm", parent_id=f"{1:016x}", trace_id=t2, start_time=30.0
                ),
            ]
        )
        second = await store.start_attempt(rid)
        await store.add_span(make_span(rid, second.attempt_id, 3, name="llm", start_time=20.0))
        all_spans = await store.query_spans(rid)
        assert [s.span_id[-1] for s in all_spans] == ["1", "2", "3", "4"]
        assert [s.sequence_id for s in all_spans] == sorted(s.sequence_id for s in all_spans)
        assert [s.span_id[-1] for s in await store.query_spans(rid, ar.attempt_id)] == ["1", "2", "3"]
        assert [s.span_id[-1] for s in await store.query_spans(rid, "latest")] == ["4"]
        assert [s.span_id[-1] for s in await store.query_spans(rid, name="llm")] == ["2", "3", "4"]
        assert [s.span_id[-1] for s in await store.query_spans(rid, trace_id=t2)] == ["3"]
        assert [s.span_id[-1] for s in await store.query_spans(rid, parent_id=f"{1:016x}")] == ["2", "3"]
        by_start = await store.query_spans(rid, sort_by="start_time", sort_order="desc")
        assert [s.start_time for s in by_start] == [50.0, 30.0, 20.0, 10.0]
        page = await store.query_spans(rid, sort_by="sequence_id", sort_order="desc", limit=2, offset=1)
        assert [s.span_id[-1] for s in page] == ["3", "2"] and page.total == 4
        with pytest.raises(AttemptNotFoundError, match="at-zzz"):
            await store.query_spans(rid, "at-zzz")

    async def test_query_spans_earlier_filters(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        rid, aid = ar.rollout_id, ar.attempt_id
        t2 = "ab" * 16
        await store.add_many_spans(
            [
                make_span(rid, aid, 0, name="agent.run"),
                make_span(rid, aid, 1, name="openai.chat", parent_id=f"{1:016x}"),
                make_span(rid, aid, 2, name="tool.search", parent_id=f"{2:016x}", trace_id=t2),
                make_span(rid, aid, 0xFF, name="openai.chat", parent_id=f"{1:016x}", trace_id=t2),
            ]
        )

        async def names(**kw: Any) -> list[str]:
            return [s.span_id for s in await store.query_spans(rid, **kw)]

        assert await names(span_id=f"{3:016x}") == [f"{3:016x}"]
        assert await names(span_id_contains="100") == [f"{0x100:016x}"]
        assert await names(name_contains="openai") == [f"{2:016x}", f"{0x100:016x}"]
        assert await names(trace_id_contains="abab") == [f"{3:016x}", f"{0x100:016x}"]
        assert await names(parent_id_contains="0002") == [f"{3:016x}"]
        assert await names(name="openai.chat", trace_id=t2) == [f"{0x100:016x}"]
        either = await names(name="agent.run", parent_id=f"{2:016x}", filter_logic="or")
        assert either == [f"{1:016x}", f"{3:016x}"]
        assert await names(name_contains="nothing", span_id_contains="zz") == []
        by_span = await store.query_spans(rid, "latest", sort_by="span_id", sort_order="desc", limit=2)
        assert [s.span_id for s in by_span] == [f"{0x100:016x}", f"{3:016x}"] and by_span.total == 4
        by_trace = await store.query_spans(rid, sort_by="trace_id")
        assert [s.trace_id for s in by_trace] == ["0" * 31 + "1"] * 2 + [t2] * 2
        by_name = await store.query_spans(rid, sort_by="name", sort_order="desc")
        assert [s.name for s in by_name] == ["tool.search", "openai.chat", "openai.chat", "agent.run"]
        by_seq = await store.query_spans(rid, sort_by="sequence_id", sort_order="desc", offset=3)
        assert [s.span_id for s in by_seq] == [f"{1:016x}"]
        with pytest.raises(ValueError, match="'attributes'"):
            await store.query_spans(rid, sort_by="attributes")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="'nand'"):
            await store.query_spans(rid, name="x", filter_logic="nand")  # type: ignore[arg-type]

    async def test_get_many_span_sequence_ids(self, store: LightningStore) -> None:
        a = await store.start_rollout("a")
        b = await store.start_rollout("b")
        seqs = await store.get_many_span_sequence_ids(
            [(a.rollout_id, a.attempt_id), (b.rollout_id, b.attempt_id), (a.rollout_id, a.attempt_id)]
        )
        assert seqs[0] < seqs[2] and len(seqs) == 3
        assert await store.get_next_span_sequence_id(a.rollout_id, a.attempt_id) > seqs[2]
        assert await store.get_many_span_sequence_ids([]) == []
        stored = await store.add_span(make_span(a.rollout_id, a.attempt_id, 0))
        assert stored is not None and stored.sequence_id > seqs[2], "allocated ids are never reused"
        with pytest.raises(AttemptNotFoundError, match="at-nope"):
            await store.get_many_span_sequence_ids([(b.rollout_id, b.attempt_id), (a.rollout_id, "at-nope")])
        with pytest.raises(RolloutNotFoundError, match="ro-nope"):
            await store.get_many_span_sequence_ids([("ro-nope", a.attempt_id)])

    async def test_query_spans_latest_without_attempts_is_empty(self, store: LightningStore) -> None:
        r = await store.enqueue_rollout("x")
        assert (await store.query_spans(r.rollout_id, "latest")).total == 0
        assert (await store.query_spans(r.rollout_id)).total == 0

    async def test_add_span_to_unknown_attempt_is_rejected(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        with pytest.raises(AttemptNotFoundError, match="at-ghost"):
            await store.add_span(make_span(ar.rollout_id, "at-ghost", 0))
        with pytest.raises(AttemptNotFoundError, match="at-ghost"):
            await store.add_many_spans([make_span(ar.rollout_id, "at-ghost", 1)])
        assert (await store.query_spans(ar.rollout_id)).total == 0

    async def test_add_otel_span_converts_sdk_spans(self, store: LightningStore) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.trace import StatusCode

        tracer = TracerProvider().get_tracer("conformance")
        with (
            tracer.start_as_current_span("agent") as parent,
            tracer.start_as_current_span("llm.call", attributes={"model": "m1", "tokens": 3}) as child,
        ):
            child.add_event("chunk", {"n": 1})
            child.set_status(StatusCode.ERROR, "boom")
        ar = await store.start_rollout("x")
        stored = [
            await store.add_otel_span(ar.rollout_id, ar.attempt_id, sp)  # type: ignore[arg-type]
            for sp in (child, parent)
        ]
        assert all(s is not None for s in stored)
        spans = {s.name: s for s in await store.query_spans(ar.rollout_id)}
        llm, agent = spans["llm.call"], spans["agent"]
        assert llm.parent_id == agent.span_id == f"{parent.get_span_context().span_id:016x}"
        assert llm.trace_id == f"{child.get_span_context().trace_id:032x}"
        assert llm.attributes == {"model": "m1", "tokens": 3}
        assert [e.name for e in llm.events] == ["chunk"] and llm.status.status_code == "ERROR"
        assert llm.sequence_id < agent.sequence_id
        again = await store.add_otel_span(ar.rollout_id, ar.attempt_id, child)  # type: ignore[arg-type]
        assert again is None
        attempt = await store.get_latest_attempt(ar.rollout_id)
        assert attempt is not None and attempt.status is AttemptStatus.RUNNING

    # --- resources -------------------------------------------------------------------

    async def test_resources_versions_and_latest(self, store: LightningStore) -> None:
        assert await store.get_latest_resources() is None
        first = await store.add_resources({"prompt": PromptTemplate("Hi {name}")})
        assert first.version == 1 and first.resources_id
        assert await store.get_latest_resources() == first
        second = await store.add_resources({"llm": LLM(endpoint="http://127.0.0.1:1/v1", model="m")})
        assert second.resources_id != first.resources_id
        assert (await store.get_latest_resources()) == second
        updated = await store.update_resources(first.resources_id, {"prompt": PromptTemplate("Bye {name}")})
        assert updated.version == 2 and updated.create_time == first.create_time
        latest = await store.get_latest_resources()
        assert latest is not None and latest.resources_id == first.resources_id and latest.version == 2
        fresh = await store.update_resources("rs-custom", {"prompt": PromptTemplate("x")})
        assert fresh.version == 1
        assert await store.get_resources_by_id("rs-custom") == fresh
        got = await store.get_resources_by_id(first.resources_id)
        assert (
            isinstance(got.resources["prompt"], PromptTemplate)
            and got.resources["prompt"].template == "Bye {name}"
        )
        with pytest.raises(ResourcesNotFoundError, match="rs-missing"):
            await store.get_resources_by_id("rs-missing")

    async def test_resources_snapshot_is_the_stores_own(self, store: LightningStore) -> None:
        mine: dict[str, Any] = {"prompt": PromptTemplate("v1")}
        added = await store.add_resources(mine)
        updated = await store.update_resources("rs-mine", mine)
        mine["extra"] = PromptTemplate("later")
        del mine["prompt"]
        for got in (
            await store.get_resources_by_id(added.resources_id),
            await store.get_resources_by_id("rs-mine"),
            added,
            updated,
        ):
            assert list(got.resources) == ["prompt"], "a later change to the caller's dict leaked in"

    async def test_query_resources(self, store: LightningStore) -> None:
        ids = [(await store.add_resources({"p": PromptTemplate(str(i))})).resources_id for i in range(3)]
        await store.update_resources(ids[0], {"p": PromptTemplate("again")})
        by_update = await store.query_resources()
        assert [u.resources_id for u in by_update] == [ids[1], ids[2], ids[0]]
        by_id = await store.query_resources(sort_by="resources_id", sort_order="desc", limit=2)
        assert [u.resources_id for u in by_id] == sorted(ids, reverse=True)[:2] and by_id.total == 3

    async def test_query_resources_by_id_and_substring(self, store: LightningStore) -> None:
        ids = [(await store.add_resources({"p": PromptTemplate(str(i))})).resources_id for i in range(3)]
        named = await store.update_resources("rs-named-one", {"p": PromptTemplate("n")})
        one = await store.query_resources(resources_id=ids[1])
        assert [u.resources_id for u in one] == [ids[1]] and one.total == 1
        assert (await store.query_resources(resources_id="rs-missing")).total == 0
        part = await store.query_resources(resources_id_contains="named")
        assert [u.resources_id for u in part] == [named.resources_id]
        both = await store.query_resources(resources_id=ids[2], resources_id_contains=ids[2][-4:])
        assert [u.resources_id for u in both] == [ids[2]]
        everything = await store.query_resources(resources_id_contains="rs-", sort_by="create_time")
        assert [u.resources_id for u in everything] == [*ids, named.resources_id]

    async def test_enqueue_records_the_latest_resources(self, store: LightningStore) -> None:
        first = await store.add_resources({"p": PromptTemplate("v1")})
        queued = await store.enqueue_rollout("x")
        batch = await store.enqueue_many_rollouts(
            [EnqueueRequest(input=1), EnqueueRequest(input=2, resources_id="rs-own")]
        )
        assert queued.resources_id == first.resources_id
        assert [r.resources_id for r in batch] == [first.resources_id, "rs-own"]
        assert (await store.get_rollout_by_id(queued.rollout_id)).resources_id == first.resources_id
        await store.add_resources({"p": PromptTemplate("v2")})
        got = await store.dequeue_many_rollouts(3)
        assert [g.resources_id for g in got] == [first.resources_id, first.resources_id, "rs-own"]

    async def test_dequeue_assigns_latest_resources_when_none_given(self, store: LightningStore) -> None:
        r = await store.enqueue_rollout("x")
        pinned = await store.enqueue_rollout("y", resources_id="rs-pinned")
        res = await store.add_resources({"p": PromptTemplate("t")})
        got = await store.dequeue_many_rollouts(2)
        assert [g.resources_id for g in got] == [res.resources_id, "rs-pinned"]
        assert [g.rollout_id for g in got] == [r.rollout_id, pinned.rollout_id]

    # --- workers ---------------------------------------------------------------------

    async def test_workers_follow_dequeue_and_attempt_end(self, store: LightningStore) -> None:
        await store.enqueue_rollout("x")
        ar = await store.dequeue_rollout(worker_id="w1")
        assert ar is not None
        w = await store.get_worker_by_id("w1")
        assert w.status is WorkerStatus.BUSY and w.current_rollout_id == ar.rollout_id
        assert w.current_attempt_id == ar.attempt_id and w.last_dequeue_time is not None
        await store.update_attempt(ar.rollout_id, ar.attempt_id, status="succeeded")
        w = await store.get_worker_by_id("w1")
        assert w.status is WorkerStatus.IDLE and w.current_rollout_id is None and w.last_idle_time is not None

    async def test_update_and_query_workers(self, store: LightningStore) -> None:
        a = await store.update_worker("wa", status="idle", heartbeat_stats={"cpu": 0.5})
        assert a.status is WorkerStatus.IDLE and a.heartbeat_stats == {"cpu": 0.5}
        assert a.last_heartbeat_time is not None
        await store.update_worker("wb", status=WorkerStatus.BUSY)
        again = await store.update_worker("wa")
        assert again.status is WorkerStatus.IDLE and again.heartbeat_stats == {"cpu": 0.5}
        assert [w.worker_id for w in await store.query_workers()] == ["wa", "wb"]
        busy = await store.query_workers(status_in=["busy"])
        assert [w.worker_id for w in busy] == ["wb"] and busy.total == 1
        assert [w.worker_id for w in await store.query_workers(limit=1, offset=1)] == ["wb"]
        with pytest.raises(WorkerNotFoundError, match="w-missing"):
            await store.get_worker_by_id("w-missing")
        with pytest.raises(ValueError, match="'asleep'"):
            await store.update_worker("wa", status="asleep")

    async def test_worker_handed_an_attempt_is_released_when_it_ends(self, store: LightningStore) -> None:
        await store.enqueue_many_rollouts([EnqueueRequest(input="x"), EnqueueRequest(input="y")])
        ar = await store.dequeue_rollout(worker_id="W")
        assert ar is not None
        await store.update_attempt(ar.rollout_id, ar.attempt_id, worker_id="X")
        w, x = await store.get_worker_by_id("W"), await store.get_worker_by_id("X")
        assert w.status is WorkerStatus.IDLE and w.current_attempt_id is None
        assert x.status is WorkerStatus.BUSY and x.current_attempt_id == ar.attempt_id
        await store.update_attempt(ar.rollout_id, ar.attempt_id, status="succeeded")
        for worker_id in ("W", "X"):
            worker = await store.get_worker_by_id(worker_id)
            assert worker.status is WorkerStatus.IDLE and worker.current_rollout_id is None, worker_id
        # handed over and ended in one call
        other = await store.dequeue_rollout(worker_id="W")
        assert other is not None
        await store.update_attempt(other.rollout_id, "latest", worker_id="Y", status="failed")
        assert (await store.get_worker_by_id("W")).status is WorkerStatus.IDLE
        assert (await store.get_worker_by_id("Y")).status is not WorkerStatus.BUSY

    async def test_query_workers_filters_and_sorting(self, store: LightningStore) -> None:
        await store.update_worker("runner-b", status="busy")
        await store.update_worker("runner-a", status="idle")
        await store.update_worker("helper-c", status="busy")
        assert [w.worker_id for w in await store.query_workers()] == ["runner-b", "runner-a", "helper-c"]
        runners = await store.query_workers(worker_id_contains="runner", sort_by="worker_id")
        assert [w.worker_id for w in runners] == ["runner-a", "runner-b"]
        both = await store.query_workers(status_in=["busy"], worker_id_contains="runner")
        assert [w.worker_id for w in both] == ["runner-b"]
        either = await store.query_workers(status_in=["idle"], worker_id_contains="helper", filter_logic="or")
        assert [w.worker_id for w in either] == ["runner-a", "helper-c"]
        desc = await store.query_workers(sort_by="worker_id", sort_order="desc", limit=2)
        assert [w.worker_id for w in desc] == ["runner-b", "runner-a"] and desc.total == 3
        newest_first = await store.query_workers(sort_order="desc")
        assert [w.worker_id for w in newest_first] == ["helper-c", "runner-a", "runner-b"]
        by_status = await store.query_workers(sort_by="status", offset=1)
        assert [w.status for w in by_status] == [WorkerStatus.BUSY, WorkerStatus.IDLE]
        with pytest.raises(ValueError, match="'cpu'"):
            await store.query_workers(sort_by="cpu")  # type: ignore[arg-type]

    # --- wait_for_rollouts -----------------------------------------------------------

    async def test_wait_returns_finished_rollouts_at_once(self, store: LightningStore) -> None:
        a = await store.enqueue_rollout("a")
        b = await store.enqueue_rollout("b")
        await store.update_rollout(b.rollout_id, status="succeeded")
        with anyio.fail_after(1):
            got = await store.wait_for_rollouts([a.rollout_id, b.rollout_id], timeout=0)
        assert [r.rollout_id for r in got] == [b.rollout_id]
        got = await store.wait_for_rollouts([b.rollout_id])
        assert [r.status for r in got] == [RolloutStatus.SUCCEEDED]

    async def test_wait_wakes_when_rollouts_finish(self, store: LightningStore) -> None:
        rs = await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(3)])
        ids = [r.rollout_id for r in rs]
        results: list[list[str]] = []

        async def waiter() -> None:
            got = await store.wait_for_rollouts(ids, timeout=DEADLINE)
            results.append([r.rollout_id for r in got])

        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as tg:
                tg.start_soon(waiter)
                await anyio.sleep(0)
                for rid in reversed(ids):
                    ar = await store.start_attempt(rid)
                    await store.update_attempt(rid, ar.attempt_id, status="succeeded")
        assert results == [ids]

    async def test_wait_returns_what_is_finished_at_the_timeout(self, store: LightningStore) -> None:
        a = await store.enqueue_rollout("a")
        b = await store.enqueue_rollout("b")
        await store.update_rollout(a.rollout_id, status="failed")
        earlier = anyio.Event()

        async def earlier_deadline() -> None:
            await anyio.sleep(WATCHDOG_INTERVAL)
            earlier.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(earlier_deadline)
            await anyio.sleep(0)  # its deadline is set before the wait starts
            got = await store.wait_for_rollouts([a.rollout_id, b.rollout_id], timeout=5 * WATCHDOG_INTERVAL)
            # ordering, not a duration: a deadline set before the wait's, and shorter, has passed
            assert earlier.is_set(), "wait_for_rollouts returned before its timeout"
        assert [r.rollout_id for r in got] == [a.rollout_id]
        assert (await store.get_rollout_by_id(b.rollout_id)).status is RolloutStatus.QUEUING

    # --- watchdog --------------------------------------------------------------------

    async def test_watchdog_times_out_attempts(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x", config=RolloutConfig(timeout_seconds=0.05))
        with anyio.fail_after(DEADLINE):
            [r] = await store.wait_for_rollouts([ar.rollout_id])
        assert r.status is RolloutStatus.FAILED
        attempt = await store.get_latest_attempt(ar.rollout_id)
        assert (
            attempt is not None and attempt.status is AttemptStatus.TIMEOUT and attempt.end_time is not None
        )

    async def test_timeout_is_retried_per_config(self, store: LightningStore) -> None:
        r = await store.enqueue_rollout("x", config=_retry(2, "timeout", timeout_seconds=0.05))
        first = await store.dequeue_rollout()
        assert first is not None

        async def requeued() -> bool:
            return (await store.get_rollout_by_id(r.rollout_id)).status is RolloutStatus.REQUEUING

        await wait_until(requeued, "the timed-out rollout to be requeued")
        second = await store.dequeue_rollout()
        assert second is not None and second.attempt.sequence_id == 2
        with anyio.fail_after(DEADLINE):
            [done] = await store.wait_for_rollouts([r.rollout_id])
        assert done.status is RolloutStatus.FAILED
        assert [a.status for a in await store.query_attempts(r.rollout_id)] == ["timeout", "timeout"]

    async def test_watchdog_marks_silent_attempts_unresponsive(self, store: LightningStore) -> None:
        r = await store.enqueue_rollout("x", config=_retry(2, "unresponsive", unresponsive_seconds=0.05))
        ar = await store.dequeue_rollout(worker_id="w1")
        assert ar is not None

        async def requeued() -> bool:
            return (await store.get_rollout_by_id(r.rollout_id)).status is RolloutStatus.REQUEUING

        await wait_until(requeued, "the silent attempt to be found unresponsive and the rollout requeued")
        attempt = await store.get_latest_attempt(r.rollout_id)
        assert attempt is not None and attempt.status is AttemptStatus.UNRESPONSIVE
        assert (await store.get_worker_by_id("w1")).status is WorkerStatus.IDLE

    async def test_unresponsive_attempt_recovers_on_a_span(self, store: LightningStore) -> None:
        r = await store.enqueue_rollout("x", config=_retry(2, "unresponsive", unresponsive_seconds=0.05))
        ar = await store.dequeue_rollout()
        assert ar is not None

        async def unresponsive() -> bool:
            a = await store.get_latest_attempt(r.rollout_id)
            return a is not None and a.status is AttemptStatus.UNRESPONSIVE

        await wait_until(unresponsive, "the attempt to become unresponsive")
        # change the config so the watchdog leaves the recovered attempt alone
        await store.update_rollout(r.rollout_id, config=_retry(2, "unresponsive"))
        await store.add_span(make_span(r.rollout_id, ar.attempt_id, 0))
        attempt = await store.get_latest_attempt(r.rollout_id)
        assert attempt is not None and attempt.status is AttemptStatus.RUNNING and attempt.end_time is None
        assert (await store.get_rollout_by_id(r.rollout_id)).status is RolloutStatus.RUNNING
        assert await store.dequeue_rollout() is None, "a recovered rollout leaves the queue"
        await store.update_attempt(r.rollout_id, ar.attempt_id, status="succeeded")
        assert (await store.get_rollout_by_id(r.rollout_id)).status is RolloutStatus.SUCCEEDED

    async def test_unresponsive_attempt_recovers_on_an_explicit_heartbeat(
        self, store: LightningStore
    ) -> None:
        r = await store.enqueue_rollout("x", config=_retry(2, "unresponsive", unresponsive_seconds=0.05))
        ar = await store.dequeue_rollout(worker_id="w1")
        assert ar is not None

        async def unresponsive() -> bool:
            a = await store.get_latest_attempt(r.rollout_id)
            return a is not None and a.status is AttemptStatus.UNRESPONSIVE

        await wait_until(unresponsive, "the attempt to become unresponsive")
        # change the config so the watchdog leaves the recovered attempt alone
        await store.update_rollout(r.rollout_id, config=_retry(2, "unresponsive"))
        beat = await store.update_attempt(r.rollout_id, ar.attempt_id, last_heartbeat_time=time.time())
        assert beat.status is AttemptStatus.RUNNING and beat.end_time is None
        assert await store.get_latest_attempt(r.rollout_id) == beat
        assert (await store.get_rollout_by_id(r.rollout_id)).status is RolloutStatus.RUNNING
        assert await store.dequeue_rollout() is None, "a recovered rollout leaves the queue"
        await store.update_attempt(r.rollout_id, ar.attempt_id, status="succeeded")
        assert (await store.get_rollout_by_id(r.rollout_id)).status is RolloutStatus.SUCCEEDED

    async def test_watchdog_leaves_finished_and_unconfigured_attempts_alone(
        self, store: LightningStore
    ) -> None:
        done = await store.start_rollout("x", config=RolloutConfig(timeout_seconds=0.05))
        await store.update_attempt(done.rollout_id, done.attempt_id, status="succeeded")
        free = await store.start_rollout("y")
        watched = await store.start_rollout("z", config=RolloutConfig(timeout_seconds=0.05))
        with anyio.fail_after(DEADLINE):
            await store.wait_for_rollouts([watched.rollout_id])
        assert (await store.get_rollout_by_id(done.rollout_id)).status is RolloutStatus.SUCCEEDED
        assert (await store.get_rollout_by_id(free.rollout_id)).status is RolloutStatus.PREPARING

    # --- statistics ------------------------------------------------------------------

    async def test_statistics_counts(self, store: LightningStore) -> None:
        await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(3)])
        ar = await store.dequeue_rollout(worker_id="w")
        assert ar is not None
        await store.add_many_spans([make_span(ar.rollout_id, ar.attempt_id, i) for i in range(4)])
        await store.add_resources({"p": PromptTemplate("t")})
        stats = await store.statistics()
        assert stats["rollouts"] == 3 and stats["attempts"] == 1 and stats["spans"] == 4
        assert stats["rollouts_by_status"]["queuing"] == 2 and stats["rollouts_by_status"]["running"] == 1
        assert stats["span_bytes"] > 0 and stats["resources"] == 1 and stats["workers"] == 1
        # the earlier API's keys, beside ours
        assert isinstance(stats["name"], str) and stats["name"]
        assert isinstance(stats["uptime"], float) and stats["uptime"] >= 0
        assert stats["total_rollouts"] == 3 and stats["total_attempts"] == 1 and stats["total_spans"] == 4
        assert stats["total_resources"] == 1 and stats["total_workers"] == 1

    # --- the contract itself ---------------------------------------------------------

    async def test_store_methods_match_the_contract(self, store: LightningStore) -> None:
        """Every store method takes the parameters ``LightningStore`` declares, with its defaults."""
        assert signature_drift(type(store)) == []

    # --- concurrency -----------------------------------------------------------------

    async def test_concurrent_dequeue_never_hands_out_a_rollout_twice(self, store: LightningStore) -> None:
        rollouts = await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(200)])
        taken: list[str] = []

        async def worker(name: str) -> None:
            while (ar := await store.dequeue_rollout(worker_id=name)) is not None:
                taken.append(ar.rollout_id)
                await store.add_span(make_span(ar.rollout_id, ar.attempt_id, 0))
                await anyio.sleep(0)

        with anyio.fail_after(DEADLINE * 2):
            async with anyio.create_task_group() as tg:
                for i in range(16):
                    tg.start_soon(worker, f"w{i}")
        assert sorted(taken) == sorted(r.rollout_id for r in rollouts)
        for rid in taken[:20]:
            assert [a.sequence_id for a in await store.query_attempts(rid)] == [1]

    async def test_concurrent_spans_get_unique_sequence_ids(self, store: LightningStore) -> None:
        ar = await store.start_rollout("x")
        rid, aid = ar.rollout_id, ar.attempt_id

        async def writer(k: int) -> None:
            for j in range(10):
                i = k * 100 + j
                if j % 2:
                    seq = await store.get_next_span_sequence_id(rid, aid)
                    await store.add_span(make_span(rid, aid, i, sequence_id=seq))
                else:
                    await store.add_many_spans([make_span(rid, aid, i), make_span(rid, aid, i + 50)])
                await anyio.sleep(0)

        with anyio.fail_after(DEADLINE * 2):
            async with anyio.create_task_group() as tg:
                for k in range(12):
                    tg.start_soon(writer, k)
        spans = await store.query_spans(rid)
        seqs = [s.sequence_id for s in spans]
        assert spans.total == 12 * 15 and len(set(seqs)) == len(seqs)
        assert len({s.span_id for s in spans}) == len(seqs)


class SpanBudgetConformance(ConformanceSuite):
    """Eviction rules for stores with a span memory budget (``span_budget_bytes=``)."""

    pytestmark = [pytest.mark.anyio]
    spans_per_rollout = 20

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        """Override: as for :class:`StoreConformance`; options include ``span_budget_bytes``."""
        raise NotImplementedError(f"{type(self).__name__} must define the store_factory fixture")

    async def _bytes_per_rollout(self, store_factory: StoreFactory) -> int:
        async with store_factory(watchdog_interval=WATCHDOG_INTERVAL) as probe:
            ar = await probe.start_rollout("probe")
            await self._fill(probe, ar.rollout_id, ar.attempt_id)
            size: int = (await probe.statistics())["span_bytes"]
        assert size > 0
        return size

    async def _fill(self, store: LightningStore, rollout_id: str, attempt_id: str) -> None:
        await store.add_many_spans(
            [make_span(rollout_id, attempt_id, i, text="x" * 40) for i in range(self.spans_per_rollout)]
        )

    async def _finished_rollout(self, store: LightningStore) -> str:
        ar = await store.start_rollout("done")
        await self._fill(store, ar.rollout_id, ar.attempt_id)
        await store.update_attempt(ar.rollout_id, ar.attempt_id, status="succeeded")
        return ar.rollout_id

    async def test_finished_rollouts_are_evicted_oldest_first(self, store_factory: StoreFactory) -> None:
        size = await self._bytes_per_rollout(store_factory)
        async with store_factory(
            watchdog_interval=WATCHDOG_INTERVAL, span_budget_bytes=math.ceil(size * 2.5)
        ) as store:
            ids = [await self._finished_rollout(store) for _ in range(2)]
            for rid in ids:
                assert (await store.query_spans(rid)).total == self.spans_per_rollout
            ids.append(await self._finished_rollout(store))
            with pytest.raises(SpansEvictedError, match=ids[0]) as info:
                await store.query_spans(ids[0])
            message = str(info.value)
            assert "evicted" in message and "span_budget_bytes" in message
            assert isinstance(info.value, LookupError)
            for rid in ids[1:]:
                assert (await store.query_spans(rid)).total == self.spans_per_rollout
            stats = await store.statistics()
            assert stats["evicted_rollouts"] == 1 and stats["evicted_spans"] == self.spans_per_rollout
            assert stats["spans"] == 2 * self.spans_per_rollout and stats["span_bytes"] <= size * 2.5
            # the rollout itself stays; only its spans went
            assert (await store.get_rollout_by_id(ids[0])).status is RolloutStatus.SUCCEEDED

    async def test_spans_of_unfinished_rollouts_are_never_evicted(self, store_factory: StoreFactory) -> None:
        size = await self._bytes_per_rollout(store_factory)
        async with store_factory(
            watchdog_interval=WATCHDOG_INTERVAL, span_budget_bytes=math.ceil(size * 1.5)
        ) as store:
            running = []
            for _ in range(3):
                ar = await store.start_rollout("live")
                await self._fill(store, ar.rollout_id, ar.attempt_id)
                running.append(ar)
            queued = await store.enqueue_rollout("q")
            stats = await store.statistics()
            assert stats["span_bytes"] > size * 1.5 and stats["evicted_rollouts"] == 0
            for ar in running:
                assert (await store.query_spans(ar.rollout_id)).total == self.spans_per_rollout
            assert (await store.query_spans(queued.rollout_id)).total == 0
            # once one finishes it becomes the first candidate
            first = running[0]
            await store.update_attempt(first.rollout_id, first.attempt_id, status="failed")
            with pytest.raises(SpansEvictedError):
                await store.query_spans(first.rollout_id)
            for ar in running[1:]:
                assert (await store.query_spans(ar.rollout_id)).total == self.spans_per_rollout

    async def test_late_spans_of_a_finished_rollout_are_evictable(self, store_factory: StoreFactory) -> None:
        size = await self._bytes_per_rollout(store_factory)
        async with store_factory(
            watchdog_interval=WATCHDOG_INTERVAL, span_budget_bytes=math.ceil(size * 1.5)
        ) as store:
            ended = await store.start_rollout("ended without spans")
            await store.update_attempt(ended.rollout_id, ended.attempt_id, status="succeeded")
            await self._fill(store, ended.rollout_id, ended.attempt_id)  # spans arriving late
            assert (await store.query_spans(ended.rollout_id)).total == self.spans_per_rollout
            live = await store.start_rollout("live")
            await self._fill(store, live.rollout_id, live.attempt_id)  # over budget now
            with pytest.raises(SpansEvictedError, match=ended.rollout_id):
                await store.query_spans(ended.rollout_id)
            assert (await store.query_spans(live.rollout_id)).total == self.spans_per_rollout
            stats = await store.statistics()
            assert stats["evicted_rollouts"] == 1 and stats["span_bytes"] <= size * 1.5

    async def test_requeued_rollout_keeps_its_new_spans_after_eviction(
        self, store_factory: StoreFactory
    ) -> None:
        size = await self._bytes_per_rollout(store_factory)
        async with store_factory(
            watchdog_interval=WATCHDOG_INTERVAL, span_budget_bytes=math.ceil(size * 1.5)
        ) as store:
            first = await self._finished_rollout(store)
            await self._finished_rollout(store)  # over budget: the first one's spans go
            with pytest.raises(SpansEvictedError):
                await store.query_spans(first)
            await store.update_rollout(first, status="requeuing")
            again = await store.dequeue_rollout()
            assert again is not None and again.rollout_id == first
            stored = await store.add_span(make_span(first, again.attempt_id, 0))
            assert stored is not None, "a span of the requeued rollout was dropped"
            spans = await store.query_spans(first)
            assert [s.attempt_id for s in spans] == [again.attempt_id]
            attempt = await store.get_latest_attempt(first)
            assert attempt is not None and attempt.status is AttemptStatus.RUNNING
