"""The store server over real HTTP on 127.0.0.1: routes, bad input, auth, limits, OTLP, idempotency."""

from __future__ import annotations

import functools
import gzip
import json
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import anyio
import pytest

from agentlightning_core.errors import RolloutNotFoundError
from agentlightning_core.remote._config import base_url, token_from_env
from agentlightning_core.remote._idempotency import Answer, IdempotencyCache
from agentlightning_core.remote._openapi import openapi_document
from agentlightning_core.remote._protocol import OPERATIONS
from agentlightning_core.remote.client import LightningStoreClient
from agentlightning_core.remote.server import LightningStoreServer
from agentlightning_core.store.memory import InMemoryLightningStore
from agentlightning_core.testing.http_server import StoreServerThread

pytestmark = pytest.mark.anyio

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def servers() -> Iterator[StoreServerThread]:
    with StoreServerThread() as s:
        yield s


@pytest.fixture
async def url(servers: StoreServerThread) -> AsyncIterator[str]:
    """Base URL of a fresh, started in-memory store behind the module's server."""
    u = await servers.open_store(InMemoryLightningStore(), max_body_bytes=64 * 1024)
    yield u
    await servers.close_store(u)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def call(
    http: aiohttp.ClientSession, url: str, op: str, body: Any = None, *, raw: bytes | None = None, **kw: Any
) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
    async with http.post(f"{url}/v1/store/{op}", data=data, **kw) as resp:
        text = await resp.read()
        return resp.status, json.loads(text) if text else None


async def assert_still_serving(http: aiohttp.ClientSession, url: str) -> None:
    status, rollout = await call(http, url, "enqueue_rollout", {"input": "alive?"})
    assert status == 200 and rollout["status"] == "queuing"


# --- routes and results ------------------------------------------------------------------


async def test_health_and_unknown_routes(http: aiohttp.ClientSession, url: str) -> None:
    async with http.get(f"{url}/health") as resp:
        assert resp.status == 200 and await resp.json() == {"status": "ok"}
    async with http.get(f"{url}/nope") as resp:
        body = await resp.json()
        assert resp.status == 404 and body["error"] == "RouteNotFound" and "/nope" in body["message"]
    status, body = await call(http, url, "drop_database")
    assert status == 404 and "drop_database" in body["message"] and "enqueue_rollout" in body["message"]
    async with http.get(f"{url}/v1/store/enqueue_rollout") as resp:
        assert resp.status == 405 and resp.headers["Allow"] == "POST"
        assert (await resp.json())["error"] == "MethodNotAllowed"


async def test_openapi_describes_every_store_method(http: aiohttp.ClientSession, url: str) -> None:
    async with http.get(f"{url}/openapi.json") as resp:
        assert resp.status == 200
        doc = await resp.json()
    assert doc["openapi"].startswith("3.1")
    for name in OPERATIONS:
        assert f"/v1/store/{name}" in doc["paths"]
    for method in ("enqueue_rollout", "dequeue_rollout", "update_attempt", "add_many_spans", "query_spans"):
        assert doc["paths"][f"/v1/store/{method}"]["post"]["operationId"] == method
    assert "/v1/traces" in doc["paths"] and "/health" in doc["paths"]
    assert doc["components"]["schemas"]["Span"]["required"][:3] == ["rollout_id", "attempt_id", "sequence_id"]
    assert "security" not in doc  # this server has no token
    assert openapi_document(bearer=True)["security"] == [{"bearer": []}]


async def test_store_methods_answer_json(http: aiohttp.ClientSession, url: str) -> None:
    status, rollouts = await call(
        http, url, "enqueue_many_rollouts", {"requests": [{"input": i} for i in range(3)]}
    )
    assert status == 200 and [r["input"] for r in rollouts] == [0, 1, 2]
    status, got = await call(http, url, "dequeue_many_rollouts", {"limit": 2, "worker_id": "w"})
    assert status == 200 and [g["rollout"]["rollout_id"] for g in got] == [
        r["rollout_id"] for r in rollouts[:2]
    ]
    status, page = await call(http, url, "query_rollouts", {"status_in": ["queuing"], "limit": 5})
    assert status == 200 and page["total"] == 1 and page["items"][0]["input"] == 2
    status, latest = await call(http, url, "get_latest_resources")
    assert status == 200 and latest is None


# --- bad input ---------------------------------------------------------------------------


async def test_malformed_json_is_400_and_the_server_keeps_serving(
    http: aiohttp.ClientSession, url: str
) -> None:
    for raw in (b"{not json", b'{"input": 1', b"\xff\xfe\x00garbage", b"[" * 30_000 + b"]" * 30_000):
        status, body = await call(http, url, "enqueue_rollout", raw=raw)
        assert status == 400, raw[:20]
        assert body["error"] == "MalformedJSON" and "not valid JSON" in body["message"]
    await assert_still_serving(http, url)


@pytest.mark.parametrize(
    ("op", "body", "needle"),
    [
        ("enqueue_rollout", [1, 2], "JSON object"),
        ("enqueue_rollout", {}, "missing required field 'input'"),
        ("enqueue_rollout", {"input": 1, "bogus": 2}, "unknown field 'bogus'"),
        ("enqueue_rollout", {"input": 1, "mode": "training"}, "enqueue_rollout.mode"),
        ("enqueue_rollout", {"input": 1, "config": {"max_attempts": "3"}}, "config.max_attempts"),
        (
            "enqueue_rollout",
            {"input": 1, "config": {"max_attempts": 0}},
            "max_attempts must be an integer >= 1",
        ),
        ("query_rollouts", {"limit": "ten"}, "query_rollouts.limit"),
        ("query_rollouts", {"limit": -5}, "query_rollouts.limit"),
        ("dequeue_many_rollouts", {"limit": True}, "expected integer"),
        ("update_attempt", {"rollout_id": 5, "attempt_id": "a"}, "update_attempt.rollout_id"),
        ("add_span", {"span": {"name": "x"}}, "missing required field"),
        ("add_resources", {"resources": {"p": {"resource_type": "nope"}}}, "resources.p"),
        ("wait_for_rollouts", {"rollout_ids": "ro-1"}, "expected array"),
    ],
)
async def test_wrong_types_are_422_naming_the_field(
    http: aiohttp.ClientSession, url: str, op: str, body: Any, needle: str
) -> None:
    status, answer = await call(http, url, op, body)
    assert status == 422, answer
    assert needle in answer["message"], answer
    await assert_still_serving(http, url)


@pytest.mark.parametrize(
    ("resources", "needle"),
    [
        ([{"resource_type": "llm"}], "expected object"),
        ({"p": 3}, "resources.p"),
        ({"p": {"resource_type": "llm", "endpoint": "http://x"}}, "model"),
        ({"": {"resource_type": "llm", "endpoint": "http://x", "model": "m"}}, "non-empty"),
        ({"p": {"resource_type": "prompt_template", "template": "Hi {"}}, "not a valid f-string template"),
    ],
)
async def test_bad_resources_are_422_with_a_clear_message(
    http: aiohttp.ClientSession, url: str, resources: Any, needle: str
) -> None:
    status, answer = await call(http, url, "add_resources", {"resources": resources})
    assert status == 422 and needle in answer["message"], answer
    await assert_still_serving(http, url)


async def test_resources_travel_as_their_own_classes(http: aiohttp.ClientSession, url: str) -> None:
    from agentlightning_core.resources import LLM, PromptTemplate, ProxyLLM, ResourcesUpdate

    sent = {
        "llm": LLM(endpoint="http://llm", model="m"),
        "proxy": ProxyLLM(endpoint="http://proxy", model="m"),
        "prompt": PromptTemplate(template="Hi {name}", engine="f-string"),
    }
    status, body = await call(
        http, url, "add_resources", {"resources": {k: v.to_dict() for k, v in sent.items()}}
    )
    assert status == 200
    got = ResourcesUpdate.from_dict(body).resources
    assert got == sent and [type(v) for v in got.values()] == [LLM, ProxyLLM, PromptTemplate]
    # past the schema, the codec still refuses what it cannot decode, naming the field
    decode = OPERATIONS["add_resources"].params[0].decode
    assert decode is not None
    with pytest.raises(ValueError, match=r"resources: unknown resource_type 'gpu'.*'llm', 'prompt_template'"):
        decode({"p": {"resource_type": "gpu"}})
    with pytest.raises(TypeError, match=r"resources: expected a JSON dict, got list"):
        decode([])


async def test_invalid_values_the_store_refuses_are_422(http: aiohttp.ClientSession, url: str) -> None:
    _, ar = await call(http, url, "start_rollout", {"input": 1})
    status, body = await call(
        http,
        url,
        "update_attempt",
        {"rollout_id": ar["rollout"]["rollout_id"], "attempt_id": "latest", "status": "cancelled"},
    )
    assert status == 422 and body["error"] == "ValueError" and "update_rollout" in body["message"]


async def test_unknown_ids_are_404_naming_the_id(http: aiohttp.ClientSession, url: str) -> None:
    for op, body, error in [
        ("get_rollout_by_id", {"rollout_id": "ro-missing"}, "RolloutNotFoundError"),
        ("update_attempt", {"rollout_id": "ro-missing", "attempt_id": "latest"}, "RolloutNotFoundError"),
        ("get_resources_by_id", {"resources_id": "rs-missing"}, "ResourcesNotFoundError"),
        ("get_worker_by_id", {"worker_id": "w-missing"}, "WorkerNotFoundError"),
    ]:
        status, answer = await call(http, url, op, body)
        assert status == 404 and answer["error"] == error
        assert "missing" in answer["message"]
    _, ar = await call(http, url, "start_rollout", {"input": 1})
    status, answer = await call(
        http, url, "update_attempt", {"rollout_id": ar["rollout"]["rollout_id"], "attempt_id": "at-missing"}
    )
    assert status == 404 and answer["error"] == "AttemptNotFoundError" and "at-missing" in answer["message"]


async def test_oversized_bodies_are_413(http: aiohttp.ClientSession, url: str) -> None:
    big = json.dumps({"input": "x" * 100_000}).encode()  # the fixture's limit is 64 KiB
    status, body = await call(http, url, "enqueue_rollout", raw=big)
    assert status == 413 and body["error"] == "PayloadTooLarge" and "65536" in body["message"]

    # chunked (no Content-Length) is counted as it arrives
    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(big), 8192):
            yield big[i : i + 8192]

    async with http.post(f"{url}/v1/store/enqueue_rollout", data=chunks()) as resp:
        assert resp.status == 413
    # a small gzip body that inflates past the limit
    bomb = gzip.compress(big)
    status, body = await call(http, url, "enqueue_rollout", raw=bomb, headers={"Content-Encoding": "gzip"})
    assert status == 413 and len(bomb) < 64 * 1024
    await assert_still_serving(http, url)


async def test_gzip_bodies_are_accepted_and_bad_encodings_refused(
    http: aiohttp.ClientSession, url: str
) -> None:
    raw = gzip.compress(json.dumps({"input": "zipped"}).encode())
    status, rollout = await call(http, url, "enqueue_rollout", raw=raw, headers={"Content-Encoding": "gzip"})
    assert status == 200 and rollout["input"] == "zipped"
    status, body = await call(
        http, url, "enqueue_rollout", raw=b"not gzip", headers={"Content-Encoding": "gzip"}
    )
    assert status == 400 and body["error"] == "MalformedGzip"
    status, body = await call(
        http, url, "enqueue_rollout", raw=raw[:-8], headers={"Content-Encoding": "gzip"}
    )
    assert status == 400 and "truncated" in body["message"]
    status, body = await call(http, url, "enqueue_rollout", raw=b"{}", headers={"Content-Encoding": "br"})
    assert status == 415 and "br" in body["message"]


# --- auth --------------------------------------------------------------------------------


async def test_bearer_token_is_required_on_every_call_but_health(
    servers: StoreServerThread, http: aiohttp.ClientSession
) -> None:
    url = await servers.open_store(InMemoryLightningStore(), token=TOKEN)
    try:
        async with http.get(f"{url}/health") as resp:
            assert resp.status == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            status, body = await call(http, url, "statistics", headers=headers)
            assert status == 401 and body["error"] == "Unauthorized"
            async with http.get(f"{url}/openapi.json", headers=headers) as resp:
                assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
        status, _ = await call(http, url, "statistics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 200
        async with LightningStoreClient(url, token=TOKEN) as client:
            assert (await client.enqueue_rollout(1)).input == 1
        async with LightningStoreClient(url, token="wrong", max_retries=3) as client:
            with pytest.raises(PermissionError, match="bearer token"):
                await client.statistics()
            assert client.retries == 0
    finally:
        await servers.close_store(url)


# --- idempotency -------------------------------------------------------------------------


async def test_a_repeated_idempotency_key_is_answered_not_rerun(
    servers: StoreServerThread, http: aiohttp.ClientSession, url: str
) -> None:
    await call(http, url, "enqueue_many_rollouts", {"requests": [{"input": 1}, {"input": 2}]})
    key = {"Idempotency-Key": "k-1"}
    first = await call(http, url, "dequeue_rollout", {"worker_id": "w"}, headers=key)
    again = await call(http, url, "dequeue_rollout", {"worker_id": "w"}, headers=key)
    assert first == again and first[1]["rollout"]["input"] == 1
    # concurrent duplicates wait for the first answer
    both = await _gather(
        call(http, url, "dequeue_rollout", {}, headers={"Idempotency-Key": "k-2"}),
        call(http, url, "dequeue_rollout", {}, headers={"Idempotency-Key": "k-2"}),
    )
    assert both[0] == both[1] and both[0][1]["rollout"]["input"] == 2
    # a different key runs the operation: the queue is now empty
    assert await call(http, url, "dequeue_rollout", {}, headers={"Idempotency-Key": "k-3"}) == (200, None)
    assert servers.app(url).idempotency.replays == 2


async def test_idempotency_keys_are_kept_per_client(
    servers: StoreServerThread, http: aiohttp.ClientSession, url: str
) -> None:
    await call(http, url, "enqueue_many_rollouts", {"requests": [{"input": 1}, {"input": 2}]})
    same_key = "same-key-from-a-seeded-rng"
    a = await call(
        http, url, "dequeue_rollout", {}, headers={"Idempotency-Key": same_key, "Agl-Client-Id": "a"}
    )
    b = await call(
        http, url, "dequeue_rollout", {}, headers={"Idempotency-Key": same_key, "Agl-Client-Id": "b"}
    )
    assert a[0] == b[0] == 200
    assert {a[1]["rollout"]["input"], b[1]["rollout"]["input"]} == {1, 2}  # two clients, two rollouts
    again = await call(
        http, url, "dequeue_rollout", {}, headers={"Idempotency-Key": same_key, "Agl-Client-Id": "a"}
    )
    assert again == a and servers.app(url).idempotency.replays == 1  # a's retry is answered


async def test_waiters_of_a_cancelled_run_share_one_new_run() -> None:
    cache = IdempotencyCache()
    runs: list[str] = []
    gate = anyio.Event()
    results: dict[str, tuple[Answer, bool]] = {}

    async def first_run() -> Answer:
        runs.append("first")
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def later_run() -> Answer:
        runs.append("later")
        await gate.wait()
        return Answer(200, b"done")

    async def waiter(name: str) -> None:
        results[name] = await cache.run("k", later_run)

    first_scope = anyio.CancelScope()

    async def first() -> None:
        with first_scope:
            await cache.run("k", first_run)

    async with anyio.create_task_group() as tg:
        tg.start_soon(first)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(waiter, "a")
        tg.start_soon(waiter, "b")
        await anyio.wait_all_tasks_blocked()
        first_scope.cancel()  # the first run ends without an answer; both waiters wake up
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert runs == ["first", "later"]  # one new run, not one per waiter
    assert sorted(results.values(), key=lambda r: r[1]) == [
        (Answer(200, b"done"), False),
        (Answer(200, b"done"), True),
    ]
    assert cache._pending == {} and len(cache) == 1


async def _gather(*coros: Any) -> list[Any]:
    results: list[Any] = [None] * len(coros)

    async def run(i: int, coro: Any) -> None:
        results[i] = await coro

    async with anyio.create_task_group() as tg:
        for i, coro in enumerate(coros):
            tg.start_soon(run, i, coro)
    return results


# --- OTLP --------------------------------------------------------------------------------


def _export(endpoint: str, rollout_id: str, attempt_id: str, *, compression: Any, on_resource: bool) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    ids = {"agentlightning.rollout_id": rollout_id, "agentlightning.attempt_id": attempt_id}
    provider = TracerProvider(resource=Resource.create(ids if on_resource else {"service.name": "t"}))
    provider.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint, compression=compression))
    )
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("agent", attributes={} if on_resource else ids) as parent:
        parent.set_attribute("answer", 42)
        with tracer.start_as_current_span("llm", attributes={} if on_resource else ids) as child:
            child.add_event("token", {"n": 1})
    with tracer.start_as_current_span("orphan"):  # no ids anywhere unless on the resource
        pass
    provider.shutdown()


@pytest.mark.parametrize("on_resource", [False, True])
async def test_otlp_export_from_the_opentelemetry_sdk(url: str, on_resource: bool) -> None:
    from opentelemetry.exporter.otlp.proto.http import Compression

    async with LightningStoreClient(url) as client:
        ar = await client.start_rollout("traced")
        for compression in (Compression.NoCompression, Compression.Gzip):
            export = functools.partial(
                _export,
                f"{url}/v1/traces",
                ar.rollout_id,
                ar.attempt_id,
                compression=compression,
                on_resource=on_resource,
            )
            await anyio.to_thread.run_sync(export)
        spans = (await client.query_spans(ar.rollout_id)).items
    per_export = 3 if on_resource else 2  # the orphan span has no ids unless the resource carries them
    assert len(spans) == 2 * per_export
    names = [s.name for s in spans[:per_export]]
    assert names == (["llm", "agent", "orphan"] if on_resource else ["llm", "agent"])
    llm, agent = spans[0], spans[1]
    assert llm.parent_id == agent.span_id and agent.parent_id is None
    assert agent.attributes["answer"] == 42 and llm.events[0].name == "token"
    assert [s.sequence_id for s in spans] == sorted({s.sequence_id for s in spans})
    assert llm.trace_id == agent.trace_id and len(llm.trace_id) == 32


async def test_otlp_rejects_what_it_cannot_store(http: aiohttp.ClientSession, url: str) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add()
    for rollout_id in ("ro-unknown", None):
        span = spans.spans.add(name="s", trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
        if rollout_id:
            for key, value in (
                ("agentlightning.rollout_id", rollout_id),
                ("agentlightning.attempt_id", "at-x"),
            ):
                attr = span.attributes.add(key=key)
                attr.value.string_value = value
    headers = {"Content-Type": "application/x-protobuf"}
    async with http.post(f"{url}/v1/traces", data=request.SerializeToString(), headers=headers) as resp:
        assert resp.status == 200
        answer = ExportTraceServiceResponse.FromString(await resp.read())
    assert answer.partial_success.rejected_spans == 2
    assert "ro-unknown" in answer.partial_success.error_message
    assert "agentlightning.rollout_id" in answer.partial_success.error_message
    async with http.post(f"{url}/v1/traces", data=b"\xff\xff\xff", headers=headers) as resp:
        assert resp.status == 400 and (await resp.json())["error"] == "MalformedProtobuf"
    async with http.post(
        f"{url}/v1/traces", data=b"{}", headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 415
    await assert_still_serving(http, url)


# --- the server object -------------------------------------------------------------------


async def test_server_lifecycle_in_the_current_loop() -> None:
    store = InMemoryLightningStore()
    async with store:
        server = LightningStoreServer(store, port=0)
        assert not server.started
        async with server:
            assert server.started and server.port != 0 and server.url == f"http://127.0.0.1:{server.port}"
            async with LightningStoreClient(server.url) as client:
                rollout = await client.enqueue_rollout("hello")
            # a second server on the same port fails with a message naming it
            with pytest.raises(OSError, match=f"127.0.0.1:{server.port}"):
                await LightningStoreServer(store, port=server.port).start()
        assert not server.started
        assert (await store.get_rollout_by_id(rollout.rollout_id)).input == "hello"
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", server.port)) != 0  # nothing listens any more
        await server.aclose()  # idempotent


@pytest.mark.parametrize("checkpoints", range(7))  # every phase of start-up
async def test_a_start_cancelled_midway_leaves_no_server_behind(checkpoints: int) -> None:
    import asyncio

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with InMemoryLightningStore() as store:
        server = LightningStoreServer(store, port=port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(server.start)
            for _ in range(checkpoints):
                await anyio.sleep(0)
            tg.cancel_scope.cancel()
        await server.aclose()  # stops the server if the start finished before the cancellation
        assert [t for t in asyncio.all_tasks() if t.get_name().startswith("agl-store-server")] == []
        # the port is free: a new server binds it and answers
        again = LightningStoreServer(store, port=port)
        async with again, LightningStoreClient(again.url, max_retries=0) as client:
            assert (await client.statistics())["rollouts"] == 0


def test_server_options_are_checked() -> None:
    store = InMemoryLightningStore()
    with pytest.raises(ValueError, match=r"port must be an integer >= 0, got -1"):
        LightningStoreServer(store, port=-1)
    with pytest.raises(ValueError, match=r"port must be in 0..65535"):
        LightningStoreServer(store, port=70000)
    with pytest.raises(ValueError, match=r"max_body_bytes must be an integer >= 1, got 0"):
        LightningStoreServer(store, max_body_bytes=0)
    with pytest.raises(ValueError, match=r"ttl_seconds must be a positive number of seconds, got 0"):
        IdempotencyCache(ttl_seconds=0)


def test_urls_and_tokens_are_formed_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    assert base_url("127.0.0.1", 4747) == "http://127.0.0.1:4747"
    assert base_url("::1", 80) == "http://[::1]:80" == base_url("[::1]", 80)
    assert LightningStoreServer(InMemoryLightningStore(), "::1", 5).url == "http://[::1]:5"
    monkeypatch.setenv("AGL_SERVER_TOKEN", "env")
    assert (token_from_env(None), token_from_env("given"), token_from_env("")) == ("env", "given", None)
    monkeypatch.delenv("AGL_SERVER_TOKEN")
    assert token_from_env(None) is None


async def test_errors_of_the_client_name_the_server_message(url: str) -> None:
    async with LightningStoreClient(url, max_retries=2) as client:
        with pytest.raises(RolloutNotFoundError, match="ro-nope"):
            await client.get_rollout_by_id("ro-nope")
        with pytest.raises(ValueError, match="max_attempts"):
            rollout = await client.enqueue_rollout(1)
            await client.update_rollout(rollout.rollout_id, config={"max_attempts": 0})  # type: ignore[arg-type]
        assert client.retries == 0


def test_the_fast_span_decoder_equals_the_codec() -> None:
    from agentlightning_core.remote._protocol import span_from_checked
    from agentlightning_core.spans import Span, SpanEvent, SpanLink, SpanStatus

    full = Span(
        rollout_id="ro-1",
        attempt_id="at-1",
        sequence_id=3,
        trace_id="ab" * 16,
        span_id="cd" * 8,
        parent_id="ef" * 8,
        name="llm",
        start_time=1.5,
        end_time=2.0,
        attributes={"k": [1, 2], "nested": {"a": None}},
        events=(SpanEvent("e", 1.7, {"x": 1}),),
        links=(SpanLink("01" * 16, "02" * 8, {"y": "z"}),),
        status=SpanStatus("ERROR", "boom"),
        kind="CLIENT",
        resource={"service.name": "svc"},
    )
    minimal = {
        "rollout_id": "r",
        "attempt_id": "a",
        "sequence_id": 0,
        "trace_id": "t",
        "span_id": "s",
        "parent_id": None,
        "name": "n",
    }
    for data in (full.to_dict(), minimal, {**minimal, "events": [], "links": []}):
        assert span_from_checked(dict(data)) == Span.from_dict(dict(data))
