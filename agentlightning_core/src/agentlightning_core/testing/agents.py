"""Agents for tests and benchmarks of runner processes.

Runner processes receive the agent by pickle, so it must be importable: tests run with
pytest's ``importlib`` import mode cannot define it in the test module itself.
"""

from __future__ import annotations

import os
import random
import signal

import anyio

from agentlightning_core.litagent.decorators import rollout
from agentlightning_core.types import AttemptedRollout

__all__ = [
    "attempt_reward",
    "crash_once_agent",
    "double_agent",
    "pid_agent",
    "sleep_agent",
    "sleepy_attempt_agent",
]


def attempt_reward(task: int, attempt_sequence_id: int) -> float:
    """The reward :data:`sleepy_attempt_agent` gives: names the task and the attempt."""
    return float(task * 10 + attempt_sequence_id)


@rollout
async def double_agent(task: float) -> float:
    """Reward: twice the task."""
    return float(task) * 2


@rollout
async def sleepy_attempt_agent(task: int, rollout: AttemptedRollout) -> float:
    """Sleeps 20-120 ms (so a killed runner dies mid-rollout), then rewards ``attempt_reward``."""
    await anyio.sleep(random.uniform(0.02, 0.12))
    return attempt_reward(task, rollout.attempt.sequence_id)


@rollout
async def crash_once_agent(task: int, rollout: AttemptedRollout) -> float:
    """Kills its own process (SIGKILL) on a first attempt of task 0; rewards 1.0 otherwise."""
    if task == 0 and rollout.attempt.sequence_id == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return 1.0


@rollout
async def pid_agent(task: object) -> float:
    """Reward: the id of the process that ran the rollout."""
    return float(os.getpid())


@rollout
async def sleep_agent(task: float) -> float:
    """Sleeps ``task`` seconds, rewards 1.0."""
    await anyio.sleep(float(task))
    return 1.0
