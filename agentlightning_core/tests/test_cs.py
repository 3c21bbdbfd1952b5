"""The client-server strategy: runner processes, roles, failures, Ctrl+C (real processes, real HTTP)."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import socket
import subprocess
import textwrap
import threading
from typing import Any

import pytest

from agentlightning_core import ClientServerExecutionStrategy, Trainer, algo, rollout
from agentlightning_core.execution.cs import RunnerProcessError
from agentlightning_core.testing.agents import crash_once_agent, double_agent, pid_agent
from agentlightning_core.testing.processes import python_command
from agentlightning_core.types import RolloutConfig


def make_trainer(**kwargs: Any) -> Trainer:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("store", {"type": "memory", "watchdog_interval": None})
    kwargs.setdefault("runner", {"type": "agent", "poll_interval": 0.02})
    return Trainer(**kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_decorated_agent_pickles_by_reference() -> None:
    assert pickle.loads(pickle.dumps(double_agent)) is double_agent

    def local(task):  # type: ignore[no-untyped-def]
        return 1.0

    with pytest.raises((pickle.PicklingError, AttributeError), match="local"):
        pickle.dumps(rollout(local))


def test_dev_runs_rollouts_in_runner_processes() -> None:
    strategy = ClientServerExecutionStrategy()
    algorithm = make_trainer(strategy=strategy, n_runners=2).dev(pid_agent, [1, 2, 3, 4], [5])
    results = algorithm.results  # type: ignore[attr-defined]
    assert [(s.rollout.mode, s.rollout.status) for s in results] == [("train", "succeeded")] * 4 + [
        ("val", "succeeded")
    ]
    pids = {s.reward for s in results}
    assert float(os.getpid()) not in pids and 1 <= len(pids) <= 2
    assert strategy.server_url is not None and strategy.server_url.startswith("http://127.0.0.1:")
    assert strategy.runner_pids() == {} and strategy.restarts == 0


def test_strategy_by_name_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGL_ROLE", "runner")
    monkeypatch.setenv("AGL_SERVER_PORT", "4999")
    trainer = make_trainer(strategy="cs")
    assert isinstance(trainer.strategy, ClientServerExecutionStrategy)
    assert (trainer.strategy.role, trainer.strategy.server_port) == ("runner", 4999)
    monkeypatch.setenv("AGL_ROLE", "server")
    with pytest.raises(ValueError, match=r"Unknown role 'server'.*AGL_ROLE.*algorithm, runner, both"):
        ClientServerExecutionStrategy()


def test_unpicklable_agent_is_refused_with_a_hint() -> None:
    @rollout
    async def local(task):  # type: ignore[no-untyped-def]
        return 1.0

    strategy = ClientServerExecutionStrategy()
    with pytest.raises(TypeError, match=r"pickl.*module level"):
        make_trainer(strategy=strategy).dev(local, [1])
    assert strategy.runner_pids() == {}


def test_dead_runner_is_reported_and_stops_the_run_without_restarts() -> None:
    strategy = ClientServerExecutionStrategy()
    with pytest.raises(
        RunnerProcessError, match=r"agl-runner-0 was killed by SIGKILL.*restart_runners is off"
    ):
        make_trainer(strategy=strategy).dev(crash_once_agent, [0])
    assert strategy.runner_pids() == {}


def test_a_dead_runners_attempt_is_requeued_or_failed_at_once() -> None:
    """No watchdog, no unresponsive_seconds: the parent marks the dead runner's attempt."""
    outcome: dict[str, Any] = {}

    @algo
    async def run(store, train_dataset):  # type: ignore[no-untyped-def]
        retried = await store.enqueue_rollout(
            0, config=RolloutConfig(max_attempts=2, retry_condition=["unresponsive"])
        )
        plain = await store.enqueue_rollout(0, config=RolloutConfig(max_attempts=1, retry_condition=[]))
        ids = [retried.rollout_id, plain.rollout_id]
        outcome["finished"] = len(await store.wait_for_rollouts(ids, timeout=30))
        for name, rid in zip(("retried", "plain"), ids, strict=True):
            attempts = (await store.query_attempts(rid)).items
            rollout_ = await store.get_rollout_by_id(rid)
            outcome[name] = (rollout_.status.value, [a.status.value for a in attempts])
            outcome[f"{name}_workers"] = {a.worker_id for a in attempts}

    strategy = ClientServerExecutionStrategy(restart_runners=True)
    make_trainer(algorithm=run, strategy=strategy).fit(
        crash_once_agent, []
    )  # kills every first attempt of task 0
    assert outcome["finished"] == 2
    assert outcome["retried"] == ("succeeded", ["unresponsive", "succeeded"])
    assert outcome["plain"] == ("failed", ["unresponsive"])
    assert strategy.restarts == 2
    assert (
        outcome["retried_workers"] == outcome["plain_workers"] == set(strategy.runner_worker_ids().values())
    )


def test_worker_ids_name_the_machine_and_the_run() -> None:
    strategy = ClientServerExecutionStrategy(worker_index_offset=10)
    assert strategy.worker_id(3) == f"runner-{socket.gethostname()}-{os.getpid()}-3"
    assert ClientServerExecutionStrategy(worker_id_prefix="gpu-node-7").worker_id(0) == "gpu-node-7-0"
    with pytest.raises(ValueError, match="worker_id_prefix must be a non-empty string"):
        ClientServerExecutionStrategy(worker_id_prefix="")


def test_strategy_options_are_checked() -> None:
    for kwargs, message in [
        ({"graceful_seconds": -1}, "graceful_seconds must be a positive number of seconds, got -1"),
        ({"connect_timeout": float("inf")}, "connect_timeout must be a positive number of seconds, got inf"),
        ({"max_restarts": -1}, "max_restarts must be an integer >= 0 or None, got -1"),
        ({"worker_index_offset": 1.5}, "worker_index_offset must be an integer >= 0, got 1.5"),
    ]:
        with pytest.raises(ValueError, match=message):
            ClientServerExecutionStrategy(**kwargs)

    async def nothing(*args: Any) -> None:
        return None

    with pytest.raises(ValueError, match="n_runners must be an integer >= 1, got 0"):
        ClientServerExecutionStrategy().execute(nothing, nothing, None, n_runners=0)  # type: ignore[arg-type]


def test_algorithm_exception_stops_runners_and_is_raised() -> None:
    @algo
    async def broken(store):  # type: ignore[no-untyped-def]
        rollout_ = await store.enqueue_rollout(1)
        await store.wait_for_rollouts([rollout_.rollout_id], timeout=30)
        raise KeyError("algorithm bug")

    strategy = ClientServerExecutionStrategy()
    with pytest.raises(KeyError, match="algorithm bug") as info:
        make_trainer(algorithm=broken, strategy=strategy, n_runners=2).fit(double_agent, [])
    assert any(entry.name == "broken" for entry in info.traceback)
    assert strategy.runner_pids() == {}


def test_algorithm_and_runner_roles_work_together() -> None:
    port = free_port()
    outcome: dict[str, Any] = {}

    def serve() -> None:
        try:
            strategy = ClientServerExecutionStrategy("algorithm", server_port=port)
            outcome["algorithm"] = make_trainer(strategy=strategy).dev(double_agent, [1, 2, 3])
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    server_side = threading.Thread(target=serve)
    server_side.start()
    try:
        runners = ClientServerExecutionStrategy(
            "runner", server_port=port, server_lost_seconds=0.5, connect_timeout=30, terminate_seconds=1.0
        )
        # Returns once the algorithm is done and its server has gone away.
        make_trainer(strategy=runners, n_runners=2).dev(double_agent, [])
    finally:
        server_side.join(30)
    assert "error" not in outcome, outcome
    assert [s.reward for s in outcome["algorithm"].results] == [2.0, 4.0, 6.0]
    assert runners.runner_pids() == {}


def test_runner_role_gives_up_when_no_server_answers() -> None:
    runners = ClientServerExecutionStrategy("runner", server_port=free_port(), connect_timeout=0.3)
    with pytest.raises(RunnerProcessError, match=r"No store server answered at http://127.0.0.1:"):
        make_trainer(strategy=runners).dev(double_agent, [])


_SIGINT_CHILD = textwrap.dedent(
    """
    import json, os, sys, anyio
    from agentlightning_core import Trainer, ClientServerExecutionStrategy, algo
    from agentlightning_core.testing.agents import sleep_agent

    state = {}

    @algo
    async def run(store, train_dataset):
        state["store"] = store
        rollouts = await store.enqueue_many_rollouts(
            [__import__("agentlightning_core").EnqueueRequest(input=t) for t in train_dataset]
        )
        while True:  # both runners are inside the agent
            by_status = (await store.statistics())["rollouts_by_status"]
            if by_status["preparing"] + by_status["running"] == 2:
                break
            await anyio.sleep(0.05)
        print("running", json.dumps(list(strategy.runner_pids().values())), flush=True)
        await store.wait_for_rollouts([r.rollout_id for r in rollouts])

    strategy = ClientServerExecutionStrategy(graceful_seconds=30)
    trainer = Trainer(algorithm=run, strategy=strategy, n_runners=2, progress=False,
                      store={"type": "memory", "watchdog_interval": None})
    try:
        trainer.fit(sleep_agent, [60.0] * 4)
    except KeyboardInterrupt:
        async def summary():
            store = state["store"]
            stats = await store.statistics()
            attempts = [a.status for r in await store.query_rollouts() for a in await store.query_attempts(r.rollout_id)]
            return {"by_status": stats["rollouts_by_status"], "attempts": attempts, "pids": strategy.runner_pids()}
        print(json.dumps(anyio.run(summary)), flush=True)
        sys.exit(130)
    print("finished without interruption", flush=True)
    """
)


def test_ctrl_c_stops_runner_processes_and_closes_their_attempts() -> None:
    proc = subprocess.Popen(
        python_command("-c", _SIGINT_CHILD),  # Ctrl+C reaches it even if the suite runs in the background
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    runner_pids: list[int] = []
    watchdog = threading.Timer(60, proc.kill)  # a hung child must not hang the test run
    watchdog.start()
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("running"), f"child said {line!r}: {proc.stderr.read() if proc.stderr else ''}"
        runner_pids = json.loads(line.split(" ", 1)[1])
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in runner_pids:  # never leave a runner behind, whatever happened
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    state = json.loads(out.strip().splitlines()[-1])
    assert sorted(state["attempts"]) == ["failed", "failed"]  # in-flight attempts were closed
    assert state["by_status"]["running"] == 0 and state["by_status"]["queuing"] == 2
    assert state["pids"] == {}
    for pid in runner_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
