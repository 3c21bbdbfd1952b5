"""Conformance suite for :class:`~agentlightning_core.tracer.base.Tracer` implementations.

Subclass :class:`TracerConformance` under a name pytest collects and provide the fixture
``tracer_factory``: a callable returning a new tracer (not yet initialised)::

    class TestMyTracer(TracerConformance):
        @pytest.fixture
        def tracer_factory(self):
            return MyTracer

Class attributes say what the tracer promises:

- ``records_spans`` (default True): spans opened with ``create_span`` and emitted rewards
  come back from the trace context's ``spans`` (and ``get_last_trace``) and reach the store; False for tracers that record
  nothing (the suite then checks they stay out of the way);
- ``captures_openai`` (default False): calls of the ``openai`` client inside a trace context
  are recorded as ``chat {model}`` spans; when False the suite checks calls pass through
  unrecorded (the suite needs ``openai`` installed).

The suite uses the real in-memory store and, for ``captures_openai``, a real local
OpenAI-compatible server. Don't override its tests except to mark one ``xfail`` with a reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest

from agentlightning_core.emitter.reward import emit_reward, find_final_reward
from agentlightning_core.store.memory import InMemoryLightningStore
from agentlightning_core.testing.conformance import ConformanceSuite
from agentlightning_core.tracer.base import TraceContext, Tracer, active_tracer

__all__ = ["TracerConformance"]


class _Boom(Exception):
    pass


class TracerConformance(ConformanceSuite):
    """Behaviour every tracer must show; see the module docstring to subclass."""

    pytestmark = [pytest.mark.anyio]
    records_spans = True
    captures_openai = False

    @pytest.fixture
    def tracer_factory(self) -> Callable[[], Tracer]:
        """Override: return a callable making a new tracer."""
        raise NotImplementedError(f"{type(self).__name__} must define the tracer_factory fixture")

    @pytest.fixture
    def tracer(self, tracer_factory: Callable[[], Tracer]) -> Iterator[Tracer]:
        tracer = tracer_factory()
        tracer.init()
        yield tracer
        tracer.teardown()

    def _names(self, tracer: Tracer) -> list[str]:
        return [s.name for s in tracer.get_last_trace()]

    def test_sync_trace_context_returns_the_spans_of_the_block(self, tracer: Tracer) -> None:
        with tracer.trace_context("agent"):
            assert active_tracer() is tracer
            with tracer.create_span("step-1", {"k": 1}) as span:
                span.set_attribute("done", True)
            with tracer.create_span("step-2"):
                pass
        assert active_tracer() is None
        names = self._names(tracer)
        if not self.records_spans:
            assert names == []
            return
        assert names.index("step-1") < names.index("step-2")
        step1 = next(s for s in tracer.get_last_trace() if s.name == "step-1")
        assert step1.attributes["k"] == 1 and step1.attributes["done"] is True
        seqs = [s.sequence_id for s in tracer.get_last_trace()]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

    async def test_async_trace_context_stores_the_spans_in_the_store(self, tracer: Tracer) -> None:
        async with InMemoryLightningStore() as store:
            attempted = await store.start_rollout(input="task")
            tracer.init_worker("worker-1", store)
            async with tracer.trace_context(
                "agent", rollout_id=attempted.rollout_id, attempt_id=attempted.attempt_id
            ):
                for i in range(5):
                    with tracer.create_span(f"step-{i}"):
                        pass
                emit_reward(2)
            trace = tracer.get_last_trace()
            stored = (await store.query_spans(attempted.rollout_id)).items
            tracer.teardown_worker("worker-1")
        if not self.records_spans:
            assert trace == [] and stored == []
            return
        assert {s.span_id for s in trace} == {s.span_id for s in stored}
        assert all(
            s.rollout_id == attempted.rollout_id and s.attempt_id == attempted.attempt_id for s in trace
        )
        assert [s.sequence_id for s in trace] == sorted(s.sequence_id for s in stored)
        # A reward of 2 is a reward of 2 (the previous generation turned it into None).
        assert find_final_reward(stored) == 2.0

    async def test_an_exception_in_the_block_propagates_unchanged(self, tracer: Tracer) -> None:
        with pytest.raises(_Boom, match="sync"), tracer.trace_context("agent"):
            with tracer.create_span("before-error"):
                pass
            raise _Boom("sync")
        with pytest.raises(_Boom, match="async"):
            async with tracer.trace_context("agent"):
                raise _Boom("async")
        assert active_tracer() is None

    def test_each_trace_context_has_its_own_last_trace(self, tracer: Tracer) -> None:
        with tracer.trace_context("first"), tracer.create_span("only-in-first"):
            pass
        with tracer.trace_context("second"), tracer.create_span("only-in-second"):
            pass
        names = self._names(tracer)
        assert "only-in-first" not in names
        assert ("only-in-second" in names) is self.records_spans

    async def test_each_open_trace_context_holds_its_own_spans(self, tracer: Tracer) -> None:
        # Two traces open at once (two runners of one process share their tracer): each
        # context hands back its own spans, whichever closes last.
        first_open, second_closed = anyio.Event(), anyio.Event()
        contexts: dict[str, TraceContext] = {}

        async def first() -> None:
            async with tracer.trace_context("first") as trace:
                contexts["first"] = trace
                with tracer.create_span("only-in-first"):
                    pass
                first_open.set()
                await second_closed.wait()

        async def second() -> None:
            await first_open.wait()
            async with tracer.trace_context("second") as trace:
                contexts["second"] = trace
                with tracer.create_span("only-in-second"):
                    pass
            second_closed.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            tg.start_soon(second)
        names = {key: [s.name for s in trace.spans] for key, trace in contexts.items()}
        if not self.records_spans:
            assert names == {"first": [], "second": []}
            return
        assert "only-in-first" in names["first"] and "only-in-second" not in names["first"]
        assert "only-in-second" in names["second"] and "only-in-first" not in names["second"]

    def test_spans_ended_in_another_thread_are_recorded(self, tracer: Tracer) -> None:
        def work() -> None:
            with tracer.create_span("in-thread"):
                pass

        with tracer.trace_context("agent"):
            thread = threading.Thread(target=work)
            thread.start()
            thread.join(5.0)
            assert not thread.is_alive()
        assert ("in-thread" in self._names(tracer)) is self.records_spans

    def test_emitting_a_non_finite_reward_raises_with_the_value(self, tracer: Tracer) -> None:
        with tracer.trace_context("agent"):
            with pytest.raises(ValueError, match="nan"):
                emit_reward(float("nan"))
            emit_reward(-5.5)
        if self.records_spans:
            assert find_final_reward(tracer.get_last_trace()) == -5.5

    def test_openai_calls_are_captured_or_pass_through(self, tracer: Tracer) -> None:
        import openai

        from agentlightning_core import semconv
        from agentlightning_core.testing.openai_server import OpenAIServer

        with OpenAIServer(["Paris."]) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
            with tracer.trace_context("agent"):
                answer = client.chat.completions.create(
                    model="m1", messages=[{"role": "user", "content": "Capital?"}]
                )
            client.close()
        assert answer.choices[0].message.content == "Paris."
        llm: list[Any] = [s for s in tracer.get_last_trace() if s.name == "chat m1"]
        if not self.captures_openai:
            assert llm == []
            return
        assert len(llm) == 1
        assert llm[0].attributes[semconv.GEN_AI_REQUEST_MODEL] == "m1"
        assert "Paris." in llm[0].attributes[semconv.GEN_AI_OUTPUT_MESSAGES]
