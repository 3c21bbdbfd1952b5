"""What only this backend has: changes made through another connection (another process)."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from agentlightning_core.types import AttemptStatus, RolloutStatus
from agentlightning_sqlite import SqliteLightningStore


@pytest.mark.anyio
async def test_wait_sees_rollouts_finished_through_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    async with (
        SqliteLightningStore(path, poll_interval=0.02) as waiter,
        SqliteLightningStore(path) as other,
    ):
        a = await waiter.start_rollout("a")
        b = await waiter.enqueue_rollout("b")
        result: list[str] = []

        async def wait() -> None:
            done = await waiter.wait_for_rollouts([a.rollout_id, b.rollout_id], timeout=10)
            result.extend(r.rollout_id for r in done)

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await other.update_attempt(a.rollout_id, a.attempt_id, status=AttemptStatus.SUCCEEDED)
                await other.update_rollout(b.rollout_id, status=RolloutStatus.CANCELLED)
        assert result == [a.rollout_id, b.rollout_id]


@pytest.mark.anyio
async def test_watchdogs_of_two_connections_do_not_double_apply(tmp_path: Path) -> None:
    from agentlightning_core.types import RolloutConfig

    path = tmp_path / "d.db"
    async with SqliteLightningStore(path, watchdog_interval=None) as one, SqliteLightningStore(path) as two:
        config = RolloutConfig(timeout_seconds=0.01, max_attempts=3, retry_condition=["timeout"])
        r = await one.enqueue_rollout("x", config=config)
        got = await one.dequeue_rollout()
        assert got is not None
        later = got.attempt.start_time + 1
        changed = await one.watchdog_pass(now=later) + await two.watchdog_pass(now=later)
        assert changed == 1
        attempts = await two.query_attempts(r.rollout_id)
        assert [a.status for a in attempts] == [AttemptStatus.TIMEOUT]
        assert (await two.get_rollout_by_id(r.rollout_id)).status is RolloutStatus.REQUEUING
