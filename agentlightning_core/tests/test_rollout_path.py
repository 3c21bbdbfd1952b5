"""The rollout path: what the runner hands the tracer and the store, and who reads the reward.

Each runner attempt records its final reward on the attempt, so readers (algorithms, the
progress line, ``agl rollouts``) need no span query; the tests below finish attempts with a
reward and no spans at all to show the readers take it from the attempt.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

from agentlightning_core import (
    FastAlgorithm,
    InMemoryLightningStore,
    LitAgentRunner,
    PromptTemplate,
    ResourcesUpdate,
    Span,
    rollout,
)
from agentlightning_core.cli.rollouts import rollout_details, rollout_rows
from agentlightning_core.emitter import emit_reward
from agentlightning_core.store.base import LightningStore
from agentlightning_core.tracer.otel import OtelTracer
from agentlightning_core.trainer._progress import ProgressDisplay

pytestmark = pytest.mark.anyio


class CountingStore(InMemoryLightningStore):
    """The real in-memory store, counting the span and resources calls it receives."""

    def __init__(self) -> None:
        super().__init__(watchdog_interval=None)
        self.span_batches: list[list[str]] = []
        self.single_spans: list[str] = []
        self.resources_fetched: list[str] = []

    async def add_many_spans(self, spans: Sequence[Span]) -> list[Span]:
        self.span_batches.append([s.name for s in spans])
        return await super().add_many_spans(spans)

    async def add_span(self, span: Span) -> Span | None:
        self.single_spans.append(span.name)
        return await super().add_span(span)

    async def add_otel_span(
        self, rollout_id: str, attempt_id: str, readable_span: ReadableSpan, sequence_id: int | None = None
    ) -> Span | None:
        self.single_spans.append(readable_span.name)
        return await super().add_otel_span(rollout_id, attempt_id, readable_span, sequence_id)

    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate:
        self.resources_fetched.append(resources_id)
        return await super().get_resources_by_id(resources_id)


class StoreWatchingTracer(OtelTracer):
    """The OpenTelemetry tracer, recording where it was given a store."""

    def __init__(self) -> None:
        super().__init__(instrument_openai=False)
        self.given: list[str] = []

    def init_worker(self, worker_id: str, store: LightningStore | None = None) -> None:
        self.given.append(f"init_worker store={store is not None}")
        super().init_worker(worker_id, store)

    def trace_context(
        self, name: str | None = None, *, store: LightningStore | None = None, **ids: Any
    ) -> Any:
        self.given.append(f"trace_context store={store is not None}")
        return super().trace_context(name, store=store, **ids)


@pytest.fixture
async def store() -> AsyncIterator[CountingStore]:
    async with CountingStore() as s:
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


def make_runner(
    agent: Any, store: LightningStore, tracer: Any = "otel", **kwargs: Any
) -> LitAgentRunner[Any]:
    runner: LitAgentRunner[Any] = LitAgentRunner(tracer, **kwargs)
    runner.init(agent)
    runner.init_worker("w-1", store)
    _made.append(runner)
    return runner


@rollout
async def reward_agent(task):  # type: ignore[no-untyped-def]
    return float(task)


# --- tracer and store -------------------------------------------------------------------


async def test_the_tracer_is_given_the_store_once(store: CountingStore) -> None:
    tracer = StoreWatchingTracer()
    runner = make_runner(reward_agent, store, tracer=tracer)
    for task in (1, 2, 3):
        result = await runner.step(task)
        assert result.reward == float(task)  # the traces still reach the store
    assert tracer.given == ["init_worker store=True"] + ["trace_context store=False"] * 3


async def test_returned_spans_are_stored_in_one_call(store: CountingStore) -> None:
    provider = TracerProvider()
    with provider.get_tracer("test").start_as_current_span("from-otel") as otel_span:
        pass
    assert isinstance(otel_span, ReadableSpan)

    @rollout
    def agent(task):  # type: ignore[no-untyped-def]
        made = Span(
            rollout_id="elsewhere",
            attempt_id="elsewhere",
            sequence_id=0,
            trace_id="ab" * 16,
            span_id="cd" * 8,
            parent_id=None,
            name="made-by-agent",
        )
        return [otel_span, made]

    result = await make_runner(agent, store).step("x")
    provider.shutdown()
    assert store.single_spans == []
    assert [b for b in store.span_batches if "made-by-agent" in b] == [["from-otel", "made-by-agent"]]
    returned = [s for s in result.spans if s.name in ("from-otel", "made-by-agent")]
    assert [s.name for s in returned] == ["from-otel", "made-by-agent"]
    assert all(s.rollout_id == result.rollout.rollout_id for s in returned)
    assert returned[0].sequence_id < returned[1].sequence_id


# --- the attempt's reward ---------------------------------------------------------------


async def test_runner_records_the_final_reward_on_the_attempt(store: CountingStore) -> None:
    @rollout
    def agent(task):  # type: ignore[no-untyped-def]
        if task == "quiet":
            return None
        emit_reward(0.25)
        if task == "fail":
            raise ValueError("after a reward")
        emit_reward(0.5)  # the last reward is the final one
        return None

    runner = make_runner(agent, store)
    done, failed, quiet = [await runner.step(task) for task in ("ok", "fail", "quiet")]
    assert (done.attempt.reward, failed.attempt.reward, quiet.attempt.reward) == (0.5, 0.25, None)
    assert failed.attempt.status == "failed"
    for result in (done, failed, quiet):
        assert result.reward == result.attempt.reward
        assert await store.get_latest_attempt(result.rollout.rollout_id) == result.attempt


async def _finish(store: LightningStore, rewards: Sequence[float | None]) -> list[str]:
    """Run rollouts 'elsewhere': attempts ended with a reward and no span at all."""
    ids = []
    for reward in rewards:
        attempted = await store.start_rollout(f"task {reward}")
        await store.update_attempt(
            attempted.rollout_id, attempted.attempt_id, status="succeeded", reward=reward
        )
        ids.append(attempted.rollout_id)
    return ids


async def _work_queue(store: LightningStore, stop: anyio.Event) -> None:
    """A worker that ends each dequeued attempt with reward ``10 * task`` and no span."""
    while not stop.is_set():
        attempted = await store.dequeue_rollout()
        if attempted is None:
            await anyio.sleep(0.001)
            continue
        reward = 10.0 * attempted.input
        await store.update_attempt(
            attempted.rollout_id, attempted.attempt_id, status="succeeded", reward=reward
        )


async def test_progress_line_reads_the_attempts_reward(store: CountingStore) -> None:
    await _finish(store, [1.0, 2.0, None])
    stream = io.StringIO()
    display = ProgressDisplay(stream)
    await display.draw(store)
    display.close()
    assert (display.reward_count, display.mean_reward) == (2, 1.5)
    assert "3 done, 0 failed, 0 running, 0 queued | mean reward 1.5000" in stream.getvalue()


async def test_rollouts_list_and_show_read_the_attempts_reward(store: CountingStore) -> None:
    rewarded, unrewarded = await _finish(store, [0.125, None])
    rows = {row[0]: row for row in await rollout_rows(store, None, -1)}
    assert rows[rewarded][2:4] == ["1", "0.125"] and rows[unrewarded][2:4] == ["1", "-"]
    details = await rollout_details(store, rewarded)
    assert "reward    0.125" in details and "reward=0.125" in details


async def test_fast_algorithm_reads_the_attempts_reward(store: CountingStore) -> None:
    algorithm = FastAlgorithm(timeout=30)
    algorithm.set_store(store)
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_work_queue, store, stop)
        await algorithm.run([1, 2], [3])
        stop.set()
    assert [(s.rollout.mode, s.reward, s.samples) for s in algorithm.results] == [
        ("train", 10.0, 0),
        ("train", 20.0, 0),
        ("val", 30.0, 0),
    ]


# --- resources --------------------------------------------------------------------------


async def test_runner_fetches_each_resources_version_once(store: CountingStore) -> None:
    seen: list[str] = []

    @rollout
    def agent(task, resources):  # type: ignore[no-untyped-def]
        seen.append(resources["prompt"].template)
        resources["prompt"] = PromptTemplate("changed by the agent")  # its own mapping
        return 1.0

    first = await store.add_resources({"prompt": PromptTemplate("first")})
    for task in range(3):
        await store.enqueue_rollout(task)
    second = await store.add_resources({"prompt": PromptTemplate("second")})
    for task in range(2):
        await store.enqueue_rollout(task)
    with anyio.fail_after(30):
        await make_runner(agent, store, max_rollouts=5).iter()
    assert seen == ["first"] * 3 + ["second"] * 2
    assert store.resources_fetched == [first.resources_id, second.resources_id]
