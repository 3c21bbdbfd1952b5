"""Crash tolerance of the client-server strategy: runner processes SIGKILLed at random.

200 rollouts, 4 runner processes, a killer thread SIGKILLing a random runner process at
random moments (restarted by the strategy), ``max_attempts=3`` and a short
``unresponsive_seconds``. What is asserted, per rollout:

- it ends ``succeeded``, with exactly one ``succeeded`` attempt, and that attempt is the
  latest one (every earlier attempt ended ``unresponsive`` or ``failed``);
- its final reward, read the way algorithms read it (the latest attempt's reward spans),
  is the one the succeeded attempt computed: the agent's reward encodes the task and the
  attempt's sequence id, so a reward recorded by any other attempt would not match.

Earlier attempts may hold a reward span of their own when a runner was killed between
storing its spans and storing its status (a window of one request); such attempts are
``unresponsive``, so no reader takes their reward as the rollout's. They are counted and
reported, not forbidden.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread
import attrs

from agentlightning_core import Algorithm, ClientServerExecutionStrategy, LightningStoreClient, Trainer
from agentlightning_core.emitter import get_reward_value
from agentlightning_core.semconv import REWARD_SPAN
from agentlightning_core.store.base import EnqueueRequest
from agentlightning_core.testing.agents import attempt_reward, sleepy_attempt_agent
from agentlightning_core.types import AttemptStatus, RolloutConfig

N_ROLLOUTS = int(os.environ.get("AGL_CRASH_ROLLOUTS", "200"))
N_RUNNERS = 4
N_KILLS = 10
CONFIG = RolloutConfig(
    max_attempts=3,
    unresponsive_seconds=2.0,
    retry_condition=[AttemptStatus.UNRESPONSIVE, AttemptStatus.FAILED, AttemptStatus.TIMEOUT],
)


@attrs.define
class Outcome:
    task: int
    status: str
    attempts: list[tuple[int, str]]  # (sequence id, status)
    rewards: dict[int, list[float]]  # attempt sequence id -> reward values of its reward spans
    final_reward: list[float]  # reward values of the latest attempt


class EnqueueAndCollect(Algorithm):
    """Enqueue the tasks with CONFIG, wait for every rollout, collect attempts and rewards."""

    def __init__(self, started: threading.Event) -> None:
        self.started = started
        self.outcomes: list[Outcome] = []

    async def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> None:
        store = self.get_store()
        tasks = list(train_dataset or ())
        rollouts = await store.enqueue_many_rollouts([EnqueueRequest(input=t, config=CONFIG) for t in tasks])
        self.started.set()
        await store.wait_for_rollouts([r.rollout_id for r in rollouts], timeout=50.0)
        for task, rollout in zip(tasks, rollouts, strict=True):
            rid = rollout.rollout_id
            attempts = (await store.query_attempts(rid)).items
            rewards = {}
            for attempt in attempts:
                spans = (await store.query_spans(rid, attempt.attempt_id, name=REWARD_SPAN)).items
                rewards[attempt.sequence_id] = [v for s in spans if (v := get_reward_value(s)) is not None]
            latest = (await store.query_spans(rid, "latest", name=REWARD_SPAN)).items
            self.outcomes.append(
                Outcome(
                    task=task,
                    status=(await store.get_rollout_by_id(rid)).status.value,
                    attempts=[(a.sequence_id, a.status.value) for a in attempts],
                    rewards=rewards,
                    final_reward=[v for s in latest if (v := get_reward_value(s)) is not None],
                )
            )


async def kill_runners(
    strategy: ClientServerExecutionStrategy, started: threading.Event, done: threading.Event
) -> list[int]:
    """SIGKILL a random runner process that is mid-rollout every 0.1-0.4 s, N_KILLS times.

    "Mid-rollout": the store (asked over HTTP, like any client) shows its worker busy since
    after the process started, so kills do not land during a process's start-up.
    """
    rng = random.Random(7)
    killed: list[int] = []
    first_seen: dict[int, float] = {}
    await anyio.to_thread.run_sync(started.wait, 30)
    assert strategy.server_url is not None
    async with LightningStoreClient(strategy.server_url) as client:
        while len(killed) < N_KILLS and not done.is_set():
            await anyio.sleep(rng.uniform(0.1, 0.4))
            now = time.time()
            pids = strategy.runner_pids()
            for pid in pids.values():
                first_seen.setdefault(pid, now)
            pid_of = {
                worker_id: pids[index]
                for index, worker_id in strategy.runner_worker_ids().items()
                if index in pids
            }
            busy = (await client.query_workers(status_in=["busy"])).items
            working = [
                pid_of[w.worker_id]
                for w in busy
                if w.worker_id in pid_of
                and w.last_busy_time is not None
                and w.last_busy_time > first_seen[pid_of[w.worker_id]]
            ]
            if working:
                pid = rng.choice(working)
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
    return killed


def test_rollouts_survive_runner_processes_killed_at_random() -> None:
    started, done = threading.Event(), threading.Event()
    strategy = ClientServerExecutionStrategy(restart_runners=True, graceful_seconds=5.0)
    algorithm = EnqueueAndCollect(started)
    trainer = Trainer(
        algorithm=algorithm,
        strategy=strategy,
        store={"type": "memory", "watchdog_interval": 0.1},
        runner={"type": "agent", "heartbeat_interval": 0.25, "poll_interval": 0.02},
        n_runners=N_RUNNERS,
        progress=False,
    )
    killed: list[int] = []
    killer = threading.Thread(
        target=lambda: killed.extend(anyio.run(kill_runners, strategy, started, done)), daemon=True
    )
    killer.start()
    try:
        trainer.fit(sleepy_attempt_agent, list(range(N_ROLLOUTS)))
    finally:
        done.set()
        killer.join(10)
    assert strategy.runner_pids() == {}  # every runner process is gone

    assert len(killed) == N_KILLS
    assert strategy.restarts == N_KILLS  # every killed runner process was restarted
    outcomes = algorithm.outcomes
    assert len(outcomes) == N_ROLLOUTS
    not_succeeded = [o for o in outcomes if o.status != "succeeded"]
    assert not_succeeded == []
    for o in outcomes:
        succeeded = [seq for seq, status in o.attempts if status == "succeeded"]
        assert len(succeeded) == 1, o
        (seq,) = succeeded
        assert seq == len(o.attempts), o  # the succeeded attempt is the latest one
        assert all(status in ("unresponsive", "failed") for _, status in o.attempts[:-1]), o
        assert o.rewards[seq] == [attempt_reward(o.task, seq)], o
        assert o.final_reward == [attempt_reward(o.task, seq)], o
    retried = [o for o in outcomes if len(o.attempts) > 1]
    unresponsive = sum(status == "unresponsive" for o in outcomes for _, status in o.attempts)
    assert retried and unresponsive >= 1  # lost workers were noticed (by the parent or the watchdog)
    stale = sum(bool(o.rewards[seq]) for o in outcomes for seq, _ in o.attempts[:-1])
    print(
        f"\n{len(retried)} rollouts retried, {unresponsive} unresponsive attempts, {stale} with a stale reward"
    )
