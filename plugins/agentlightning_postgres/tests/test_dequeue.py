"""Dequeue across processes: ``SELECT ... FOR UPDATE SKIP LOCKED`` in the transaction that
creates the attempt, so every queued rollout goes to exactly one worker."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import psycopg
import pytest

from agentlightning_core.store.base import EnqueueRequest
from agentlightning_core.testing.store import DEADLINE
from agentlightning_postgres import PostgresLightningStore
from agentlightning_postgres.attempts import DEQUEUE_CHUNK

pytestmark = pytest.mark.anyio

Make = Callable[..., PostgresLightningStore]
CHILD = Path(__file__).with_name("dequeue_child.py")


async def test_worker_processes_each_get_distinct_rollouts(make_store: Make, dsn: str) -> None:
    async with make_store(schema="many_workers") as store:
        queued = await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(60)])
        workers = [
            await anyio.open_process(
                [sys.executable, str(CHILD), dsn, "many_workers", f"w{i}"], stdout=subprocess.PIPE
            )
            for i in range(3)
        ]
        outputs: list[str] = []

        async def collect(process: anyio.abc.Process) -> None:
            assert process.stdout is not None
            data = b"".join([chunk async for chunk in process.stdout])
            assert await process.wait() == 0
            outputs.extend(data.decode().split())

        try:
            with anyio.fail_after(120):
                async with anyio.create_task_group() as tg:
                    for process in workers:
                        tg.start_soon(collect, process)
        finally:
            for process in workers:
                await process.aclose()  # its pipes, or their transports complain when collected later
        counts = Counter(outputs)
        assert set(counts) == {r.rollout_id for r in queued}
        assert set(counts.values()) == {1}  # none was dequeued twice
        for rollout in queued:
            attempts = await store.query_attempts(rollout.rollout_id)
            assert [a.sequence_id for a in attempts] == [1]
        stats = await store.statistics()
        assert stats["rollouts_by_status"]["succeeded"] == 60 and stats["queue_length"] == 0


async def test_a_rollout_locked_by_another_transaction_is_skipped_not_waited_for(
    make_store: Make, dsn: str
) -> None:
    async with make_store(schema="skip_locked") as store:
        first = await store.enqueue_rollout("first")
        second = await store.enqueue_rollout("second")
        async with await psycopg.AsyncConnection.connect(dsn) as other:  # a transaction holding the first row
            await other.execute(
                "SELECT 1 FROM skip_locked.rollouts WHERE rollout_id = %s FOR UPDATE", (first.rollout_id,)
            )
            with anyio.fail_after(DEADLINE):
                got = await store.dequeue_rollout()
            assert got is not None and got.rollout_id == second.rollout_id
            await other.rollback()
        got = await store.dequeue_rollout()
        assert got is not None and got.rollout_id == first.rollout_id


async def test_a_large_dequeue_takes_every_queued_rollout_in_order_in_chunks(make_store: Make) -> None:
    count = DEQUEUE_CHUNK + 44  # more than one dequeue statement takes
    async with make_store(schema="dequeue_chunks") as store:
        queued = await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(count)])
        got = await store.dequeue_many_rollouts(10 * count, worker_id="w1")
        assert [g.rollout_id for g in got] == [r.rollout_id for r in queued]
        assert len({g.attempt.attempt_id for g in got}) == count
        assert all(g.attempt.sequence_id == 1 and g.rollout.status == "preparing" for g in got)
        worker = await store.get_worker_by_id("w1")
        assert worker.status == "busy" and worker.current_attempt_id == got[-1].attempt.attempt_id
        stored = await store.query_attempts(got[-1].rollout_id)
        assert [a.attempt_id for a in stored] == [got[-1].attempt.attempt_id]
        assert await store.dequeue_many_rollouts(5, worker_id="w2") == []
        assert (await store.get_worker_by_id("w2")).last_dequeue_time is not None
