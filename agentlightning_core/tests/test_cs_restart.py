"""With the default RolloutConfig, a runner process killed mid-rollout under ``cs`` with
``restart_runners=True`` loses no rollout: its attempt is ``unresponsive`` and retried."""

from __future__ import annotations

from agentlightning_core import ClientServerExecutionStrategy, FastAlgorithm, Trainer
from agentlightning_core.testing.agents import crash_once_agent


def test_a_killed_runner_loses_no_rollout_with_the_default_config() -> None:
    strategy = ClientServerExecutionStrategy(restart_runners=True)
    trainer = Trainer(
        strategy=strategy, n_runners=2, store={"type": "memory", "watchdog_interval": None}, progress=False
    )
    algorithm = trainer.dev(crash_once_agent, [0, 1, 2, 3])
    assert isinstance(algorithm, FastAlgorithm)
    assert [(s.rollout.status, s.reward) for s in algorithm.results] == [("succeeded", 1.0)] * 4
    assert strategy.restarts == 1
