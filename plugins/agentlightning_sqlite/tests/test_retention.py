"""Retention (deleting old finished rollouts) and vacuum (``agl sqlite vacuum``: test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentlightning_core.testing.store import make_span, wait_until
from agentlightning_core.types import AttemptStatus
from agentlightning_sqlite import SqliteLightningStore


async def _finished_and_running(store: SqliteLightningStore, spans: int = 50) -> tuple[str, str]:
    done = await store.start_rollout("done")
    await store.add_many_spans(
        [make_span(done.rollout_id, done.attempt_id, i, pad="z" * 300) for i in range(spans)]
    )
    await store.update_attempt(done.rollout_id, done.attempt_id, status=AttemptStatus.SUCCEEDED)
    running = await store.start_rollout("running")
    await store.add_span(make_span(running.rollout_id, running.attempt_id, 0))
    return done.rollout_id, running.rollout_id


@pytest.mark.anyio
async def test_delete_finished_removes_old_finished_rollouts_with_attempts_and_spans(tmp_path: Path) -> None:
    async with SqliteLightningStore(tmp_path / "r.db") as store:
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


@pytest.mark.anyio
async def test_retention_policy_runs_in_the_background(tmp_path: Path) -> None:
    async with SqliteLightningStore(
        tmp_path / "r.db", watchdog_interval=0.02, retention_seconds=0.05
    ) as store:
        _done, running = await _finished_and_running(store)

        async def gone() -> bool:
            return [r.rollout_id for r in await store.query_rollouts()] == [running]

        await wait_until(gone, "the finished rollout to be deleted by the retention policy")


@pytest.mark.anyio
async def test_vacuum_shrinks_the_file(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    async with SqliteLightningStore(path) as store:
        for _ in range(5):
            await _finished_and_running(store, spans=200)
        result = await store.vacuum(older_than=0)
        assert result["deleted_rollouts"] == 5
        assert result["bytes_after"] < result["bytes_before"] / 2
        assert (await store.statistics())["rollouts"] == 5  # the running ones stay
