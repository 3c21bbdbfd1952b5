"""A new run on a SQLite file that holds unfinished rollouts of an earlier run, and the
trainer-wide rollout config, on the real SQLite store."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

from agentlightning_core import Algorithm, FastAlgorithm, RolloutConfig, Trainer, rollout
from agentlightning_core.store.base import EnqueueRequest
from agentlightning_sqlite import SqliteLightningStore


@rollout
def one(task: Any) -> float:
    return 1.0


def leave_unfinished(path: Path) -> list[str]:
    """An earlier run that stopped with two rollouts queued and one running."""

    async def main() -> list[str]:
        async with SqliteLightningStore(path, watchdog_interval=None) as store:
            queued = await store.enqueue_many_rollouts([EnqueueRequest(input="a"), EnqueueRequest(input="b")])
            await store.enqueue_rollout(input="c")
            await store.dequeue_rollout(worker_id="old-runner")
            return [r.rollout_id for r in queued]

    return anyio.run(main)


def statuses(path: Path) -> dict[Any, str]:
    async def main() -> dict[Any, str]:
        async with SqliteLightningStore(path, watchdog_interval=None) as store:
            return {r.input: r.status.value for r in (await store.query_rollouts()).items}

    return anyio.run(main)


def test_a_new_fit_cancels_the_unfinished_rollouts_of_an_earlier_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "runs.db"
    leave_unfinished(path)
    trainer = Trainer(algorithm="fast", store={"type": "sqlite", "path": str(path)}, progress=False)
    with caplog.at_level(logging.WARNING):
        trainer.fit(one, ["new"])
    assert statuses(path) == {"a": "cancelled", "b": "cancelled", "c": "cancelled", "new": "succeeded"}
    (warning,) = [r.getMessage() for r in caplog.records if "unfinished" in r.getMessage()]
    assert "3 unfinished rollout(s) of an earlier run" in warning
    assert "Trainer(unfinished_rollouts='keep')" in warning


def test_keep_lets_this_run_execute_them(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    leave_unfinished(path)
    trainer = Trainer(
        algorithm="fast",
        store={"type": "sqlite", "path": str(path)},
        unfinished_rollouts="keep",
        progress=False,
    )
    algorithm = trainer.fit(one, ["new"])
    assert isinstance(algorithm, FastAlgorithm)
    after = statuses(path)
    assert after["new"] == "succeeded"
    assert after["a"] != "cancelled" and after["b"] != "cancelled"  # left to the runners, not cancelled


class EnqueueWithoutConfig(Algorithm):
    configs: list[RolloutConfig] = []

    async def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> None:
        store = self.get_store()
        first = await store.enqueue_rollout(input=1)
        (second,) = await store.enqueue_many_rollouts([EnqueueRequest(input=2)])
        third = await store.enqueue_rollout(input=3, config=RolloutConfig(max_attempts=7))
        ids = [first.rollout_id, second.rollout_id, third.rollout_id]
        await store.wait_for_rollouts(ids)
        self.configs = [(await store.get_rollout_by_id(i)).config for i in ids]


def test_trainer_rollout_config_is_the_default_of_enqueued_rollouts(tmp_path: Path) -> None:
    config = RolloutConfig(max_attempts=5, retry_condition=["failed", "unresponsive"], timeout_seconds=30.0)
    algorithm = EnqueueWithoutConfig()
    Trainer(
        algorithm=algorithm,
        store={"type": "sqlite", "path": str(tmp_path / "c.db")},
        rollout_config=config,
        progress=False,
    ).fit(one)
    assert algorithm.configs[:2] == [config, config]
    assert algorithm.configs[2].max_attempts == 7  # an explicit config wins


def test_rollout_config_must_be_a_rollout_config() -> None:
    with pytest.raises(
        TypeError, match=r"rollout_config must be an agentlightning_core\.RolloutConfig, got dict"
    ):
        Trainer(rollout_config={"max_attempts": 3})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unfinished_rollouts must be 'cancel' or 'keep', got 'resume'"):
        Trainer(unfinished_rollouts="resume")  # type: ignore[arg-type]
