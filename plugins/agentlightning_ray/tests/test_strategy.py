"""The ``ray`` strategy: arguments, registration, and real runs on a local Ray cluster.

The runs share one local cluster (``ray_cluster``, 2 CPUs); each runner asks for half a CPU.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
import ray.cloudpickle

from agentlightning_core import (
    Algorithm,
    AttemptedRollout,
    EnqueueRequest,
    Trainer,
    resolve_component,
    rollout,
)
from agentlightning_core.testing.agents import pid_agent
from agentlightning_ray import RayExecutionStrategy, RunnerActorError

# The agents below are defined here, so Ray sends them to the actors by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])


@rollout
async def hang_once_agent(task: int, rollout: AttemptedRollout) -> float:
    """Hangs on the first attempt of task 0 (its actor is killed meanwhile); rewards 1.0."""
    if task == 0 and rollout.attempt.sequence_id == 1:
        await anyio.sleep(300)
    return 1.0


class KillMidRollout(Algorithm):
    """Enqueue the tasks; once a runner is executing task 0, ``ray.kill`` its actor; wait for
    every rollout and read back, from the store, each rollout's status and attempts."""

    def __init__(self, strategy: RayExecutionStrategy) -> None:
        super().__init__()
        self.strategy = strategy
        self.killed: str | None = None
        self.outcomes: dict[Any, tuple[str, list[tuple[int, str, str | None]]]] = {}

    async def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> None:
        store = self.get_store()
        tasks = list(train_dataset or ())
        rollouts = await store.enqueue_many_rollouts([EnqueueRequest(input=t) for t in tasks])
        first = rollouts[0].rollout_id
        with anyio.fail_after(120):  # actors start slowly on two loaded cores
            while self.killed is None:
                busy = (await store.query_workers(status_in=["busy"])).items
                runner = next((w.worker_id for w in busy if w.current_rollout_id == first), None)
                if runner is None:
                    await anyio.sleep(0.05)
                    continue
                index = next(i for i in range(len(tasks)) if self.strategy.worker_id(i) == runner)
                ray.kill(self.strategy.runner_actors()[index])
                self.killed = runner
        await store.wait_for_rollouts([r.rollout_id for r in rollouts], timeout=120)
        for task, r in zip(tasks, rollouts, strict=True):
            attempts = (await store.query_attempts(r.rollout_id)).items
            status = (await store.get_rollout_by_id(r.rollout_id)).status.value
            self.outcomes[task] = (status, [(a.sequence_id, a.status.value, a.worker_id) for a in attempts])


# --- arguments and registration (no cluster) ---------------------------------------------


def test_registered_as_ray() -> None:
    strategy = resolve_component("execution_strategy", {"type": "ray", "num_cpus": 0.5})
    assert isinstance(strategy, RayExecutionStrategy) and strategy.num_cpus == 0.5


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"placement": "EVERYWHERE"}, "Unknown placement 'EVERYWHERE'"),
        ({"placement": "PACK", "num_cpus": 0}, "placement group bundle cannot be empty"),
        ({"num_cpus": -1}, "num_cpus must be a number >= 0, got -1"),
        ({"actor_options": {"max_restarts": 2}}, "give RayExecutionStrategy(max_restarts="),
        ({"actor_options": {"num_gpus": 1}}, "give RayExecutionStrategy(num_gpus=)"),
        ({"max_restarts": -2}, "or -1 for no limit, got -2"),
        ({"server_url": "store:4747"}, "server_url must start with http:// or https://"),
        ({"address": ""}, "address must be a Ray address"),
    ],
)
def test_bad_arguments_name_the_value_and_the_fix(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        RayExecutionStrategy(**kwargs)
    assert message in str(info.value)


def test_num_runners_contradicting_the_trainer_is_an_error() -> None:
    trainer = Trainer(strategy=RayExecutionStrategy(num_runners=3), n_runners=2, progress=False)
    with pytest.raises(ValueError, match=r"n_runners=2\) contradicts RayExecutionStrategy\(num_runners=3\)"):
        trainer.dev(pid_agent, [0])


def test_the_core_does_not_import_ray() -> None:
    import subprocess

    code = (
        "import sys, agentlightning_core as a; a.Trainer; a.get_plugin_manager(); print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


# --- runs on the shared local cluster ---------------------------------------------------


@pytest.mark.slow
def test_training_run_with_runners_as_actors(ray_cluster: Any) -> None:
    strategy = RayExecutionStrategy(num_cpus=0.5, placement="SPREAD")
    trainer = Trainer(
        algorithm={"type": "baseline", "n_epochs": 2}, strategy=strategy, n_runners=2, progress=False
    )
    baseline: Any = trainer.fit(pid_agent, list(range(6)), list(range(2)))
    assert [(e.epoch, e.mode, e.rollouts, e.succeeded) for e in baseline.history] == [
        (1, "train", 6, 6),
        (1, "val", 2, 2),
        (2, "train", 6, 6),
        (2, "val", 2, 2),
    ]
    pids = {int(r) for e in baseline.history for r in e.rewards}
    assert os.getpid() not in pids  # every rollout ran in an actor process, not in the driver
    assert strategy.store_url is not None and strategy.store_url.startswith("http://127.0.0.1:")
    assert strategy.restarts == 0
    assert 1 <= len(pids) <= 2  # at most one process per runner actor
    for actor in strategy.runner_actors().values():  # the run's actors are gone
        with pytest.raises(ray_cluster.exceptions.RayActorError):
            ray_cluster.get(actor.where.remote(), timeout=60)


def test_the_store_is_served_where_runner_hosts_can_reach_it(
    ray_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-host local cluster keeps the store on loopback; joining an existing cluster serves it
    on this node's IP even while the head is its only node (runner hosts may join later)."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("AGL_SERVER_HOST", raising=False)
    here = ray_cluster.util.get_node_ip_address()
    assert RayExecutionStrategy()._bind_host(ray_cluster) == "127.0.0.1"
    assert RayExecutionStrategy(address="auto")._bind_host(ray_cluster) == here
    assert RayExecutionStrategy(address="auto", server_host="10.1.2.3")._bind_host(ray_cluster) == "10.1.2.3"
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert RayExecutionStrategy()._bind_host(ray_cluster) == here


@pytest.mark.slow
def test_actor_killed_mid_rollout_its_rollout_succeeds_exactly_once(
    ray_cluster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    strategy = RayExecutionStrategy(num_cpus=0.5, max_restarts=1)
    algorithm = KillMidRollout(strategy)
    trainer = Trainer(algorithm=algorithm, strategy=strategy, n_runners=2, progress=False)
    with caplog.at_level(logging.WARNING, logger="agentlightning_ray"):
        trainer.fit(hang_once_agent, [0, 1, 2, 3])
    killed = algorithm.killed
    assert killed is not None
    status, attempts = algorithm.outcomes[0]
    assert status == "succeeded"
    assert [(seq, st) for seq, st, _ in attempts] == [(1, "unresponsive"), (2, "succeeded")]
    assert attempts[0][2] == killed
    for task in (1, 2, 3):
        assert algorithm.outcomes[task][0] == "succeeded"
        assert [st for _, st, _ in algorithm.outcomes[task][1]] == ["succeeded"]
    assert strategy.restarts == 1
    assert f"Runner actor {killed} died" in caplog.text
    assert f"(runner {killed}, whose actor died) marked unresponsive" in caplog.text


def test_runners_the_cluster_cannot_place_fail_with_the_resources(ray_cluster: Any) -> None:
    strategy = RayExecutionStrategy(num_cpus=8, start_timeout=3)
    trainer = Trainer(strategy=strategy, n_runners=1, progress=False)
    with pytest.raises(RunnerActorError) as info:
        trainer.dev(pid_agent, [0])
    message = str(info.value)
    assert "did not start within start_timeout=3.0s" in message
    assert "Each runner asks for {'CPU': 8.0}" in message and "CPU: 2" in message
    assert "num_cpus=0.5" in message


SCRIPT = """
from agentlightning_core import Trainer, rollout


@rollout
async def script_agent(task: int) -> float:
    return float(task) + 0.5


def main() -> None:
    trainer = Trainer(strategy={{"type": "ray", "address": "auto", "num_cpus": 0.5}}, n_runners=2, progress=False)
    algorithm = trainer.dev(script_agent, [1, 2, 3])
    print("rewards", sorted(r.reward for r in algorithm.results), flush=True)

{start}
"""


@pytest.mark.slow
@pytest.mark.parametrize("guarded", [True, False])
def test_an_agent_defined_in_the_driver_script(ray_cluster: Any, tmp_path: Any, guarded: bool) -> None:
    """Agents of the driver's script reach the actors (the script is loaded there as
    another module name); a script that trains at import time gets the fix in the error."""
    import subprocess

    script = tmp_path / "train.py"
    script.write_text(SCRIPT.format(start='if __name__ == "__main__":\n    main()' if guarded else "main()"))
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    if guarded:
        assert result.returncode == 0, result.stderr
        assert "rewards [1.5, 2.5, 3.5]" in result.stdout
    else:
        assert result.returncode != 0
        assert "RunnerActorError" in result.stderr
        assert 'Put the code that starts training under `if __name__ == "__main__":`' in result.stderr
