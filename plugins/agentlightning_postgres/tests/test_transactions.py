"""Write transactions in pipeline mode: errors of statements whose results are not read still
undo the whole call, and a call that waited for a row lock reads the rows as they are then."""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio
import psycopg
import pytest

from agentlightning_core.store.base import EnqueueRequest
from agentlightning_core.testing.store import DEADLINE
from agentlightning_core.types import RolloutConfig
from agentlightning_postgres import PostgresLightningStore
from agentlightning_postgres.testing import waiting_for_a_lock

pytestmark = pytest.mark.anyio

Make = Callable[..., PostgresLightningStore]


async def test_an_error_of_a_pipelined_statement_undoes_the_whole_call(make_store: Make) -> None:
    async with make_store(schema="pipelined_error") as store:
        # the inserts are sent without waiting; PostgreSQL refuses the third (a NUL in text) at COMMIT
        requests = [
            EnqueueRequest(input=1),
            EnqueueRequest(input=2),
            EnqueueRequest(input=3, resources_id="r\x00"),
        ]
        with pytest.raises(psycopg.DataError):
            await store.enqueue_many_rollouts(requests)
        assert len(await store.query_rollouts()) == 0
        for _ in range(3 * store.pool_size):  # every pooled connection is usable again
            assert len(await store.enqueue_many_rollouts([EnqueueRequest(input=4)])) == 1
        assert len(await store.query_rollouts()) == 3 * store.pool_size


async def test_an_update_that_waited_for_the_lock_reads_the_attempt_as_committed(
    make_store: Make, dsn: str
) -> None:
    async with make_store(schema="waited") as store:
        got = await store.start_rollout("x")
        async with await psycopg.AsyncConnection.connect(dsn) as other:  # another process's transaction
            await other.execute(
                "SELECT 1 FROM waited.rollouts WHERE rollout_id = %s FOR UPDATE", (got.rollout_id,)
            )
            await other.execute(
                "UPDATE waited.attempts SET metadata = %s WHERE attempt_id = %s",
                ('{"by": "other"}', got.attempt_id),
            )
            async with anyio.create_task_group() as tg:
                result = {}

                async def update() -> None:
                    result["attempt"] = await store.update_attempt(got.rollout_id, got.attempt_id, reward=0.5)

                tg.start_soon(update)
                with anyio.fail_after(DEADLINE):
                    while not await waiting_for_a_lock(dsn):
                        await anyio.sleep(0.01)
                await other.commit()
        attempt = result["attempt"]
        assert attempt.metadata == {"by": "other"} and attempt.reward == 0.5
        stored = await store.get_latest_attempt(got.rollout_id)
        assert stored is not None and stored.metadata == {"by": "other"} and stored.reward == 0.5


async def test_a_watchdog_that_waited_for_the_lock_sees_the_heartbeat_sent_meanwhile(
    make_store: Make, dsn: str
) -> None:
    async with make_store(schema="watchdog_wait", watchdog_interval=None) as store:
        got = await store.start_rollout("x", config=RolloutConfig(unresponsive_seconds=10.0))
        later = time.time() + 100  # the pass's "now": the attempt's start is long overdue
        async with await psycopg.AsyncConnection.connect(dsn) as other:  # a heartbeat from another process
            await other.execute(
                "SELECT 1 FROM watchdog_wait.rollouts WHERE rollout_id = %s FOR UPDATE", (got.rollout_id,)
            )
            await other.execute(
                "UPDATE watchdog_wait.attempts SET last_heartbeat_time = %s WHERE attempt_id = %s",
                (later, got.attempt_id),
            )
            async with anyio.create_task_group() as tg:
                changed: list[int] = []

                async def watchdog() -> None:
                    changed.append(await store.watchdog_pass(now=later))

                tg.start_soon(watchdog)
                with anyio.fail_after(DEADLINE):
                    while not await waiting_for_a_lock(dsn):
                        await anyio.sleep(0.01)
                await other.commit()
        assert changed == [0]
        attempt = await store.get_latest_attempt(got.rollout_id)
        assert attempt is not None and attempt.status == "preparing"
