"""Group commit: concurrent ``enqueue_rollout``, ``dequeue_rollout`` and ``update_attempt``
calls run together, each keeping its own meaning (its own result, its own error), across
stores sharing a database, and a cancelled caller loses nothing."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable

import anyio
import psycopg
import pytest

from agentlightning_core import AttemptNotFoundError, RolloutNotFoundError
from agentlightning_core.store.base import UNSET
from agentlightning_core.testing.store import DEADLINE, wait_until
from agentlightning_core.types import AttemptedRollout, AttemptStatus, Rollout, RolloutConfig
from agentlightning_postgres import PostgresLightningStore, attempts
from agentlightning_postgres.combine import Combiner
from agentlightning_postgres.schema import channel, connect
from agentlightning_postgres.sql import transaction
from agentlightning_postgres.testing import waiting_for_a_lock

pytestmark = pytest.mark.anyio

Make = Callable[..., PostgresLightningStore]


# --- the combiner on its own -----------------------------------------------------------


class Doubler:
    """Doubles numbers in batches, recording each batch; a negative number fails its batch."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.gates = [anyio.Event() for _ in range(3)]
        """Batch i waits for gate i (the last gate for later batches)."""

    def open(self) -> None:
        for gate in self.gates:
            gate.set()

    async def run(self, batch: list[int]) -> list[int]:
        self.batches.append(list(batch))
        await self.gates[min(len(self.batches), len(self.gates)) - 1].wait()
        if any(n < 0 for n in batch):
            raise ValueError(f"negative: {batch}")
        return [2 * n for n in batch]


async def test_calls_that_arrive_while_one_runs_make_the_next_batch() -> None:
    doubler = Doubler()
    combiner: Combiner[int, int] = Combiner(doubler.run)
    results: dict[int, int] = {}

    async def call(n: int) -> None:
        results[n] = await combiner(n)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, 0)
        await wait_until(lambda: _true(len(doubler.batches) == 1), "the first batch to start")
        for n in range(1, 6):
            tg.start_soon(call, n)
        await anyio.wait_all_tasks_blocked()
        doubler.open()
    assert doubler.batches == [[0], [1, 2, 3, 4, 5]]
    assert results == {n: 2 * n for n in range(6)}


async def test_calls_ready_together_share_a_batch_and_a_lone_call_runs_alone() -> None:
    doubler = Doubler()
    doubler.open()
    combiner: Combiner[int, int] = Combiner(doubler.run)
    async with anyio.create_task_group() as tg:
        for n in range(4):
            tg.start_soon(combiner, n)
    assert doubler.batches == [[0, 1, 2, 3]]
    assert await combiner(7) == 14
    assert doubler.batches[-1] == [7]


async def test_a_failing_call_fails_alone_and_the_others_of_its_batch_succeed() -> None:
    doubler = Doubler()
    doubler.open()
    combiner: Combiner[int, int] = Combiner(doubler.run)
    outcomes: dict[int, int | Exception] = {}

    async def call(n: int) -> None:
        try:
            outcomes[n] = await combiner(n)
        except ValueError as exc:
            outcomes[n] = exc

    async with anyio.create_task_group() as tg:
        for n in (1, -2, 3):
            tg.start_soon(call, n)
    assert doubler.batches[0] == [1, -2, 3]  # together first, then one by one
    assert doubler.batches[1:] == [[1], [-2], [3]]
    assert outcomes[1] == 2 and outcomes[3] == 6
    assert isinstance(outcomes[-2], ValueError) and str(outcomes[-2]) == "negative: [-2]"


async def test_calls_with_the_same_key_never_share_a_batch() -> None:
    doubler = Doubler()
    doubler.open()
    combiner: Combiner[int, int] = Combiner(doubler.run, key=lambda n: n % 3)
    async with anyio.create_task_group() as tg:
        for n in range(7):
            tg.start_soon(combiner, n)
    assert doubler.batches == [[0, 1, 2], [3, 4, 5], [6]]


async def test_a_cancelled_waiting_call_is_withdrawn_and_a_taken_one_still_returns() -> None:
    doubler = Doubler()
    combiner: Combiner[int, int] = Combiner(doubler.run)
    results: dict[int, int] = {}
    scopes = {n: anyio.CancelScope() for n in range(5)}

    async def call(n: int) -> None:
        with scopes[n]:
            results[n] = await combiner(n)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, 0)
        await wait_until(lambda: _true(len(doubler.batches) == 1), "the first batch to start")
        for n in (1, 2, 3, 4):
            tg.start_soon(call, n)
        await anyio.wait_all_tasks_blocked()
        scopes[4].cancel()  # still waiting: withdrawn
        await anyio.wait_all_tasks_blocked()
        doubler.gates[0].set()
        await wait_until(lambda: _true(len(doubler.batches) == 2), "the second batch to start")
        for n in (0, 1, 2, 3):  # 0 is done; 1 leads the running batch; 2 and 3 are in it
            scopes[n].cancel()
        await anyio.wait_all_tasks_blocked()
        doubler.gates[1].set()
    assert doubler.batches == [[0], [1, 2, 3]]
    assert results == {0: 0, 1: 2, 2: 4, 3: 6}
    assert scopes[4].cancelled_caught and not any(scopes[n].cancelled_caught for n in range(4))


async def _true(value: bool) -> bool:
    return value


# --- the store ------------------------------------------------------------------------


async def test_cycles_from_two_stores_at_once_hand_out_every_rollout_exactly_once(make_store: Make) -> None:
    tasks, cycles = 8, 15
    enqueued: list[Rollout] = []
    dequeued: list[AttemptedRollout] = []
    async with make_store(schema="cycles_two") as first, make_store(schema="cycles_two") as second:

        async def worker(store: PostgresLightningStore, name: str) -> None:
            for i in range(cycles):
                enqueued.append(await store.enqueue_rollout({"by": name, "i": i}))
                got = await store.dequeue_rollout(worker_id=name)
                assert got is not None  # this worker enqueued one first
                assert got.attempt.worker_id == name
                dequeued.append(got)
                await store.update_attempt(got.rollout_id, got.attempt.attempt_id, status="succeeded")

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                for k in range(tasks):
                    tg.start_soon(worker, first, f"a{k}")
                    tg.start_soon(worker, second, f"b{k}")
        total = 2 * tasks * cycles
        assert Counter(g.rollout_id for g in dequeued) == Counter(r.rollout_id for r in enqueued)
        assert len({r.rollout_id for r in enqueued}) == total
        stored = await first.query_rollouts()
        assert len(stored) == total and {r.status for r in stored} == {"succeeded"}
        for got in dequeued[:: tasks + 1]:
            attempts = await second.query_attempts(got.rollout_id)
            assert [(a.attempt_id, a.status, a.worker_id) for a in attempts] == [
                (got.attempt.attempt_id, "succeeded", got.attempt.worker_id)
            ]
        workers = await first.query_workers()
        assert len(workers) == 2 * tasks
        assert {(w.status, w.current_attempt_id) for w in workers} == {("idle", None)}


async def test_dequeues_run_together_give_each_worker_its_own_rollout(make_store: Make) -> None:
    async with make_store(schema="dequeue_together") as store:
        queued = {(await store.enqueue_rollout(i)).rollout_id for i in range(3)}
        got: list[tuple[str, AttemptedRollout | None]] = []

        async def dequeue(worker: str) -> None:
            got.append((worker, await store.dequeue_rollout(worker_id=worker)))

        async with anyio.create_task_group() as tg:  # more callers than queued rollouts
            for worker in ("w1", "w2", "w3", "w2", "w4"):
                tg.start_soon(dequeue, worker)
        handed = [(worker, g) for worker, g in got if g is not None]
        assert len(got) == 5 and {g.rollout_id for _, g in handed} == queued and len(handed) == 3
        for worker, g in handed:
            assert g.attempt.worker_id == worker
            stored = await store.get_latest_attempt(g.rollout_id)
            assert stored is not None and stored.attempt_id == g.attempt.attempt_id
            assert stored.worker_id == worker
        for worker in ("w1", "w2", "w3", "w4"):
            record = await store.get_worker_by_id(worker)
            assert record.last_dequeue_time is not None
            mine = [g.attempt.attempt_id for w, g in handed if w == worker]
            if mine:
                assert record.status == "busy" and record.current_attempt_id in mine
            else:
                assert record.status == "unknown" and record.current_attempt_id is None


async def test_a_bad_call_among_concurrent_calls_raises_for_its_caller_only(make_store: Make) -> None:
    async with make_store(schema="bad_call") as store:
        running = [await store.start_rollout(i) for i in range(4)]
        outcomes: dict[str, object] = {}

        async def update(name: str, rollout_id: str, attempt_id: str, reward: float | None = None) -> None:
            try:
                outcomes[name] = await store.update_attempt(
                    rollout_id, attempt_id, status="succeeded", reward=reward
                )
            except (AttemptNotFoundError, RolloutNotFoundError) as exc:
                outcomes[name] = exc

        async def enqueue(name: str, resources_id: str) -> None:
            try:
                outcomes[name] = await store.enqueue_rollout(name, resources_id=resources_id)
            except psycopg.DataError as exc:  # a NUL in text: refused by PostgreSQL
                outcomes[name] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(update, "good0", running[0].rollout_id, running[0].attempt_id, 0.5)
            tg.start_soon(update, "bad attempt", running[1].rollout_id, "no-such-attempt")
            tg.start_soon(update, "good2", running[2].rollout_id, running[2].attempt_id)
            tg.start_soon(update, "bad rollout", "no-such-rollout", running[3].attempt_id)
            tg.start_soon(update, "good3", running[3].rollout_id, "latest")
            tg.start_soon(enqueue, "enqueue ok", "res-1")
            tg.start_soon(enqueue, "enqueue bad", "res\x00")
            tg.start_soon(enqueue, "enqueue ok too", "res-2")
        assert isinstance(outcomes["bad attempt"], AttemptNotFoundError)
        assert "no-such-attempt" in str(outcomes["bad attempt"])
        assert isinstance(outcomes["bad rollout"], RolloutNotFoundError)
        assert isinstance(outcomes["enqueue bad"], psycopg.DataError)
        for i in (0, 2, 3):
            assert (await store.get_rollout_by_id(running[i].rollout_id)).status == "succeeded"
            stored = await store.get_latest_attempt(running[i].rollout_id)
            assert stored is not None and stored.status == "succeeded"
            assert stored.reward == (0.5 if i == 0 else None)
        assert (await store.get_rollout_by_id(running[1].rollout_id)).status == "preparing"
        queued = await store.query_rollouts(status_in=["queuing"])
        assert sorted(r.input for r in queued) == ["enqueue ok", "enqueue ok too"]


async def test_a_cancelled_dequeue_loses_no_rollout(make_store: Make, dsn: str) -> None:
    async with make_store(schema="cancelled_dequeue") as store:
        queued = [(await store.enqueue_rollout(i)).rollout_id for i in range(6)]
        results: dict[str | None, AttemptedRollout | None] = {}
        scopes: dict[str | None, anyio.CancelScope] = {}

        async def dequeue(worker: str | None) -> None:
            with anyio.CancelScope() as scope:
                scopes[worker] = scope
                results[worker] = await store.dequeue_rollout(worker_id=worker)

        # Two other transactions hold tables: the rollouts, so the first dequeue statement
        # waits; the workers, so the second (naming workers, unlike the first) waits too.
        async with (
            await psycopg.AsyncConnection.connect(dsn) as holds_rollouts,
            await psycopg.AsyncConnection.connect(dsn) as holds_workers,
        ):
            await holds_rollouts.execute("LOCK TABLE cancelled_dequeue.rollouts IN ACCESS EXCLUSIVE MODE")
            await holds_workers.execute("LOCK TABLE cancelled_dequeue.workers IN ACCESS EXCLUSIVE MODE")
            async with anyio.create_task_group() as tg:
                tg.start_soon(dequeue, None)
                await wait_until(lambda: waiting_for_a_lock(dsn), "the first dequeue to wait")
                for worker in ("w1", "w2", "w3"):  # wait for the first; then run together
                    tg.start_soon(dequeue, worker)
                await anyio.wait_all_tasks_blocked()
                await holds_rollouts.commit()
                await wait_until(lambda: _true(None in results), "the first dequeue to return")
                await wait_until(lambda: waiting_for_a_lock(dsn), "the second dequeue to wait")
                for worker in ("w4", "w5"):  # wait for the second
                    tg.start_soon(dequeue, worker)
                await anyio.wait_all_tasks_blocked()
                for worker in ("w1", "w2", "w3", "w4", "w5"):
                    scopes[worker].cancel()  # w1 leads the waiting statement, w2 and w3 are in it
                await anyio.wait_all_tasks_blocked()
                await holds_workers.commit()
        assert set(results) == {None, "w1", "w2", "w3"}  # w4 and w5 were withdrawn
        assert scopes["w4"].cancelled_caught and scopes["w5"].cancelled_caught
        handed = {worker: got.rollout_id for worker, got in results.items() if got is not None}
        assert handed[None] == queued[0] and {handed[w] for w in ("w1", "w2", "w3")} == set(queued[1:4])
        statuses = {r.rollout_id: r.status for r in await store.query_rollouts()}
        assert [statuses[r] for r in queued] == ["preparing"] * 4 + ["queuing"] * 2
        rest = await store.dequeue_many_rollouts(10)
        assert [r.rollout_id for r in rest] == queued[4:]


async def test_attempts_finished_together_wake_a_waiter_in_another_store(make_store: Make) -> None:
    async with (
        make_store(schema="finished_together") as store,
        make_store(schema="finished_together") as other,
    ):
        running = [await store.start_rollout(i) for i in range(5)]
        ids = [r.rollout_id for r in running]
        finished: list[Rollout] = []

        async def wait() -> None:
            # a long timeout: only the NOTIFY of the finishing transaction ends it in time
            finished.extend(await other.wait_for_rollouts(ids, timeout=600))

        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await wait_until(lambda: _true(other._listening), "the other store to listen")
                for r in running:
                    tg.start_soon(
                        functools.partial(
                            store.update_attempt, r.rollout_id, r.attempt_id, status="succeeded"
                        )
                    )
        assert sorted(r.rollout_id for r in finished) == sorted(ids)
        assert {r.status for r in finished} == {"succeeded"}


async def test_a_batch_of_attempt_changes_of_every_kind_leaves_what_each_call_would(
    make_store: Make, dsn: str
) -> None:
    """``attempts.update_each`` (a batch of ``update_attempt`` calls) with a change of each kind
    (success, a retried failure, running, a heartbeat, two attempts of one worker, a failure):
    each rollout, attempt and worker ends as the lone call leaves it, the retry goes to the back
    of the queue and each rollout that ends is announced."""
    retry = RolloutConfig(max_attempts=2, retry_condition=["failed"])
    async with make_store(schema="write_each") as store:
        for i, config in enumerate([None, retry, None, None, None, None, None]):
            await store.enqueue_rollout(i, config=config)
        names = ["w1", "w2", None, None, "w3", "w3", None]  # w3 takes two: busy with the second
        got = [await store.dequeue_rollout(worker_id=name) for name in names]
        assert all(g is not None for g in got)
        done, retried, running, beating, older, newer, failed = [g for g in got if g is not None]
        await store.enqueue_rollout("queued before the retry")

        def change(
            g: AttemptedRollout, status: AttemptStatus | None, beat: float | None = None
        ) -> attempts.Change:
            return attempts.Change(
                g.rollout_id,
                g.attempt.attempt_id,
                status,
                UNSET,
                UNSET if beat is None else beat,
                UNSET,
                UNSET,
            )

        changes = [
            change(done, AttemptStatus.SUCCEEDED),
            change(retried, AttemptStatus.FAILED),
            change(running, AttemptStatus.RUNNING),
            change(beating, None, beat=1.0),
            change(older, AttemptStatus.SUCCEEDED),
            change(newer, AttemptStatus.RUNNING),
            change(failed, AttemptStatus.FAILED),
        ]
        conn = await connect(dsn, "write_each", timeout=30)
        async with conn, await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listener:
            await listener.execute(f"LISTEN {channel('write_each')}")
            out = await transaction(
                conn, lambda c: attempts.update_each(c, changes, store.where, channel("write_each"))
            )
            notified: set[str] = set()
            with anyio.fail_after(DEADLINE):
                async for note in listener.notifies():
                    notified.add(note.payload)
                    if len(notified) == 3:
                        break
        assert notified == {done.rollout_id, older.rollout_id, failed.rollout_id}
        statuses = ["succeeded", "requeuing", "running", "running", "succeeded", "running", "failed"]
        assert [a.status for a in out] == [s.replace("requeuing", "failed") for s in statuses]
        for g, attempt, status in zip(got, out, statuses, strict=True):
            assert g is not None
            assert await store.get_latest_attempt(g.rollout_id) == attempt
            rollout = await store.get_rollout_by_id(g.rollout_id)
            assert rollout.status == status
            assert (rollout.end_time is not None) == (status in ("succeeded", "failed"))
            assert (attempt.end_time is not None) == (attempt.status in ("succeeded", "failed"))
        workers = {w.worker_id: w for w in await store.query_workers()}
        assert {k: (w.status, w.current_attempt_id) for k, w in workers.items()} == {
            "w1": ("idle", None),
            "w2": ("idle", None),
            "w3": ("busy", newer.attempt.attempt_id),  # not released by its older attempt
        }
        assert out[3].last_heartbeat_time == 1.0
        requeued = await store.dequeue_many_rollouts(5)  # the retry went to the back of the queue
        assert [r.input for r in requeued] == ["queued before the retry", 1]
        assert requeued[1].attempt.sequence_id == 2
