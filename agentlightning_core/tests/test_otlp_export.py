"""Spans forwarded over OTLP/HTTP by the tracer and the store server, received by a real
HTTP receiver on 127.0.0.1 that decodes them with the store's own OTLP ingest code."""

from __future__ import annotations

import logging
import pickle
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import anyio
import openai
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from agentlightning_core import semconv
from agentlightning_core.cli.store import parse_otlp_option
from agentlightning_core.emitter.reward import emit_reward
from agentlightning_core.otlp_export import (
    REWARD_METRIC,
    REWARD_METRIC_KEY,
    OtlpExporter,
    otlp_exporter,
)
from agentlightning_core.remote._otlp import IngestResult, decode_export_request, spans_from_request
from agentlightning_core.remote.client import LightningStoreClient
from agentlightning_core.remote.server import LightningStoreServer
from agentlightning_core.spans import Span
from agentlightning_core.store.memory import InMemoryLightningStore
from agentlightning_core.testing.openai_server import OpenAIServer, Reply
from agentlightning_core.tracer.otel import OtelTracer

pytestmark = pytest.mark.anyio


class Receiver:
    """An OTLP/HTTP endpoint on 127.0.0.1 keeping what it receives (``hold`` makes it hang)."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.metrics: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.hold.wait()
                with receiver.changed:
                    receiver.headers.append(dict(self.headers))
                    if self.path == "/v1/traces":
                        request = decode_export_request(body)
                        receiver.spans.extend(spans_from_request(request, IngestResult()))
                    elif self.path == "/v1/metrics":
                        receiver.metrics.append(ExportMetricsServiceRequest.FromString(body))
                    receiver.changed.notify_all()
                self.send_response(200 if self.path in ("/v1/traces", "/v1/metrics") else 404)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.hold.set()
        self.server.shutdown()
        self.server.server_close()

    def reward_points(self) -> list[tuple[str, float, int]]:
        """(key, sum, count) of the reward histogram's points in the last (cumulative) export."""
        points = []
        for request in self.metrics[-1:]:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name == REWARD_METRIC:
                            for p in metric.histogram.data_points:
                                key = {kv.key: kv.value.string_value for kv in p.attributes}[
                                    REWARD_METRIC_KEY
                                ]
                                points.append((key, p.sum, p.count))
        return points


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def by_name(spans: list[Span]) -> dict[str, Span]:
    return {s.name: s for s in spans}


# --- the tracer ---------------------------------------------------------------------------


async def test_the_tracer_forwards_a_trace_with_ids_reward_and_reward_metric(receiver: Receiver) -> None:
    store = InMemoryLightningStore()
    tracer = OtelTracer(otlp={"endpoint": receiver.url, "headers": {"x-team": "rl"}})
    tracer.init()
    try:
        async with store:
            ar = await store.start_rollout("task")
            async with tracer.trace_context(
                "agent", store=store, rollout_id=ar.rollout_id, attempt_id=ar.attempt_id
            ):
                with tracer.create_span("step", {"step.n": 1}) as step:
                    step.set_attribute("answer", "42")
                emit_reward({"correct": 1.0, "short": 0.25}, primary_key="correct")
            stored = (await store.query_spans(ar.rollout_id)).items
            assert tracer.otlp is not None and tracer.otlp.flush(30)
    finally:
        tracer.teardown()
    got = by_name(receiver.spans)
    assert set(got) == {"agent", "step", semconv.REWARD_SPAN}
    for original in stored:
        sent = got[original.name]
        # what the store holds is what the endpoint received, plus the ids as attributes
        assert (sent.trace_id, sent.span_id, sent.parent_id) == (
            original.trace_id,
            original.span_id,
            original.parent_id,
        )
        assert sent.start_time == pytest.approx(original.start_time, abs=1e-6)
        assert sent.end_time == pytest.approx(original.end_time, abs=1e-6)
        assert sent.attributes[semconv.ROLLOUT_ID] == ar.rollout_id
        assert sent.attributes[semconv.ATTEMPT_ID] == ar.attempt_id
        assert original.attributes.items() <= sent.attributes.items()
        assert sent.resource["service.name"] == "agentlightning" and sent.kind == original.kind
    assert got["step"].attributes["answer"] == "42"
    assert got["agent"].attributes[semconv.REWARD_VALUE] == 1.0  # the root carries the reward
    assert got["agent"].attributes[semconv.REWARD_PREFIX + "short"] == 0.25
    assert all(h.get("x-team") == "rl" for h in receiver.headers)
    assert sorted(receiver.reward_points()) == [("correct", 1.0, 1), ("short", 0.25, 1), ("value", 1.0, 1)]
    assert tracer.otlp.stats.spans_exported == 3 and tracer.otlp.stats.rewards_recorded == 3


async def test_openinference_attributes_for_an_llm_call(receiver: Receiver) -> None:
    tracer = OtelTracer(otlp={"endpoint": receiver.url, "metrics": False, "openinference": True})
    tracer.init()
    try:
        with OpenAIServer([Reply(content="Sunny.", prompt_tokens=7, completion_tokens=2)]) as server:
            client = openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0)
            with tracer.trace_context("agent", rollout_id="ro-1", attempt_id="at-1"):
                client.chat.completions.create(
                    model="small", messages=[{"role": "user", "content": "Weather?"}], temperature=0.5
                )
                emit_reward(0.5)
            client.close()
        assert tracer.otlp is not None and tracer.otlp.flush(30)
    finally:
        tracer.teardown()
    got = by_name(receiver.spans)
    llm = got["chat small"].attributes
    assert llm["openinference.span.kind"] == "LLM" and llm["llm.model_name"] == "small"
    assert (
        llm["llm.token_count.prompt"],
        llm["llm.token_count.completion"],
        llm["llm.token_count.total"],
    ) == (7, 2, 9)
    assert llm["llm.input_messages.0.message.role"] == "user"
    assert llm["llm.input_messages.0.message.content"] == "Weather?"
    assert llm["llm.output_messages.0.message.content"] == "Sunny."
    assert '"temperature": 0.5' in llm["llm.invocation_parameters"]
    assert llm["input.mime_type"] == "application/json" and "Weather?" in llm["input.value"]
    assert got["agent"].attributes["openinference.span.kind"] == "AGENT"
    assert got[semconv.REWARD_SPAN].attributes["openinference.span.kind"] == "EVALUATOR"
    assert {s.attributes["session.id"] for s in receiver.spans} == {"ro-1"}
    assert receiver.metrics == []  # metrics=False


# --- the store server ----------------------------------------------------------------------


def _sdk_export(endpoint: str, rollout_id: str, attempt_id: str) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    ids = {semconv.ROLLOUT_ID: rollout_id, semconv.ATTEMPT_ID: attempt_id}
    with provider.get_tracer("t").start_as_current_span("via-otlp", attributes=ids):
        pass
    provider.shutdown()


def span(ar: Any, name: str, span_id: str, parent_id: str | None = None, **attributes: Any) -> Span:
    return Span(
        rollout_id=ar.rollout_id,
        attempt_id=ar.attempt_id,
        sequence_id=0,
        trace_id="ab" * 16,
        span_id=span_id,
        parent_id=parent_id,
        name=name,
        start_time=1.0,
        end_time=2.0,
        attributes=attributes,
    )


async def test_the_store_server_forwards_spans_of_every_route(receiver: Receiver) -> None:
    store = InMemoryLightningStore()
    async with store, LightningStoreServer(store, port=0, otlp=receiver.url) as server:
        async with LightningStoreClient(server.url) as client:
            ar = await client.start_rollout("task")
            await client.add_many_spans(
                [
                    span(ar, semconv.REWARD_SPAN, "1" * 16, "2" * 16, **{semconv.REWARD_VALUE: 0.75}),
                    span(ar, "root", "2" * 16),
                ]
            )
            await client.add_span(span(ar, "single", "3" * 16, "2" * 16))
            await anyio.to_thread.run_sync(
                _sdk_export, f"{server.url}/v1/traces", ar.rollout_id, ar.attempt_id
            )
        assert server.otlp is not None
        assert await anyio.to_thread.run_sync(server.otlp.flush, 30.0)
        stats = server.otlp.stats
    got = by_name(receiver.spans)
    assert set(got) == {semconv.REWARD_SPAN, "root", "single", "via-otlp"}
    assert {s.attributes[semconv.ROLLOUT_ID] for s in receiver.spans} == {ar.rollout_id}
    assert got["root"].attributes[semconv.REWARD_VALUE] == 0.75
    assert stats.spans_exported == 4 and stats.spans_failed == 0
    assert receiver.reward_points() == [("value", 0.75, 1)]  # exported when the server closed


async def test_a_dead_endpoint_is_logged_and_counted_and_spans_are_still_stored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = InMemoryLightningStore()
    dead = closed_port_url()
    with caplog.at_level(logging.ERROR, logger="agentlightning_core.otlp_export"):
        async with (
            store,
            LightningStoreServer(store, port=0, otlp={"endpoint": dead, "timeout": 1}) as server,
        ):
            async with LightningStoreClient(server.url) as client:
                ar = await client.start_rollout("task")
                for i in range(3):
                    await client.add_span(span(ar, f"s{i}", f"{i + 1:016x}"))
                assert len((await client.query_spans(ar.rollout_id)).items) == 3
            assert server.otlp is not None
            assert await anyio.to_thread.run_sync(server.otlp.flush, 30.0)
            stats = server.otlp.stats
    assert stats.spans_failed == 3 and stats.export_errors >= 1 and stats.spans_exported == 0
    (record,) = [r for r in caplog.records if "Could not forward" in r.getMessage()]
    assert dead in record.getMessage() and "store ingestion is not affected" in record.getMessage()


async def test_a_hanging_endpoint_never_blocks_ingestion_and_overflow_is_dropped(receiver: Receiver) -> None:
    receiver.hold.clear()  # the endpoint accepts connections but never answers (until released)
    store = InMemoryLightningStore()
    exporter = OtlpExporter(receiver.url, metrics=False, batch_size=2, max_queue=2, timeout=60)
    async with store, LightningStoreServer(store, port=0, otlp=exporter) as server:
        async with LightningStoreClient(server.url) as client:
            ar = await client.start_rollout("task")
            with anyio.fail_after(30):  # a blocking forwarder would hang here for 60 s per batch
                for i in range(10):
                    await client.add_many_spans([span(ar, f"s{i}", f"{i + 1:016x}")])
                stored = (await client.query_spans(ar.rollout_id)).items
        assert len(stored) == 10
        assert exporter.stats.spans_submitted == 10 and exporter.stats.spans_dropped >= 6
        receiver.hold.set()
        assert await anyio.to_thread.run_sync(exporter.flush, 30.0)
    assert exporter.stats.spans_exported + exporter.stats.spans_dropped == 10
    assert len(receiver.spans) == exporter.stats.spans_exported


async def test_the_exporter_restarts_after_close_and_counts_leftovers(receiver: Receiver) -> None:
    exporter = OtlpExporter(receiver.url, metrics=False)
    ar = type("AR", (), {"rollout_id": "r", "attempt_id": "a"})()
    exporter.submit([span(ar, "first", "1" * 16)])
    await anyio.to_thread.run_sync(exporter.close)
    exporter.submit([span(ar, "second", "2" * 16)])
    assert await anyio.to_thread.run_sync(exporter.flush, 30.0)
    await anyio.to_thread.run_sync(exporter.close)
    assert [s.name for s in receiver.spans] == ["first", "second"]


def test_a_span_with_ids_otlp_cannot_carry_is_counted_not_sent(receiver: Receiver) -> None:
    ar = type("AR", (), {"rollout_id": "r", "attempt_id": "a"})()
    with OtlpExporter(receiver.url, metrics=False) as exporter:
        exporter.submit([span(ar, "bad", "not-hex"), span(ar, "good", "1" * 16)])
        assert exporter.flush(30)
    assert [s.name for s in receiver.spans] == ["good"]
    assert exporter.stats.spans_failed == 1 and exporter.stats.spans_exported == 1


# --- options -------------------------------------------------------------------------------


def test_otlp_options_name_the_bad_value() -> None:
    assert otlp_exporter(None) is None and otlp_exporter(False) is None
    exporter = otlp_exporter("http://127.0.0.1:5000/v1/traces")
    assert exporter is not None and exporter.endpoint == "http://127.0.0.1:5000/v1/traces"
    assert exporter.metrics_endpoint == "http://127.0.0.1:5000/v1/metrics"
    assert otlp_exporter({"endpoint": "http://h:4318/"}).endpoint == "http://h:4318/v1/traces"  # type: ignore[union-attr]
    assert otlp_exporter(exporter) is exporter
    with pytest.raises(TypeError, match=r"otlp=42 .*endpoint URL"):
        otlp_exporter(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Bad otlp options.*endpont"):
        otlp_exporter({"endpont": "http://h:4318"})
    with pytest.raises(ValueError, match="'ftp://h' is not an http"):
        OtlpExporter("ftp://h")
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        OtlpExporter("http://h", timeout=0)
    with pytest.raises(ValueError, match="max_queue"):
        OtlpExporter("http://h", batch_size=10, max_queue=5)
    assert parse_otlp_option('{"endpoint": "http://h:1", "metrics": false}') == {
        "endpoint": "http://h:1",
        "metrics": False,
    }
    assert parse_otlp_option("http://h:1") == "http://h:1"
    with pytest.raises(ValueError, match=r"--otlp .* not valid JSON"):
        parse_otlp_option("{oops")


def test_an_exporter_pickles_as_its_settings(receiver: Receiver) -> None:
    ar = type("AR", (), {"rollout_id": "r", "attempt_id": "a"})()
    with OtlpExporter(receiver.url, headers={"k": "v"}, metrics=False, openinference=True) as exporter:
        exporter.submit([span(ar, "one", "1" * 16)])  # a running exporter: lock, thread, queue
        copy = pickle.loads(pickle.dumps(exporter))
    assert (copy.endpoint, copy.headers, copy.openinference) == (exporter.endpoint, {"k": "v"}, True)
    assert copy.stats.spans_submitted == 0
    with copy:
        copy.submit([span(ar, "two", "2" * 16)])
        assert copy.flush(30)
    assert sorted(s.name for s in receiver.spans) == ["one", "two"]
