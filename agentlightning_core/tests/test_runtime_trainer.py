"""Trainer, algorithms and the shared-memory strategy, end to end on real components."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import textwrap
import threading
import time
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.from_thread
import pytest

from agentlightning_core import (
    Algorithm,
    FastAlgorithm,
    InMemoryLightningStore,
    LitAgentRunner,
    PromptTemplate,
    Trainer,
    algo,
    prompt_rollout,
    rollout,
)
from agentlightning_core.errors import UnknownComponentError
from agentlightning_core.testing.processes import python_command
from agentlightning_core.trainer._progress import ProgressDisplay


@rollout
async def double(task):  # type: ignore[no-untyped-def]
    return float(task) * 2


def make_trainer(**kwargs: Any) -> Trainer:
    kwargs.setdefault("progress", False)
    kwargs.setdefault("store", {"type": "memory", "watchdog_interval": None})
    return Trainer(**kwargs)


def test_dev_runs_every_task_once_with_several_runners() -> None:
    algorithm = make_trainer(n_runners=3).dev(double, [1, 2, 3], [10])
    assert isinstance(algorithm, FastAlgorithm)
    assert [(s.rollout.mode, s.rollout.status, s.reward) for s in algorithm.results] == [
        ("train", "succeeded", 2.0),
        ("train", "succeeded", 4.0),
        ("train", "succeeded", 6.0),
        ("val", "succeeded", 20.0),
    ]


def test_components_by_every_spec_form() -> None:
    trainer = make_trainer(
        algorithm="fast",
        runner={"type": "agent", "poll_interval": 0.01},
        tracer=lambda: __import__("agentlightning_core.tracer.otel", fromlist=["OtelTracer"]).OtelTracer(),
        strategy="agentlightning_core.execution.shm:SharedMemoryExecutionStrategy",
        adapter="tracer_triplet",
    )
    assert type(trainer.store) is InMemoryLightningStore
    result = trainer.fit(double, [5])
    assert result.results[0].reward == 10.0  # type: ignore[attr-defined]


def test_unknown_component_name_is_reported() -> None:
    with pytest.raises(UnknownComponentError, match="Unknown store 'redis'"):
        Trainer(store="redis")


def test_initial_resources_reach_the_agent_and_algorithm() -> None:
    @prompt_rollout
    def agent(task, prompt_template):  # type: ignore[no-untyped-def]
        return float(prompt_template.format(x=task))

    seen: dict[str, Any] = {}

    @algo
    async def check(store, train_dataset, initial_resources, algorithm):  # type: ignore[no-untyped-def]
        seen["initial"] = initial_resources
        seen["stop"] = algorithm.stop_requested
        rollouts = await store.enqueue_many_rollouts(
            [__import__("agentlightning_core").EnqueueRequest(input=t) for t in train_dataset]
        )
        done = await store.wait_for_rollouts([r.rollout_id for r in rollouts], timeout=10)
        seen["statuses"] = [r.status for r in done]

    template = PromptTemplate("{x}1")
    make_trainer(algorithm=check, initial_resources={"prompt_template": template}).fit(agent, [1, 2])
    assert seen == {
        "initial": {"prompt_template": template},
        "stop": False,
        "statuses": ["succeeded", "succeeded"],
    }


def test_sync_algorithm_runs_in_a_thread() -> None:
    class SyncAlgorithm(Algorithm):
        def run(
            self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
        ) -> None:
            store = self.get_store()
            rollout_ = anyio.from_thread.run(store.enqueue_rollout, 3)
            done = anyio.from_thread.run(store.wait_for_rollouts, [rollout_.rollout_id], 10)
            self.status = done[0].status

    algorithm = SyncAlgorithm()
    assert not algorithm.is_async()
    make_trainer(algorithm=algorithm).fit(double, [])
    assert algorithm.status == "succeeded"


def test_algorithm_exception_is_raised_with_its_traceback() -> None:
    @algo
    async def broken(store):  # type: ignore[no-untyped-def]
        raise KeyError("algorithm bug")

    with pytest.raises(KeyError, match="algorithm bug") as info:
        make_trainer(algorithm=broken, n_runners=2).fit(double, [1])
    assert any(entry.name == "broken" for entry in info.traceback)


class CrashingRunner(LitAgentRunner[Any]):
    async def iter(self, *, stop: Any = None) -> None:
        raise OSError("runner infrastructure failure")


def test_runner_exception_stops_the_algorithm_and_is_raised() -> None:
    started = threading.Event()

    @algo
    async def waits_forever(store):  # type: ignore[no-untyped-def]
        started.set()
        await anyio.sleep_forever()

    with pytest.raises(OSError, match="runner infrastructure failure"):
        make_trainer(algorithm=waits_forever, runner=CrashingRunner).fit(double, [1])
    assert started.is_set()


def test_max_rollouts_ends_the_run_when_runners_are_done() -> None:
    @algo
    async def endless(store):  # type: ignore[no-untyped-def]
        await store.enqueue_many_rollouts(
            [__import__("agentlightning_core").EnqueueRequest(input=i) for i in range(50)]
        )
        await anyio.sleep_forever()

    trainer = make_trainer(algorithm=endless, n_runners=2, max_rollouts=3)
    trainer.fit(double, [])

    async def count() -> int:
        return (await trainer.store.statistics())["rollouts_by_status"]["succeeded"]  # type: ignore[no-any-return]

    assert anyio.run(count) == 6


@pytest.mark.parametrize(
    ("agent", "train", "error", "message"),
    [
        (lambda task: 1.0, [1], TypeError, "decorate <lambda> with @agentlightning_core.rollout"),
        (object(), [1], TypeError, "must be a LitAgent"),
        (double, (i for i in range(3)), TypeError, "train_dataset must be a sequence.*generator.*list"),
        (double, "abc", TypeError, "train_dataset must be a sequence"),
    ],
)
def test_bad_inputs_fail_before_any_runner_starts(agent: Any, train: Any, error: type, message: str) -> None:
    trainer = make_trainer(algorithm="fast")
    with pytest.raises(error, match=message):
        trainer.fit(agent, train)
    assert anyio.run(trainer.store.statistics)["rollouts"] == 0


def test_missing_resource_fails_before_any_runner_starts() -> None:
    @rollout
    def agent(task, critic_prompt):  # type: ignore[no-untyped-def]
        return 1.0

    trainer = make_trainer(algorithm="fast", initial_resources={"prompt_template": PromptTemplate("x")})
    with pytest.raises(ValueError, match=r"\['critic_prompt'\].*only have \['prompt_template'\]"):
        trainer.fit(agent, [1])


def test_missing_resource_fails_without_initial_resources() -> None:
    @prompt_rollout
    def agent(task, prompt_template):  # type: ignore[no-untyped-def]
        return 1.0

    trainer = make_trainer(algorithm="fast")
    with pytest.raises(ValueError, match=r"\['prompt_template'\].*initial_resources are empty"):
        trainer.fit(agent, [1])
    assert anyio.run(trainer.store.statistics)["rollouts"] == 0


def test_algo_function_gets_the_default_adapter() -> None:
    seen: list[Any] = []

    @algo
    def uses_adapter(adapter):  # type: ignore[no-untyped-def]
        seen.append(adapter)

    make_trainer(algorithm=uses_adapter).fit(double, [])
    assert [type(a).__name__ for a in seen] == ["TracerTraceToTriplet"]
    assert seen[0] is uses_adapter.get_adapter()


def test_algo_rejects_parameters_it_cannot_inject() -> None:
    def star_store(**store):  # type: ignore[no-untyped-def]
        pass

    def unknown(store, model):  # type: ignore[no-untyped-def]
        pass

    for func, bad in ((star_store, "store"), (unknown, "model")):
        with pytest.raises(TypeError, match=rf"parameter\(s\) \['{bad}'\] are not injectable"):
            algo(func)


def test_fit_without_algorithm_points_to_dev() -> None:
    with pytest.raises(ValueError, match=r"trainer\.dev"):
        make_trainer().fit(double, [1])


def test_trainer_argument_errors() -> None:
    with pytest.raises(ValueError, match="n_runners"):
        Trainer(n_runners=0)
    with pytest.raises(ValueError, match="each runner needs its own instance"):
        Trainer(runner=LitAgentRunner("noop"), n_runners=2)
    with pytest.raises(TypeError, match="Hook instances"):
        Trainer(hooks=[object()])  # type: ignore[list-item]


def test_progress_display_shows_counts_and_mean_reward(capsys: pytest.CaptureFixture[str]) -> None:
    make_trainer(progress=True).dev(double, [1, 2])
    err = capsys.readouterr().err
    assert "rollouts: 2 done, 0 failed" in err
    assert "mean reward 3.0000" in err
    assert err.endswith("\n")


def test_progress_is_quiet_when_not_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    make_trainer(progress=None).dev(double, [1])
    assert "rollouts:" not in capsys.readouterr().err


async def test_progress_display_draws_from_store() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream)
    async with InMemoryLightningStore(watchdog_interval=None) as store:
        await store.enqueue_rollout(1)
        await display.draw(store)
    display.close()
    assert stream.getvalue() == "\rrollouts: 0 done, 0 failed, 0 running, 1 queued | mean reward n/a\n"


test_progress_display_draws_from_store = pytest.mark.anyio(test_progress_display_draws_from_store)


async def test_progress_mean_reward_comes_from_the_store() -> None:
    """Rollouts run elsewhere (another process, another machine) count in the mean reward."""
    stream = io.StringIO()
    display = ProgressDisplay(stream)
    async with InMemoryLightningStore(watchdog_interval=None) as store:
        runner: LitAgentRunner[Any] = LitAgentRunner("otel")
        runner.init(double)
        runner.init_worker("elsewhere", store)
        try:
            for task in (1, 2):
                await runner.step(task)
            await display.draw(store)
            assert display.mean_reward == 3.0
            await runner.step(5)  # only the new rollout is read on the next draw
            await display.draw(store)
        finally:
            runner.tracer.teardown()
    display.close()
    assert display.reward_count == 3 and display.mean_reward == pytest.approx(16 / 3)
    assert "rollouts: 2 done, 0 failed, 0 running, 0 queued | mean reward 3.0000" in stream.getvalue()


test_progress_mean_reward_comes_from_the_store = pytest.mark.anyio(
    test_progress_mean_reward_comes_from_the_store
)


def test_progress_mean_reward_in_client_server_mode(capsys: pytest.CaptureFixture[str]) -> None:
    from agentlightning_core.testing.agents import double_agent

    make_trainer(progress=True, strategy="cs").dev(double_agent, [1, 2])
    assert "rollouts: 2 done, 0 failed, 0 running, 0 queued | mean reward 3.0000" in capsys.readouterr().err


_SIGINT_CHILD = textwrap.dedent(
    """
    import json, sys, anyio
    from agentlightning_core import Trainer, rollout

    @rollout
    async def slow(task):
        print("running", flush=True)
        await anyio.sleep(60)
        return 1.0

    trainer = Trainer(algorithm="fast", n_runners=2, progress=False,
                      store={"type": "memory", "watchdog_interval": None})
    try:
        trainer.fit(slow, list(range(4)))
    except KeyboardInterrupt:
        async def state():
            store = trainer.store
            stats = await store.statistics()
            attempts = [a.status for r in await store.query_rollouts() for a in await store.query_attempts(r.rollout_id)]
            workers = [w.status for w in await store.query_workers()]
            return {"by_status": stats["rollouts_by_status"], "attempts": attempts, "workers": workers}
        print(json.dumps(anyio.run(state)), flush=True)
        sys.exit(130)
    print("finished without interruption", flush=True)
    """
)


def test_ctrl_c_stops_runners_and_leaves_the_store_consistent() -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        python_command("-c", _SIGINT_CHILD),  # Ctrl+C reaches it even if the suite runs in the background
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        running = 0
        while running < 2:  # both runners are inside the agent
            line = proc.stdout.readline()
            assert line, f"child exited early: {proc.stderr.read() if proc.stderr else ''}"
            running += line.strip() == "running"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    state = json.loads(out.strip().splitlines()[-1])
    assert sorted(state["attempts"]) == ["failed", "failed"]  # in-flight attempts were closed
    assert state["by_status"]["failed"] == 2 and state["by_status"]["queuing"] == 2
    assert state["by_status"]["running"] == 0 and state["by_status"]["preparing"] == 0
    assert state["workers"] == ["idle", "idle"]


def test_sync_algorithm_is_stopped_and_joined_not_abandoned() -> None:
    started = threading.Event()

    class Computing(Algorithm):
        """A sync algorithm busy with its own work, checking stop_requested as documented."""

        saw_stop = returned = False

        def run(
            self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
        ) -> None:
            started.set()
            work = threading.Event()
            deadline = time.monotonic() + 10
            while not self.stop_requested and time.monotonic() < deadline:
                work.wait(0.005)  # a step of the algorithm's own computation
            self.saw_stop = self.stop_requested
            self.returned = True

    class CrashAfterStart(LitAgentRunner[Any]):
        async def iter(self, *, stop: Any = None) -> None:
            await anyio.to_thread.run_sync(started.wait, 10)
            raise OSError("runner infrastructure failure")

    algorithm = Computing()
    with pytest.raises(OSError, match="runner infrastructure failure"):
        make_trainer(algorithm=algorithm, runner=CrashAfterStart).fit(double, [])
    # the thread was asked to stop and joined before fit returned, not left running
    assert algorithm.returned and algorithm.saw_stop
