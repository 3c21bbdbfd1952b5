"""The in-memory store: the conformance suites plus what only this backend has."""

from __future__ import annotations

import asyncio
import os
import sys
import threading

import anyio
import attrs
import pytest

from agentlightning_core._records import copier, replace
from agentlightning_core.plugins import resolve_component
from agentlightning_core.spans import Span
from agentlightning_core.store import policy
from agentlightning_core.store.base import EnqueueRequest, LightningStore
from agentlightning_core.store.memory import (
    DEFAULT_SPAN_BUDGET_FRACTION,
    InMemoryLightningStore,
    estimate_span_bytes,
)
from agentlightning_core.testing.store import (
    DEADLINE,
    SpanBudgetConformance,
    StoreConformance,
    StoreFactory,
    make_span,
)
from agentlightning_core.types import AttemptStatus, RolloutConfig, RolloutStatus

pytestmark = pytest.mark.anyio


@pytest.fixture
def memory_factory() -> StoreFactory:
    return lambda **options: InMemoryLightningStore(**options)


class TestInMemoryStore(StoreConformance):
    @pytest.fixture
    def store_factory(self, memory_factory: StoreFactory) -> StoreFactory:
        return memory_factory


class TestInMemorySpanBudget(SpanBudgetConformance):
    @pytest.fixture
    def store_factory(self, memory_factory: StoreFactory) -> StoreFactory:
        return memory_factory


def _physical() -> int:
    import os

    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_registered_as_the_memory_store() -> None:
    store = resolve_component("store", {"type": "memory", "span_budget_bytes": 1234}, base=LightningStore)
    assert isinstance(store, InMemoryLightningStore) and store.span_budget_bytes == 1234


def test_budget_from_share_of_ram() -> None:
    assert InMemoryLightningStore().span_budget_bytes == int(_physical() * DEFAULT_SPAN_BUDGET_FRACTION)
    assert InMemoryLightningStore(span_budget_fraction=0.5).span_budget_bytes == int(_physical() * 0.5)
    assert InMemoryLightningStore(span_budget_bytes=10, span_budget_fraction=0.5).span_budget_bytes == 10


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"span_budget_fraction": 1.5}, "1.5"),
        ({"span_budget_bytes": 0}, "span_budget_bytes"),
        ({"watchdog_interval": -1}, "-1"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        InMemoryLightningStore(**options)  # type: ignore[arg-type]


def test_span_size_estimate_is_close_to_the_object_graph() -> None:
    """The cheap estimate stays within 2x of a deep getsizeof of a stored span's own objects."""
    span = make_span("ro-1", "at-1", 3, parent_id="00000000000000ff", model="gpt", tokens=120, note="x" * 200)

    def deep(obj: object, seen: set[int]) -> int:
        if id(obj) in seen or obj is None or (isinstance(obj, (bool, int)) and -5 <= int(obj) <= 256):
            return 0
        seen.add(id(obj))
        size = sys.getsizeof(obj)
        if isinstance(obj, dict):
            size += sum(deep(k, seen) + deep(v, seen) for k, v in obj.items())
        elif isinstance(obj, (list, tuple)):
            size += sum(deep(v, seen) for v in obj)
        elif hasattr(obj, "__slots__") and not isinstance(obj, str):
            size += sum(deep(getattr(obj, n), seen) for n in type(obj).__slots__ if hasattr(obj, n))
        return size

    actual = deep(span, {id(span.rollout_id), id(span.attempt_id), id(span.trace_id)})
    estimate = estimate_span_bytes(span)
    assert actual / 2 < estimate < actual * 2, (estimate, actual)


async def test_start_and_aclose_are_idempotent_and_stop_the_watchdog() -> None:
    store = InMemoryLightningStore(watchdog_interval=0.01)
    await store.start()
    await store.start()
    ar = await store.start_rollout("x", config=RolloutConfig(timeout_seconds=0.02))
    await store.aclose()
    await store.aclose()
    await anyio.sleep(0.05)  # past the time-out: with the watchdog stopped nothing changes
    assert (await store.get_rollout_by_id(ar.rollout_id)).status is RolloutStatus.PREPARING
    assert store.run_watchdog_once() == 1  # the same check, run by hand
    assert (await store.get_rollout_by_id(ar.rollout_id)).status is RolloutStatus.FAILED


async def test_watchdog_can_be_disabled() -> None:
    async with InMemoryLightningStore(watchdog_interval=None) as store:
        ar = await store.start_rollout("x", config=RolloutConfig(timeout_seconds=0.01))
        assert await store.wait_for_rollouts([ar.rollout_id], timeout=0.05) == []


async def test_store_shared_with_another_thread_and_event_loop() -> None:
    """A tracer thread with its own loop adds spans and finishes rollouts; this loop waits."""
    async with InMemoryLightningStore(watchdog_interval=0.02) as store:
        rollouts = await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(100)])
        dequeued: list[str] = []
        errors: list[BaseException] = []

        async def remote() -> None:
            while (ar := await store.dequeue_rollout(worker_id="thread")) is not None:
                dequeued.append(ar.rollout_id)
                await store.add_many_spans([make_span(ar.rollout_id, ar.attempt_id, i) for i in range(3)])
                await store.update_attempt(ar.rollout_id, ar.attempt_id, status="succeeded")

        def run_thread() -> None:
            try:
                asyncio.run(remote())
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        ids = [r.rollout_id for r in rollouts]
        local: list[str] = []
        threads = [threading.Thread(target=run_thread) for _ in range(2)]
        for t in threads:
            t.start()
        with anyio.fail_after(DEADLINE):
            while (ar := await store.dequeue_rollout(worker_id="main")) is not None:
                local.append(ar.rollout_id)
                await store.update_attempt(ar.rollout_id, ar.attempt_id, status="succeeded")
                await anyio.sleep(0)
            done = await store.wait_for_rollouts(ids, timeout=DEADLINE)
        for t in threads:
            t.join(DEADLINE)
        assert errors == []
        assert sorted(dequeued + local) == sorted(ids), "every rollout dequeued exactly once"
        assert len(done) == 100 and all(r.status is RolloutStatus.SUCCEEDED for r in done)
        for rid in dequeued:
            seqs = [s.sequence_id for s in await store.query_spans(rid)]
            assert len(seqs) == 3 and seqs == sorted(set(seqs))


async def test_waiter_is_woken_by_a_change_from_another_thread() -> None:
    async with InMemoryLightningStore(watchdog_interval=0.02) as store:
        ar = await store.start_rollout("x")
        started = threading.Event()

        def finish() -> None:
            started.wait(DEADLINE)
            asyncio.run(store.update_attempt(ar.rollout_id, ar.attempt_id, status=AttemptStatus.FAILED))

        thread = threading.Thread(target=finish)
        thread.start()
        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as tg:
                results: list[list[str]] = []

                async def wait() -> None:
                    got = await store.wait_for_rollouts([ar.rollout_id], timeout=DEADLINE)
                    results.append([r.status.value for r in got])

                tg.start_soon(wait)
                await anyio.sleep(0)
                started.set()
        thread.join(DEADLINE)
        assert results == [["failed"]]


async def test_statistics_report_eviction_and_drops() -> None:
    async with InMemoryLightningStore(span_budget_bytes=1, watchdog_interval=None) as store:
        ar = await store.start_rollout("x")
        await store.add_span(make_span(ar.rollout_id, ar.attempt_id, 0))
        stats = await store.statistics()
        assert stats["spans"] == 1 and stats["span_bytes"] > 1, "a running rollout's span is kept over budget"
        await store.update_attempt(ar.rollout_id, ar.attempt_id, status="succeeded")
        late = await store.add_span(make_span(ar.rollout_id, ar.attempt_id, 1))
        assert late is None
        stats = await store.statistics()
        assert (stats["spans"], stats["span_bytes"], stats["evicted_rollouts"], stats["dropped_spans"]) == (
            0,
            0,
            1,
            1,
        )
        assert stats["rollouts_by_status"]["succeeded"] == 1 and stats["span_budget_bytes"] == 1


async def test_stored_objects_are_snapshots() -> None:
    async with InMemoryLightningStore(watchdog_interval=None) as store:
        ar = await store.start_rollout("x")
        before = await store.get_rollout_by_id(ar.rollout_id)
        await store.update_attempt(ar.rollout_id, ar.attempt_id, status="succeeded")
        assert before.status is RolloutStatus.PREPARING and ar.attempt.status is AttemptStatus.PREPARING


def _ids() -> list[str]:
    return [
        f() for f in (policy.new_rollout_id, policy.new_attempt_id, policy.new_resources_id) for _ in range(3)
    ]


def test_forked_child_makes_other_ids_than_its_parent() -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its ids and leave at once
        try:
            os.write(write_end, " ".join(_ids()).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    parent = _ids()
    with os.fdopen(read_end, "rb") as pipe:
        child = pipe.read().decode().split()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert len(child) == len(parent) == 9
    assert not set(child) & set(parent), "a forked child repeated its parent's ids"


async def test_start_attempt_error_names_the_rollout_and_status() -> None:
    async with InMemoryLightningStore(watchdog_interval=None) as store:
        r = await store.enqueue_rollout("x")
        await store.update_rollout(r.rollout_id, status="cancelled")
        with pytest.raises(ValueError) as info:
            await store.start_attempt(r.rollout_id)
        assert f"rollout {r.rollout_id!r}: it is cancelled" in str(info.value)
        assert "update_rollout" in str(info.value)
        assert (await store.statistics())["rollouts_by_status"]["cancelled"] == 1


async def test_late_spans_and_requeue_keep_the_statistics_consistent() -> None:
    """Bytes and counts stay exact when late spans are evicted and a requeued rollout adds more."""
    async with InMemoryLightningStore(span_budget_bytes=1, watchdog_interval=None) as store:
        ar = await store.start_rollout("x")
        await store.update_attempt(ar.rollout_id, ar.attempt_id, status="failed")
        assert await store.add_span(make_span(ar.rollout_id, ar.attempt_id, 0)) is not None
        stats = await store.statistics()
        assert (stats["spans"], stats["span_bytes"], stats["evicted_rollouts"]) == (0, 0, 1)
        await store.update_rollout(ar.rollout_id, status="requeuing")
        again = await store.dequeue_rollout()
        assert again is not None
        kept = await store.add_span(make_span(ar.rollout_id, again.attempt_id, 1))
        assert kept is not None and kept.sequence_id == 2, "sequence ids are never reused"
        stats = await store.statistics()
        assert stats["spans"] == 1 and stats["span_bytes"] == estimate_span_bytes(kept)


def test_copier_copies_every_field_without_running_validators() -> None:
    span = make_span("ro-1", "at-1", 3, tokens=5)
    copy = copier(Span, ("sequence_id",))(span, 7)
    assert type(copy) is Span and copy is not span
    assert copy == attrs.evolve(span, sequence_id=7) and span.sequence_id == 0
    # validators are the caller's job: a value attrs would refuse goes through unchecked
    assert replace(span, sequence_id=-1).sequence_id == -1
    with pytest.raises(TypeError, match="seq_id"):
        copier(Span, ("seq_id",))
