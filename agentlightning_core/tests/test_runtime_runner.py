"""LitAgentRunner against the real in-memory store and the OpenTelemetry tracer."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import anyio
import pytest

from agentlightning_core import (
    AttemptedRollout,
    Hook,
    InMemoryLightningStore,
    LitAgent,
    LitAgentRunner,
    PromptTemplate,
    RolloutConfig,
    Span,
    hookimpl,
    rollout,
)
from agentlightning_core.emitter import emit_reward
from agentlightning_core.semconv import EXCEPTION_SPAN, REWARD_SPAN

pytestmark = pytest.mark.anyio


@pytest.fixture
async def store() -> AsyncIterator[InMemoryLightningStore]:
    async with InMemoryLightningStore(watchdog_interval=None) as s:
        yield s


_made: list[LitAgentRunner[Any]] = []


@pytest.fixture(autouse=True)
def _tear_down_runners() -> Iterator[None]:
    """Every runner a test made releases its tracer (the ``openai`` capture is process-wide)."""
    yield
    while _made:
        runner = _made.pop()
        runner.teardown_worker(runner.worker_id or "")
        runner.tracer.teardown()


def make_runner(agent: LitAgent[Any], store: InMemoryLightningStore, **kwargs: Any) -> LitAgentRunner[Any]:
    hooks = kwargs.pop("hooks", ())
    runner: LitAgentRunner[Any] = LitAgentRunner("otel", **kwargs)
    runner.init(agent, hooks=hooks)
    runner.init_worker("w-1", store)
    _made.append(runner)
    return runner


@rollout
async def reward_agent(task):  # type: ignore[no-untyped-def]
    return float(task)


async def test_step_number_becomes_reward_span(store: InMemoryLightningStore) -> None:
    runner = make_runner(reward_agent, store)
    result = await runner.step(0.75)
    assert result.error is None
    assert result.rollout.status == "succeeded"
    assert result.attempt.status == "succeeded"
    assert result.reward == 0.75
    stored = await store.query_spans(result.rollout.rollout_id)
    assert REWARD_SPAN in [s.name for s in stored]
    assert [s.span_id for s in stored] == [s.span_id for s in result.spans]


async def test_none_keeps_the_tracer_spans(store: InMemoryLightningStore) -> None:
    @rollout
    def agent(task):  # type: ignore[no-untyped-def]
        emit_reward(2.0)  # runs in a worker thread, inside the trace context
        return None

    result = await make_runner(agent, store).step("x")
    assert result.reward == 2.0
    assert result.rollout.status == "succeeded"


async def test_returned_spans_are_stored(store: InMemoryLightningStore) -> None:
    @rollout
    def agent(task, rollout):  # type: ignore[no-untyped-def]
        return [
            Span(
                rollout_id="elsewhere",
                attempt_id="elsewhere",
                sequence_id=0,
                trace_id="ab" * 16,
                span_id="cd" * 8,
                parent_id=None,
                name="custom",
            )
        ]

    result = await make_runner(agent, store).step("x")
    names = [s.name for s in await store.query_spans(result.rollout.rollout_id)]
    assert "custom" in names
    custom = next(s for s in result.spans if s.name == "custom")
    assert custom.rollout_id == result.rollout.rollout_id and custom.attempt_id == result.attempt.attempt_id


async def test_exception_becomes_span_and_failed_attempt(store: InMemoryLightningStore) -> None:
    @rollout
    async def agent(task):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"boom {task}")

    runner = make_runner(agent, store)
    result = await runner.step("x")
    assert isinstance(result.error, RuntimeError)
    assert result.rollout.status == "failed"
    assert result.attempt.status == "failed"
    exc_spans = [s for s in result.spans if s.name == EXCEPTION_SPAN]
    assert exc_spans and "boom x" in str(exc_spans[0].attributes)
    assert runner.stats == {"rollouts": 1, "succeeded": 0, "failed": 1}


async def test_bad_return_value_fails_the_attempt(store: InMemoryLightningStore) -> None:
    @rollout
    def agent(task):  # type: ignore[no-untyped-def]
        return {"not": "a reward"}

    result = await make_runner(agent, store).step("x")
    assert isinstance(result.error, TypeError)
    assert "return None" in str(result.error)
    assert result.rollout.status == "failed"


async def test_iter_honours_max_rollouts_and_retries_failures(store: InMemoryLightningStore) -> None:
    calls: list[str] = []

    @rollout
    def agent(task, rollout):  # type: ignore[no-untyped-def]
        calls.append(task)
        if task == "flaky" and rollout.attempt.sequence_id == 1:
            raise ValueError("first attempt fails")
        return 1.0

    config = RolloutConfig(max_attempts=2, retry_condition=["failed"])
    flaky = await store.enqueue_rollout("flaky", config=config)
    await store.enqueue_rollout("ok")
    runner = make_runner(agent, store, max_rollouts=3)
    with anyio.fail_after(10):
        await runner.iter()
    assert calls == ["flaky", "ok", "flaky"]  # the failed attempt requeued its rollout
    assert (await store.get_rollout_by_id(flaky.rollout_id)).status == "succeeded"
    assert len(await store.query_attempts(flaky.rollout_id)) == 2
    worker = await store.get_worker_by_id("w-1")
    assert worker.heartbeat_stats == {"rollouts": 3, "succeeded": 2, "failed": 1}
    await store.enqueue_rollout("never")
    assert calls == ["flaky", "ok", "flaky"]


async def test_iter_stops_on_request_while_idle(store: InMemoryLightningStore) -> None:
    stop = threading.Event()
    runner = make_runner(reward_agent, store, poll_interval=0.01)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: runner.iter(stop=stop))
            rollout_ = await store.enqueue_rollout(0.5)
            done = await store.wait_for_rollouts([rollout_.rollout_id], timeout=5)
            assert done[0].status == "succeeded"
            stop.set()
    assert runner.stats["succeeded"] == 1


async def test_resources_by_id_and_latest(store: InMemoryLightningStore) -> None:
    seen: list[str] = []

    @prompt_rollout_agent
    def agent(task, prompt_template):  # type: ignore[no-untyped-def]
        seen.append(prompt_template.template)
        return 1.0

    old = await store.add_resources({"prompt_template": PromptTemplate("old")})
    await store.add_resources({"prompt_template": PromptTemplate("new")})
    await store.enqueue_rollout("a", resources_id=old.resources_id)
    await store.enqueue_rollout("b")
    with anyio.fail_after(10):
        await make_runner(agent, store, max_rollouts=2).iter()
    assert seen == ["old", "new"]


def prompt_rollout_agent(func: Any) -> Any:
    from agentlightning_core import prompt_rollout

    return prompt_rollout(func)


class RecordingHook(Hook):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    async def on_rollout_start(self, *, rollout: AttemptedRollout, **kwargs: Any) -> None:
        self.events.append(("rollout_start", rollout.attempt.status))

    def on_trace_start(self, **kwargs: Any) -> None:
        self.events.append(("trace_start", None))

    def on_trace_end(self, *, spans: Sequence[Span], **kwargs: Any) -> None:
        self.events.append(("trace_end", [s.name for s in spans]))

    def on_rollout_end(self, *, rollout: AttemptedRollout, spans: Sequence[Span], **kwargs: Any) -> None:
        self.events.append(("rollout_end", (rollout.attempt.status, len(spans))))


class BrokenHook(Hook):
    def on_rollout_start(self, **kwargs: Any) -> None:
        raise RuntimeError("observer bug")


async def test_hooks_and_plugin_hooks_fire_in_order(
    store: InMemoryLightningStore, agl_register_plugin: Any
) -> None:
    plugin_events: list[str] = []

    class Plugin:
        @hookimpl
        def on_rollout_start(self, agent: Any, rollout: Any, runner: Any, tracer: Any) -> None:
            plugin_events.append("start")

        @hookimpl
        def on_rollout_end(self, agent: Any, rollout: Any, spans: Any, runner: Any, tracer: Any) -> None:
            plugin_events.append(f"end:{rollout.attempt.status}:{len(spans)}")

    agl_register_plugin(Plugin(), name="observer")
    hook = RecordingHook()
    result = await make_runner(reward_agent, store, hooks=[BrokenHook(), hook]).step(1.0)
    assert [e[0] for e in hook.events] == ["rollout_start", "trace_start", "trace_end", "rollout_end"]
    assert REWARD_SPAN in hook.events[2][1]
    assert hook.events[3][1] == ("succeeded", len(result.spans))
    assert plugin_events == ["start", f"end:succeeded:{len(result.spans)}"]


async def test_runner_requires_init(store: InMemoryLightningStore) -> None:
    runner: LitAgentRunner[Any] = LitAgentRunner("noop")
    with pytest.raises(RuntimeError, match="init"):
        await runner.step("x")


def test_runner_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_rollouts"):
        LitAgentRunner("noop", max_rollouts=0)
    with pytest.raises(ValueError, match="poll_interval"):
        LitAgentRunner("noop", poll_interval=-1)


async def test_quiet_agent_stays_responsive_with_short_unresponsive_seconds() -> None:
    """An agent that records no span for longer than unresponsive_seconds is kept alive by the
    runner's attempt heartbeats (a third of unresponsive_seconds, not heartbeat_interval)."""
    seen: list[tuple[str, str]] = []
    config = RolloutConfig(unresponsive_seconds=0.6, max_attempts=2, retry_condition=["unresponsive"])
    async with InMemoryLightningStore(watchdog_interval=0.05) as store:

        @rollout
        async def quiet(task, rollout):  # type: ignore[no-untyped-def]
            await anyio.sleep(1.2)  # working, recording nothing
            attempt = await store.get_latest_attempt(rollout.rollout_id)
            seen.append(((await store.get_rollout_by_id(rollout.rollout_id)).status, attempt.status))
            return 1.0

        queued = await store.enqueue_rollout("x", config=config)
        with anyio.fail_after(10):
            await make_runner(quiet, store, max_rollouts=1).iter()
        # never taken for dead, never requeued ("preparing" until a heartbeat or span marks it running)
        assert len(seen) == 1 and set(seen[0]) <= {"preparing", "running"}, seen
        attempts = await store.query_attempts(queued.rollout_id)
        assert [a.status for a in attempts] == ["succeeded"]


class UnreachableOnFailure(InMemoryLightningStore):
    """A real store whose server 'went away' just when the runner reports the failed attempt."""

    async def update_attempt(self, rollout_id: str, attempt_id: str, **kwargs: Any) -> Any:
        if kwargs.get("status") == "failed":
            from agentlightning_core.errors import StoreUnavailableError

            raise StoreUnavailableError("server at http://127.0.0.1:9 is gone")
        return await super().update_attempt(rollout_id, attempt_id, **kwargs)


async def test_cancellation_survives_a_failing_cleanup(caplog: pytest.LogCaptureFixture) -> None:
    started = anyio.Event()

    @rollout
    async def forever(task):  # type: ignore[no-untyped-def]
        started.set()
        await anyio.sleep_forever()

    async with UnreachableOnFailure(watchdog_interval=None) as store:
        await store.enqueue_rollout("x")
        runner = make_runner(forever, store)
        with anyio.fail_after(10):
            with anyio.CancelScope() as scope:  # the cancellation (e.g. SIGTERM) must go through
                async with anyio.create_task_group() as tg:
                    tg.start_soon(runner.iter)
                    await started.wait()
                    scope.cancel()
        assert scope.cancelled_caught
    assert "Could not mark the cancelled attempt" in caplog.text
    assert "127.0.0.1:9 is gone" in caplog.text


async def test_async_plugin_hooks_are_awaited(
    store: InMemoryLightningStore, agl_register_plugin: Any
) -> None:
    events: list[str] = []

    class AsyncPlugin:
        @hookimpl
        async def on_rollout_start(self, rollout: Any) -> None:
            await anyio.sleep(0)
            events.append("start")

        @hookimpl
        async def on_rollout_end(self, rollout: Any) -> None:
            events.append(f"end:{rollout.attempt.status}")

        @hookimpl
        async def on_trace_end(self, spans: Any) -> None:
            raise RuntimeError("observer bug")  # logged, not fatal

    agl_register_plugin(AsyncPlugin(), name="async-observer")
    result = await make_runner(reward_agent, store).step(1.0)
    assert result.rollout.status == "succeeded"
    assert events == ["start", "end:succeeded"]
