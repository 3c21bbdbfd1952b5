"""Baseline through the public API, loaded by its registered name."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from agentlightning_baseline import Baseline
from agentlightning_core import Hook, Trainer, component_names, rollout


@rollout
async def scored(task):  # type: ignore[no-untyped-def]
    if task < 0:
        raise ValueError("negative task")
    return float(task)


class QueueProbe(Hook):
    """Records how many rollouts were outstanding (queued or running) at each rollout start."""

    def __init__(self) -> None:
        self.outstanding: list[int] = []

    async def on_rollout_start(self, *, runner: Any, **kwargs: Any) -> None:
        stats = await runner.store.statistics()
        self.outstanding.append(stats["queue_length"] + stats["live_attempts"])


def make_trainer(**kwargs: Any) -> Trainer:
    return Trainer(
        progress=False,
        store={"type": "memory", "watchdog_interval": None},
        adapter={"type": "tracer_triplet", "on_bad_data": "drop"},
        **kwargs,
    )


def test_registered_as_baseline() -> None:
    assert "baseline" in component_names("algorithm")


def test_epochs_with_bounded_queue_and_statistics() -> None:
    probe = QueueProbe()
    trainer = make_trainer(
        algorithm={"type": "baseline", "n_epochs": 2, "max_queue_length": 3}, n_runners=2, hooks=[probe]
    )
    baseline = trainer.fit(scored, [1, 2, 3, 4, 5, -1, 6], [10, 20])
    assert isinstance(baseline, Baseline)
    summary = [(s.epoch, s.mode, s.rollouts, s.succeeded, s.failed, s.mean_reward) for s in baseline.history]
    assert summary == [
        (1, "train", 7, 6, 1, 3.5),
        (1, "val", 2, 2, 0, 15.0),
        (2, "train", 7, 6, 1, 3.5),
        (2, "val", 2, 2, 0, 15.0),
    ]
    assert baseline.history[0].min_reward == 1.0 and baseline.history[0].max_reward == 6.0
    assert max(probe.outstanding) <= 3
    # The adapter saw every succeeded rollout (none has an LLM call, so all were dropped); the
    # epoch statistics report its drops.
    assert trainer.adapter is not None and trainer.adapter.stats.dropped == 16  # type: ignore[attr-defined]
    assert [s.drop_counts for s in baseline.history] == [{"no_llm_call": n} for n in (6, 2, 6, 2)]
    assert [s.dropped for s in baseline.history] == [6, 2, 6, 2]


@rollout
async def chatty(task):  # type: ignore[no-untyped-def]
    """Returns its trace: one LLM call and a reward; fails on negative tasks."""
    from agentlightning_core.testing.adapter import llm_span, reward_span

    if task < 0:
        raise ValueError("negative task")
    answer = {"role": "assistant", "content": str(task)}
    return [llm_span(1, [{"role": "user", "content": "q"}], answer), reward_span(2, float(task), start=2)]


def test_failed_rollouts_are_counted_not_adapted() -> None:
    """A failed rollout has no complete trace; under the default raise policy it must not abort fit."""
    trainer = Trainer(
        progress=False, algorithm="baseline", store={"type": "memory", "watchdog_interval": None}
    )
    baseline = trainer.fit(chatty, [1, -1, 3])
    (stats,) = baseline.history  # type: ignore[attr-defined]
    assert (stats.rollouts, stats.succeeded, stats.failed, stats.samples) == (3, 2, 1, 2)
    assert stats.rewards == [1.0, 3.0] and stats.drop_counts == {}


def test_validation_only_after_last_epoch() -> None:
    baseline = make_trainer(algorithm=Baseline(n_epochs=2, val_every_epoch=False)).fit(scored, [1], [2])
    assert [(s.epoch, s.mode) for s in baseline.history] == [(1, "train"), (2, "train"), (2, "val")]  # type: ignore[attr-defined]


def test_an_agent_without_llm_calls_is_evaluated_not_aborted(caplog: pytest.LogCaptureFixture) -> None:
    """The default adapter (raise policy) rejects every trace; an evaluation counts and goes on."""
    trainer = Trainer(progress=False, algorithm={"type": "baseline", "n_epochs": 2}, n_runners=2)
    with caplog.at_level(logging.WARNING):
        baseline = trainer.fit(scored, [1, 2, 3, 4], [5])
    assert isinstance(baseline, Baseline)
    assert [(s.mode, s.succeeded, s.samples, s.drop_counts) for s in baseline.history] == [
        ("train", 4, 0, {"no_llm_call": 4}),
        ("val", 1, 0, {"no_llm_call": 1}),
        ("train", 4, 0, {"no_llm_call": 4}),
        ("val", 1, 0, {"no_llm_call": 1}),
    ]
    assert baseline.drop_counts == {"no_llm_call": 10}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    (warning,) = [w for w in warnings if "rejected" in w]  # one per reason per run
    assert "Trainer(adapter={'type': 'tracer_triplet', 'on_bad_data': 'drop'})" in warning
    assert "rollout ro-" in warning


def test_bad_trace_error_names_the_argument_to_change() -> None:
    from agentlightning_core.adapter.base import BadTraceError
    from agentlightning_core.adapter.messages import TraceToMessages

    with pytest.raises(BadTraceError) as info:
        TraceToMessages().adapt([])
    assert info.value.reason == "no_llm_call"
    assert str(info.value).endswith("give Trainer(adapter={'type': 'messages', 'on_bad_data': 'drop'})")


@pytest.mark.parametrize("kwargs", [{"n_epochs": 0}, {"max_queue_length": 0}, {"n_epochs": True}])
def test_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"Baseline (n_epochs|max_queue_length) must be an integer >= 1"):
        Baseline(**kwargs)


def test_unknown_name_when_plugin_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentlightning_core.errors import UnknownComponentError
    from agentlightning_core.plugins import reset_plugins

    monkeypatch.setenv("AGL_DISABLE_PLUGINS", "baseline")
    reset_plugins()
    try:
        with pytest.raises(UnknownComponentError, match=r"pip install '\./plugins/agentlightning_baseline'"):
            Trainer(algorithm="baseline")
    finally:
        monkeypatch.delenv("AGL_DISABLE_PLUGINS")
        reset_plugins()


@pytest.mark.anyio
async def test_rewards_are_read_from_the_attempts() -> None:
    """Attempts ended elsewhere with a reward and no span count with that reward."""
    import anyio

    from agentlightning_core import InMemoryLightningStore

    async def work(store: InMemoryLightningStore, stop: anyio.Event) -> None:
        while not stop.is_set():
            attempted = await store.dequeue_rollout()
            if attempted is None:
                await anyio.sleep(0.001)
                continue
            await store.update_attempt(
                attempted.rollout_id, attempted.attempt_id, status="succeeded", reward=10.0 * attempted.input
            )

    baseline = Baseline(max_queue_length=2)
    async with InMemoryLightningStore(watchdog_interval=None) as store:
        baseline.set_store(store)
        stop = anyio.Event()
        async with anyio.create_task_group() as tg:
            tg.start_soon(work, store, stop)
            await baseline.run([1, 2, 3], [4])
            stop.set()
    assert [(s.mode, s.succeeded, s.rewards) for s in baseline.history] == [
        ("train", 3, [10.0, 20.0, 30.0]),
        ("val", 1, [40.0]),
    ]
