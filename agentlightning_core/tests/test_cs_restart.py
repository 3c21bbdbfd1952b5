"""With the default RolloutConfig, a runner process killed mid-rollout under ``cs`` with
``restart_runners=True`` loses no rollout: its attempt is ``unresponsive`` and retried."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

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


ROLES = """
import sys
from agentlightning_core import ClientServerExecutionStrategy, Trainer
from agentlightning_core.testing.agents import sleep_agent

if __name__ == "__main__":
    strategy = ClientServerExecutionStrategy(role=sys.argv[1], server_port=int(sys.argv[2]))
    trainer = Trainer(algorithm="fast", strategy=strategy, n_runners=2, progress=False,
                      store={"type": "memory", "watchdog_interval": None})
    trainer.fit(sleep_agent, [0.05] * 6)
    print("done", sys.argv[1], flush=True)
"""


def test_runner_machine_ends_without_warnings_when_the_job_is_over(tmp_path: Path) -> None:
    """Role ``runner`` outlives the algorithm's server by design; that end is normal, not a warning."""
    script = tmp_path / "job.py"
    script.write_text(ROLES)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    algorithm = subprocess.Popen(
        [sys.executable, str(script), "algorithm", port],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        runners = subprocess.run(
            [sys.executable, str(script), "runner", port],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        out, err = algorithm.communicate(timeout=60)
    finally:
        if algorithm.poll() is None:
            algorithm.kill()
            algorithm.wait()
    assert algorithm.returncode == 0 and "done algorithm" in out, err
    assert runners.returncode == 0 and "done runner" in runners.stdout, runners.stderr
    assert "WARNING" not in runners.stderr.upper() and runners.stderr.strip() == "", runners.stderr
