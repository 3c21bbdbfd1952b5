"""Background checkpoints: the log is copied back into the database without a commit paying for it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import anyio
import pytest

from agentlightning_core.store.base import EnqueueRequest
from agentlightning_sqlite import SqliteLightningStore
from agentlightning_sqlite.schema import PAGE_SIZE, WAL_AUTOCHECKPOINT


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("agl-sqlite-ckpt:")]


@pytest.mark.anyio
async def test_writes_reach_the_database_file_before_the_autocheckpoint_would(tmp_path: Path) -> None:
    path = tmp_path / "ck.db"
    async with SqliteLightningStore(path, watchdog_interval=None) as store:
        await store.enqueue_rollout("first")
        for _ in range(20):
            await store.enqueue_many_rollouts([EnqueueRequest(input="x" * 200) for _ in range(50)])
        wal_pages = os.path.getsize(f"{path}-wal") // PAGE_SIZE
        assert wal_pages < WAL_AUTOCHECKPOINT, "the backstop would have checkpointed by itself"
        # Only checkpoints write the database file in WAL mode: wait for the 1,000 rows to land.
        with anyio.fail_after(5):
            while path.stat().st_size < 1000 * 200:
                await anyio.sleep(0.01)
        assert len(_checkpoint_threads()) == 1
    assert _checkpoint_threads() == []  # closing the store joins its checkpointer
    async with SqliteLightningStore(path, watchdog_interval=None) as store:
        assert len(await store.query_rollouts()) == 1001
