"""OtelTracer and NoOpTracer: the conformance suite plus the processor's failure handling."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import anyio
import pytest
from opentelemetry import trace as otel_trace

from agentlightning_core.errors import StoreUnavailableError
from agentlightning_core.plugins import resolve_component
from agentlightning_core.spans import Span
from agentlightning_core.store.memory import InMemoryLightningStore
from agentlightning_core.testing.store import wait_until
from agentlightning_core.testing.tracer import TracerConformance
from agentlightning_core.tracer.base import Tracer
from agentlightning_core.tracer.noop import NoOpTracer
from agentlightning_core.tracer.otel import OtelTracer
from agentlightning_core.tracer.processor import LightningSpanProcessor


class TestOtelTracerConformance(TracerConformance):
    captures_openai = True

    @pytest.fixture
    def tracer_factory(self) -> type[OtelTracer]:
        return OtelTracer


class TestNoOpTracerConformance(TracerConformance):
    records_spans = False

    @pytest.fixture
    def tracer_factory(self) -> type[NoOpTracer]:
        return NoOpTracer


class FailingStore(InMemoryLightningStore):
    """A real in-memory store whose span writes fail like an unreachable server."""

    async def add_many_spans(self, spans: Sequence[Span]) -> list[Span]:
        raise ConnectionError("connection refused by 127.0.0.1:9")


class HangingStore(InMemoryLightningStore):
    """A real in-memory store whose span writes never answer."""

    async def add_many_spans(self, spans: Sequence[Span]) -> list[Span]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


def test_tracers_are_registered_by_name_and_otel_is_usable_from_the_registry() -> None:
    assert isinstance(resolve_component("tracer", "otel"), OtelTracer)
    assert isinstance(resolve_component("tracer", "noop"), NoOpTracer)
    tracer = resolve_component("tracer", {"type": "otel", "batch_size": 8})
    assert tracer.processor.batch_size == 8


def test_the_global_provider_is_left_alone_by_default() -> None:
    before = otel_trace.get_tracer_provider()
    tracer = OtelTracer()
    tracer.init()
    try:
        assert otel_trace.get_tracer_provider() is before
        assert otel_trace.get_tracer_provider() is not tracer.provider
    finally:
        tracer.teardown()


def test_invalid_processor_settings_are_rejected_with_the_values() -> None:
    with pytest.raises(ValueError, match="batch_size=0"):
        LightningSpanProcessor(batch_size=0)
    with pytest.raises(ValueError, match="timeout"):
        LightningSpanProcessor(timeout=0)


@pytest.mark.anyio
async def test_full_batches_reach_the_store_before_the_trace_ends() -> None:
    tracer = OtelTracer(batch_size=2, instrument_openai=False)
    async with InMemoryLightningStore() as store:
        attempted = await store.start_rollout(input=1)
        async with tracer.trace_context(
            "agent", store=store, rollout_id=attempted.rollout_id, attempt_id=attempted.attempt_id
        ):
            for i in range(4):
                with tracer.create_span(f"s{i}"):
                    pass

            async def four_stored() -> bool:
                return len(await store.query_spans(attempted.rollout_id)) >= 4

            await wait_until(four_stored, "the first two batches in the store while the trace is open")
        assert len(await store.query_spans(attempted.rollout_id)) == 5  # plus the root span
        assert tracer.stats.batches == 3
    tracer.teardown()


@pytest.mark.anyio
async def test_a_store_that_fails_is_reported_at_the_end_of_the_trace() -> None:
    tracer = OtelTracer(instrument_openai=False)
    async with FailingStore() as store:
        attempted = await store.start_rollout(input=1)
        with pytest.raises(StoreUnavailableError, match=r"2 span\(s\).*connection refused"):
            async with tracer.trace_context(
                "agent", store=store, rollout_id=attempted.rollout_id, attempt_id=attempted.attempt_id
            ):
                with tracer.create_span("work"):
                    pass
    assert tracer.stats.spans_failed == 2 and tracer.stats.export_errors == 1
    assert tracer.get_last_trace() == []
    tracer.teardown()


@pytest.mark.anyio
async def test_a_hanging_store_hits_the_deadline_instead_of_hanging() -> None:
    tracer = OtelTracer(instrument_openai=False, timeout=0.2)
    async with HangingStore() as store:
        attempted = await store.start_rollout(input=1)
        with anyio.fail_after(5):
            with pytest.raises(StoreUnavailableError, match=r"(within|after) 0.2s"):
                async with tracer.trace_context(
                    "agent", store=store, rollout_id=attempted.rollout_id, attempt_id=attempted.attempt_id
                ):
                    pass
    assert tracer.stats.spans_failed == 1
    tracer.teardown()


def test_sync_trace_context_with_a_failing_store_raises_too() -> None:
    async def make() -> tuple[FailingStore, str, str]:
        store = FailingStore()
        attempted = await store.start_rollout(input=1)
        return store, attempted.rollout_id, attempted.attempt_id

    store, rollout_id, attempt_id = anyio.run(make)
    tracer = OtelTracer(instrument_openai=False)
    with (
        pytest.raises(StoreUnavailableError, match="FailingStore"),
        tracer.trace_context("agent", store=store, rollout_id=rollout_id, attempt_id=attempt_id),
    ):
        pass
    tracer.teardown()


@pytest.mark.anyio
async def test_the_agents_own_error_wins_over_a_flush_error() -> None:
    tracer = OtelTracer(instrument_openai=False)
    async with FailingStore() as store:
        attempted = await store.start_rollout(input=1)
        with pytest.raises(KeyError, match="agent bug"):
            async with tracer.trace_context(
                "agent", store=store, rollout_id=attempted.rollout_id, attempt_id=attempted.attempt_id
            ):
                raise KeyError("agent bug")
    assert tracer.stats.spans_failed == 1
    tracer.teardown()


def test_export_errors_can_be_logged_instead_of_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def make() -> tuple[FailingStore, str, str]:
        store = FailingStore()
        attempted = await store.start_rollout(input=1)
        return store, attempted.rollout_id, attempted.attempt_id

    store, rollout_id, attempt_id = anyio.run(make)
    tracer = OtelTracer(instrument_openai=False, raise_on_export_error=False)
    with tracer.trace_context("agent", store=store, rollout_id=rollout_id, attempt_id=attempt_id):
        pass
    assert "were not stored" in caplog.text
    assert tracer.stats.spans_failed == 1
    tracer.teardown()


def test_a_full_buffer_drops_and_reports_spans() -> None:
    tracer = OtelTracer(instrument_openai=False, batch_size=2, max_buffer=2)
    # Block the export loop so the buffer cannot drain while spans pile up.
    release = threading.Event()
    with (
        pytest.raises(StoreUnavailableError, match="dropped from a full buffer"),
        tracer.trace_context("agent"),
    ):
        tracer._sync_loop().loop.call_soon_threadsafe(release.wait, 5.0)
        for i in range(6):
            with tracer.create_span(f"s{i}"):
                pass
        release.set()
    assert tracer.stats.spans_dropped_buffer_full >= 1
    tracer.teardown()


def test_a_span_ending_after_its_trace_closed_is_counted_as_late() -> None:
    tracer = OtelTracer(instrument_openai=False)
    with tracer.trace_context("agent"):
        straggler = tracer.otel_tracer.start_span("straggler")
    straggler.end()
    assert tracer.stats.spans_late == 1
    assert "straggler" not in [s.name for s in tracer.get_last_trace()]
    tracer.teardown()


def test_a_span_outside_any_trace_context_is_counted_as_unattributed() -> None:
    tracer = OtelTracer(instrument_openai=False)
    tracer.otel_tracer.start_span("stray").end()
    assert tracer.stats.spans_unattributed == 1
    tracer.teardown()


@pytest.mark.anyio
async def test_concurrent_trace_contexts_keep_their_spans_apart() -> None:
    tracer: Tracer = OtelTracer(instrument_openai=False)
    async with InMemoryLightningStore() as store:
        a = await store.start_rollout(input="a")
        b = await store.start_rollout(input="b")
        both_open = anyio.Event()
        opened = 0

        async def run(ar_id: str, at_id: str, label: str) -> None:
            nonlocal opened
            async with tracer.trace_context(label, store=store, rollout_id=ar_id, attempt_id=at_id):
                opened += 1
                if opened == 2:
                    both_open.set()
                await both_open.wait()
                with tracer.create_span(f"work-{label}"):
                    await anyio.sleep(0)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, a.rollout_id, a.attempt_id, "a")
            tg.start_soon(run, b.rollout_id, b.attempt_id, "b")
        names_a = {s.name for s in await store.query_spans(a.rollout_id)}
        names_b = {s.name for s in await store.query_spans(b.rollout_id)}
    assert names_a == {"a", "work-a"} and names_b == {"b", "work-b"}
    tracer.teardown()
