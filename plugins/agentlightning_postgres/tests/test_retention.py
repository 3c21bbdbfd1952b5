"""Retention: deleting old finished rollouts with their attempts and spans."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentlightning_core.testing.store import make_span, wait_until
from agentlightning_core.types import AttemptStatus
from agentlightning_postgres import PostgresLightningStore

pytestmark = pytest.mark.anyio

Make = Callable[..., PostgresLightningStore]


async def _finished_and_running(store: PostgresLightningStore, spans: int = 50) -> tuple[str, str]:
    done = await store.start_rollout("done")
    await store.add_many_spans(
        [make_span(done.rollout_id, done.attempt_id, i, pad="z" * 300) for i in range(spans)]
    )
    await store.update_attempt(done.rollout_id, done.attempt_id, status=AttemptStatus.SUCCEEDED)
    running = await store.start_rollout("running")
    await store.add_span(make_span(running.rollout_id, running.attempt_id, 0))
    return done.rollout_id, running.rollout_id


async def test_delete_finished_removes_old_finished_rollouts_with_attempts_and_spans(
    make_store: Make,
) -> None:
    async with make_store() as store:
        _done, running = await _finished_and_running(store)
        queued = await store.enqueue_rollout("queued")
        assert await store.delete_finished(older_than=3600) == 0  # not old enough
        assert await store.delete_finished(older_than=0) == 1
        ids = {r.rollout_id for r in await store.query_rollouts()}
        assert ids == {running, queued.rollout_id}
        stats = await store.statistics()
        assert stats["attempts"] == 1 and stats["spans"] == 1
        assert len(await store.query_spans(running)) == 1
        with pytest.raises(ValueError, match="older_than"):
            await store.delete_finished(older_than=-1)


async def test_retention_policy_runs_in_the_background(make_store: Make) -> None:
    async with make_store(watchdog_interval=0.02, retention_seconds=0.05) as store:
        _done, running = await _finished_and_running(store)

        async def gone() -> bool:
            return [r.rollout_id for r in await store.query_rollouts()] == [running]

        await wait_until(gone, "the finished rollout to be deleted by the retention policy")
