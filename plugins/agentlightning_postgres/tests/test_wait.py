"""``wait_for_rollouts`` is woken by ``NOTIFY`` from whichever process finished the rollout."""

from __future__ import annotations

from collections.abc import Callable

import anyio
import psycopg
import pytest

from agentlightning_core.testing.store import DEADLINE
from agentlightning_core.types import RolloutStatus
from agentlightning_postgres import PostgresLightningStore
from agentlightning_postgres.schema import channel

pytestmark = pytest.mark.anyio

Make = Callable[..., PostgresLightningStore]


async def test_a_rollout_finished_by_another_store_wakes_the_waiter(make_store: Make) -> None:
    async with make_store(schema="wake") as waiter, make_store(schema="wake") as other:
        rollout = await waiter.enqueue_rollout("task")
        got = await other.dequeue_rollout()
        assert got is not None
        results: list[list[str]] = []

        async def wait() -> None:
            done = await waiter.wait_for_rollouts([rollout.rollout_id])  # no timeout: only a NOTIFY ends it
            results.append([r.rollout_id for r in done])

        with anyio.fail_after(DEADLINE):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await other.update_attempt(rollout.rollout_id, got.attempt.attempt_id, status="succeeded")
        assert results == [[rollout.rollout_id]]


async def test_a_store_that_was_not_started_listens_for_the_call(make_store: Make) -> None:
    async with make_store(schema="unstarted") as other:
        rollout = await other.enqueue_rollout("task")
        waiter = make_store(schema="unstarted")
        try:
            with anyio.fail_after(DEADLINE):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(waiter.wait_for_rollouts, [rollout.rollout_id])
                    await waiter.get_rollout_by_id(rollout.rollout_id)  # its pool is open ...
                    await other.update_rollout(
                        rollout.rollout_id, status="cancelled"
                    )  # ... and this wakes it
            assert (await waiter.get_rollout_by_id(rollout.rollout_id)).status is RolloutStatus.CANCELLED
        finally:
            await waiter.aclose()


async def test_finishing_a_rollout_sends_its_id_on_the_store_channel(make_store: Make, dsn: str) -> None:
    async with make_store(schema="channel") as store:
        rollout = await store.enqueue_rollout("task")
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as listener:
            await listener.execute(f"LISTEN {channel('channel')}")
            await store.update_rollout(rollout.rollout_id, status="failed")
            with anyio.fail_after(DEADLINE):
                async for note in listener.notifies():
                    assert note.payload == rollout.rollout_id
                    break


async def test_a_timeout_returns_what_finished(make_store: Make) -> None:
    async with make_store() as store:
        done = await store.enqueue_rollout("done")
        pending = await store.enqueue_rollout("pending")
        await store.update_rollout(done.rollout_id, status="succeeded")
        got = await store.wait_for_rollouts([done.rollout_id, pending.rollout_id], timeout=0.05)
        assert [r.rollout_id for r in got] == [done.rollout_id]
