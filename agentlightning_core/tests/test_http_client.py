"""The HTTP store client against real servers: retries, idempotent retries, span batching, lifecycle."""

from __future__ import annotations

import asyncio
import pickle
import random
import socket
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from agentlightning_core.errors import RolloutNotFoundError, StoreUnavailableError
from agentlightning_core.plugins import resolve_component
from agentlightning_core.remote._app import StoreApp
from agentlightning_core.remote.client import LightningStoreClient
from agentlightning_core.store.base import EnqueueRequest, LightningStore
from agentlightning_core.store.memory import InMemoryLightningStore
from agentlightning_core.testing.http_server import StoreServerThread
from agentlightning_core.testing.store import make_span

pytestmark = pytest.mark.anyio

FAST: dict[str, Any] = {"max_retries": 4, "backoff_seconds": 0.005, "max_backoff_seconds": 0.02}


@pytest.fixture(scope="module")
def servers() -> Iterator[StoreServerThread]:
    with StoreServerThread() as s:
        yield s


class Faults:
    """ASGI wrapper around a store app: answers ``plan[op]`` statuses first, counts requests.

    A planned ``"lost"`` runs the request on the server and then drops its answer (the server
    answers 500 instead), as when a connection dies after the request arrived.
    """

    def __init__(self, app: StoreApp, plan: dict[str, list[int | str]] | None = None) -> None:
        self.app = app
        self.plan = {k: list(v) for k, v in (plan or {}).items()}
        self.requests: Counter[str] = Counter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        op = scope["path"].rsplit("/", 1)[-1]
        self.requests[op] += 1
        planned = self.plan.get(op)
        fault = planned.pop(0) if planned else None
        if fault == "lost":

            async def swallow(message: Any) -> None:
                return None

            await self.app(scope, receive, swallow)
            raise RuntimeError("answer lost on purpose")  # uvicorn answers 500
        if isinstance(fault, int):
            headers = [(b"content-type", b"application/json")]
            if fault == 429:
                headers.append((b"retry-after", b"0"))
            await send({"type": "http.response.start", "status": fault, "headers": headers})
            await send(
                {"type": "http.response.body", "body": b'{"error":"Injected","message":"injected fault"}'}
            )
            return
        await self.app(scope, receive, send)


@pytest.fixture
async def served(servers: StoreServerThread) -> AsyncIterator[tuple[str, Faults]]:
    holder: dict[str, Faults] = {}

    def wrap(app: StoreApp) -> Faults:
        holder["faults"] = Faults(app)
        return holder["faults"]

    url = await servers.open_store(InMemoryLightningStore(), wrap=wrap)
    yield url, holder["faults"]
    await servers.close_store(url)


@pytest.fixture
async def client(served: tuple[str, Faults]) -> AsyncIterator[LightningStoreClient]:
    async with LightningStoreClient(served[0], **FAST) as c:
        yield c


# --- retries -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retryable_statuses_are_retried(
    served: tuple[str, Faults], client: LightningStoreClient, status: int
) -> None:
    _, faults = served
    faults.plan["enqueue_rollout"] = [status, status]
    rollout = await client.enqueue_rollout("x")
    assert faults.requests["enqueue_rollout"] == 3 and client.retries == 2
    assert (await client.query_rollouts()).total == 1 and rollout.input == "x"


async def test_other_4xx_are_never_retried(served: tuple[str, Faults], client: LightningStoreClient) -> None:
    _, faults = served
    with pytest.raises(RolloutNotFoundError, match="ro-gone"):
        await client.get_rollout_by_id("ro-gone")
    faults.plan["statistics"] = [400, 403, 409]
    with pytest.raises(ValueError, match="injected fault"):
        await client.statistics()
    with pytest.raises(PermissionError, match="injected fault"):
        await client.statistics()
    with pytest.raises(ValueError, match="injected fault"):
        await client.statistics()
    assert client.retries == 0
    assert faults.requests["statistics"] == 3 and faults.requests["get_rollout_by_id"] == 1


async def test_retries_give_up_with_store_unavailable(served: tuple[str, Faults]) -> None:
    url, faults = served
    faults.plan["statistics"] = [503] * 10
    async with LightningStoreClient(url, **FAST) as client:
        with pytest.raises(StoreUnavailableError, match=r"after 5 tries.*HTTP 503.*injected fault"):
            await client.statistics()
    assert faults.requests["statistics"] == 5


async def test_connection_refused_is_retried_then_reported() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    async with LightningStoreClient(f"http://127.0.0.1:{port}", **FAST) as client:
        with pytest.raises(StoreUnavailableError, match=f"127.0.0.1:{port}.*after 5 tries"):
            await client.dequeue_rollout()
        assert client.retries == 4


async def test_a_dequeue_whose_answer_was_lost_is_not_run_twice(
    servers: StoreServerThread, served: tuple[str, Faults], client: LightningStoreClient
) -> None:
    url, faults = served
    first, second = await client.enqueue_many_rollouts([_req(1), _req(2)])
    faults.plan["dequeue_rollout"] = ["lost"]
    got = await client.dequeue_rollout(worker_id="w")
    assert got is not None and got.rollout_id == first.rollout_id
    assert faults.requests["dequeue_rollout"] == 2 and servers.app(url).idempotency.replays == 1
    again = await client.dequeue_rollout(worker_id="w")
    assert again is not None and again.rollout_id == second.rollout_id  # the first was not dequeued twice
    assert (await client.query_attempts(first.rollout_id)).total == 1


def _req(i: int) -> Any:
    from agentlightning_core.store.base import EnqueueRequest

    return EnqueueRequest(input=i)


# --- span batching -----------------------------------------------------------------------


async def test_concurrent_span_writes_are_batched(
    served: tuple[str, Faults], client: LightningStoreClient
) -> None:
    _, faults = served
    ar = await client.start_rollout("spans")
    results: list[Any] = [None] * 200

    async def add(i: int) -> None:
        results[i] = await client.add_span(make_span(ar.rollout_id, ar.attempt_id, i))

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(add, i)
    assert all(r is not None for r in results)
    assert sorted(r.sequence_id for r in results) == list(range(1, 201))
    assert faults.requests["add_span_groups"] < 20  # 200 calls, a handful of requests
    page = await client.query_spans(ar.rollout_id)
    assert page.total == 200
    assert await client.add_span(make_span(ar.rollout_id, ar.attempt_id, 5)) is None  # duplicate


async def test_one_callers_refused_spans_do_not_fail_the_others(client: LightningStoreClient) -> None:
    ar = await client.start_rollout("spans")
    outcomes: dict[str, Any] = {}

    async def good(i: int) -> None:
        outcomes[f"good{i}"] = await client.add_many_spans(
            [make_span(ar.rollout_id, ar.attempt_id, 10 * i + k) for k in range(3)]
        )

    async def bad() -> None:
        try:
            await client.add_span(make_span("ro-unknown", ar.attempt_id, 99))
        except RolloutNotFoundError as exc:
            outcomes["bad"] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(good, 0)
        tg.start_soon(bad)
        tg.start_soon(good, 1)
    assert isinstance(outcomes["bad"], RolloutNotFoundError) and "ro-unknown" in str(outcomes["bad"])
    assert len(outcomes["good0"]) == 3 and len(outcomes["good1"]) == 3
    assert (await client.query_spans(ar.rollout_id)).total == 6


async def test_large_span_lists_are_split_into_batches(served: tuple[str, Faults]) -> None:
    url, faults = served
    async with LightningStoreClient(url, max_span_batch=100) as client:
        ar = await client.start_rollout("many")
        stored = await client.add_many_spans([make_span(ar.rollout_id, ar.attempt_id, i) for i in range(450)])
        assert [s.span_id for s in stored] == [make_span("r", "a", i).span_id for i in range(450)]
    assert faults.requests["add_span_groups"] == 5


async def test_reads_and_close_wait_for_buffered_spans(served: tuple[str, Faults]) -> None:
    url, _faults = served
    client = LightningStoreClient(url)
    ar = await client.start_rollout("x")
    # Spans added by tasks that nobody awaits yet are still stored before a later read...
    tasks = [
        asyncio.ensure_future(client.add_span(make_span(ar.rollout_id, ar.attempt_id, i))) for i in range(50)
    ]
    await asyncio.sleep(0)
    assert (await client.query_spans(ar.rollout_id)).total == 50
    # ...and before the client closes.
    more = [
        asyncio.ensure_future(client.add_span(make_span(ar.rollout_id, ar.attempt_id, 100 + i)))
        for i in range(50)
    ]
    await asyncio.sleep(0)
    await client.aclose()
    assert all(t.done() and t.result() is not None for t in tasks + more)
    async with LightningStoreClient(url) as reader:
        assert (await reader.query_spans(ar.rollout_id)).total == 100
    with pytest.raises(RuntimeError, match="closed"):
        await client.statistics()


async def test_otel_spans_get_sequence_ids_from_the_server(client: LightningStoreClient) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with (
        provider.get_tracer("t").start_as_current_span("outer"),
        provider.get_tracer("t").start_as_current_span("inner"),
    ):
        pass
    ar = await client.start_rollout("otel")
    stored = [
        await client.add_otel_span(ar.rollout_id, ar.attempt_id, s) for s in exporter.get_finished_spans()
    ]
    assert [s.name for s in stored if s] == ["inner", "outer"]
    assert [s.sequence_id for s in stored if s] == [1, 2]


# --- configuration and lifecycle ---------------------------------------------------------


async def test_registered_as_the_http_store(
    served: tuple[str, Faults], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = served
    monkeypatch.setenv("AGL_SERVER_TOKEN", "from-env")
    store = resolve_component("store", {"type": "http", "url": url, "max_retries": 0}, base=LightningStore)
    assert isinstance(store, LightningStoreClient) and store.url == url and store.token == "from-env"
    async with store:
        assert (await store.enqueue_rollout(3)).input == 3  # this server wants no token


async def test_a_client_pickles_before_use_and_works_after(served: tuple[str, Faults]) -> None:
    url, _ = served
    client = LightningStoreClient(url, token=None, max_retries=2)
    async with client:
        await client.statistics()
    copy = pickle.loads(pickle.dumps(LightningStoreClient(url, max_retries=2)))
    async with copy:
        assert copy.max_retries == 2 and (await copy.enqueue_rollout("p")).input == "p"


def test_bad_options_are_refused() -> None:
    with pytest.raises(ValueError, match="http:// or https://"):
        LightningStoreClient("127.0.0.1:4747")
    with pytest.raises(ValueError, match=r"max_span_batch must be an integer >= 1, got 0"):
        LightningStoreClient(max_span_batch=0)
    with pytest.raises(ValueError, match=r"max_retries must be an integer >= 0, got -1"):
        LightningStoreClient(max_retries=-1)
    with pytest.raises(ValueError, match=r"timeout must be a positive number of seconds, got nan"):
        LightningStoreClient(timeout=float("nan"))
    with pytest.raises(ValueError, match=r"connection_limit must be an integer >= 1, got 0"):
        LightningStoreClient(connection_limit=0)


async def test_one_client_per_event_loop(served: tuple[str, Faults], client: LightningStoreClient) -> None:
    await client.statistics()

    def other_loop() -> None:
        asyncio.run(client.statistics())

    with pytest.raises(RuntimeError, match="another event loop"):
        await anyio.to_thread.run_sync(other_loop)


async def test_wait_for_rollouts_polls_in_bounded_requests(served: tuple[str, Faults]) -> None:
    url, faults = served
    async with LightningStoreClient(url, wait_poll_seconds=0.05) as client:
        ar = await client.start_rollout("w")
        assert await client.wait_for_rollouts([ar.rollout_id], timeout=0.2) == []
        assert faults.requests["wait_for_rollouts"] >= 3  # several short waits, not one long one

        async def finish() -> None:
            await anyio.sleep(0.1)
            await client.update_attempt(ar.rollout_id, ar.attempt_id, status="succeeded")

        async with anyio.create_task_group() as tg:
            tg.start_soon(finish)
            done = await client.wait_for_rollouts([ar.rollout_id], timeout=None)
        assert [r.status for r in done] == ["succeeded"]


# --- idempotency keys and caller-owned objects ----------------------------------------------


class KeyRecorder:
    """ASGI wrapper recording the idempotency and client-id headers of every request."""

    def __init__(self, app: StoreApp) -> None:
        self.app = app
        self.seen: list[tuple[bytes | None, bytes | None]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        self.seen.append((headers.get(b"agl-client-id"), headers.get(b"idempotency-key")))
        await self.app(scope, receive, send)


async def test_idempotency_keys_do_not_follow_the_random_seed(servers: StoreServerThread) -> None:
    holder: list[KeyRecorder] = []

    def wrap(app: StoreApp) -> KeyRecorder:
        holder.append(KeyRecorder(app))
        return holder[0]

    url = await servers.open_store(InMemoryLightningStore(), wrap=wrap)
    try:
        async with LightningStoreClient(url, **FAST) as a, LightningStoreClient(url, **FAST) as b:
            for client in (a, b, a):
                random.seed(42)  # as a training script does, in every runner process
                await client.enqueue_rollout("x")
        keys = [key for _, key in holder[0].seen]
        assert None not in keys and len(set(keys)) == 3
        client_ids = [cid for cid, _ in holder[0].seen]
        assert client_ids[0] == client_ids[2] != client_ids[1]  # one id per client object
    finally:
        await servers.close_store(url)


async def test_clients_seeded_alike_never_get_each_others_rollouts(served: tuple[str, Faults]) -> None:
    url, _ = served
    async with LightningStoreClient(url, **FAST) as a, LightningStoreClient(url, **FAST) as b:
        await a.enqueue_many_rollouts([EnqueueRequest(input=1), EnqueueRequest(input=2)])
        random.seed(7)
        first = await a.dequeue_rollout(worker_id="wa")
        random.seed(7)
        second = await b.dequeue_rollout(worker_id="wb")
        assert first is not None and second is not None
        assert {first.input, second.input} == {1, 2}
        assert (await a.query_rollouts(status_in=["queuing"])).total == 0


async def test_stored_spans_leave_the_callers_spans_as_they_were(client: LightningStoreClient) -> None:
    attempted = await client.start_rollout("s")
    span = make_span(attempted.rollout_id, attempted.attempt_id, 1, sequence_id=0)
    stored = await client.add_span(span)
    assert stored is not None and stored.sequence_id >= 1
    assert span.sequence_id == 0  # the caller's object is not the store's to change
    spans = [make_span(attempted.rollout_id, attempted.attempt_id, i, sequence_id=0) for i in (2, 3, 4)]
    stored_many = await client.add_many_spans(spans)
    assert [s.sequence_id for s in spans] == [0, 0, 0]
    assert sorted(s.sequence_id for s in stored_many) == [stored.sequence_id + i for i in (1, 2, 3)]
