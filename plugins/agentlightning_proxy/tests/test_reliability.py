"""Errors, retries, routing, pause/resume and broken or abandoned streams."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import anyio
import openai
import pytest
from aiohttp import web

from agentlightning_core import AttemptedRollout, InMemoryLightningStore, Span
from agentlightning_core.testing.openai_server import OpenAIServer, Reply
from agentlightning_proxy import LLMProxy, Upstream
from agentlightning_proxy import attributes as pa

pytestmark = pytest.mark.anyio

ASK = [{"role": "user", "content": "hi"}]


def url(proxy: LLMProxy, attempt: AttemptedRollout) -> str:
    return proxy.base_url_for(attempt.rollout_id, attempt.attempt.attempt_id)


async def calls(store: InMemoryLightningStore, attempt: AttemptedRollout) -> list[Span]:
    spans = await store.query_spans(attempt.rollout_id, attempt.attempt.attempt_id)
    return [s for s in spans if pa.SURFACE in s.attributes]


async def wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Wait for something the test cannot await directly (a span stored by the server's task)."""
    with anyio.fail_after(seconds):
        while not condition():
            await anyio.sleep(0.005)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def post(base: str, path: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(base + path, data=data, headers=headers) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_bad_requests_get_json_errors_and_the_proxy_keeps_serving(
    server: OpenAIServer, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    async with LLMProxy(Upstream("scripted", server.base_url, ["m"]), store, max_body_bytes=1000) as proxy:
        base = url(proxy, attempt)
        status, body = await post(base, "/chat/completions", b"{not json")
        assert status == 400 and "not valid JSON" in body["error"]["message"]
        status, body = await post(base, "/chat/completions", b"[1, 2]")
        assert status == 400 and "JSON object" in body["error"]["message"]
        status, body = await post(
            base,
            "/chat/completions",
            json.dumps({"model": "m", "messages": [{"content": "x" * 2000}]}).encode(),
        )
        assert status == 413 and "limit of 1000 bytes" in body["error"]["message"]
        status, body = await post(base, "/chat/nonsense", b"{}")
        assert status == 404 and "/v1/chat/completions" in body["error"]["message"]
        status, body = await post(base, "/messages", b"{oops")
        assert status == 400 and body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
        async with aiohttp.ClientSession() as session, session.get(base + "/chat/completions") as response:
            assert response.status == 405 and response.headers["allow"] == "POST"
        async with openai.AsyncOpenAI(base_url=base, api_key="k", max_retries=0) as client:
            with pytest.raises(
                openai.NotFoundError, match="'other' is not served here; configured models: m"
            ):
                await client.chat.completions.create(model="other", messages=ASK)  # type: ignore[arg-type]
            answer = await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == "hi"
    spans = await calls(store, attempt)
    bad_json = spans[0]
    assert bad_json.status.status_code == "ERROR" and bad_json.attributes[pa.REQUEST_BODY_RAW] == "{not json"
    assert [s.attributes[pa.HTTP_STATUS] for s in spans] == [
        400,
        400,
        413,
        400,
        404,
        200,
    ]  # an unknown path is not a call
    assert server.requests == [{"model": "m", "messages": ASK}]


async def test_an_upstream_error_reaches_the_client_with_its_status_and_body(
    proxy: LLMProxy, server: OpenAIServer, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    server.add_reply(Reply(status=400, error="context length exceeded"))
    async with openai.AsyncOpenAI(base_url=url(proxy, attempt), api_key="k", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError, match="context length exceeded"):
            await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
    (span,) = await calls(store, attempt)
    assert span.status.status_code == "ERROR" and span.attributes[pa.HTTP_STATUS] == 400
    assert "context length exceeded" in span.attributes[pa.RESPONSE_BODY_RAW]
    assert proxy.stats.upstream_errors == 1 and proxy.stats.retries == 0


async def test_5xx_and_429_are_retried_then_passed_through(
    proxy: LLMProxy, server: OpenAIServer, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    for reply in (Reply(status=503), Reply(status=429), "ok", *[Reply(status=500, error="down")] * 3):
        server.add_reply(reply)
    async with openai.AsyncOpenAI(base_url=url(proxy, attempt), api_key="k", max_retries=0) as client:
        answer = await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
        assert answer.choices[0].message.content == "ok"
        with pytest.raises(openai.InternalServerError, match="down"):
            await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
    ok, failed = await calls(store, attempt)
    assert ok.attributes[pa.RETRIES] == 2 and failed.attributes[pa.RETRIES] == 2
    assert failed.attributes[pa.HTTP_STATUS] == 500 and len(server.requests) == 6 and proxy.stats.retries == 4


async def test_connection_errors_fail_over_and_a_rollout_sticks_to_one_upstream(
    store: InMemoryLightningStore,
) -> None:
    with OpenAIServer() as a, OpenAIServer() as b:
        upstreams = [Upstream("a", a.base_url, ["m"]), Upstream("b", b.base_url, ["m"])]
        async with LLMProxy(upstreams, store, backoff_seconds=0.01) as proxy:
            attempts = [await store.start_rollout({"task": i}) for i in range(8)]
            for attempt in attempts:
                async with openai.AsyncOpenAI(
                    base_url=url(proxy, attempt), api_key="k", max_retries=0
                ) as client:
                    for _ in range(3):
                        await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
            used = [{s.attributes[pa.UPSTREAM] for s in await calls(store, attempt)} for attempt in attempts]
            assert all(len(names) == 1 for names in used)  # sticky
            assert {name for names in used for name in names} == {"a", "b"}  # and spread
        dead = Upstream("dead", f"http://127.0.0.1:{closed_port()}/v1", ["m"])
        async with LLMProxy([dead, Upstream("b", b.base_url, ["m"])], store, backoff_seconds=0.01) as proxy:
            for attempt in attempts:
                async with openai.AsyncOpenAI(
                    base_url=url(proxy, attempt), api_key="k", max_retries=0
                ) as client:
                    await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
            assert proxy.stats.retries >= 1 and proxy.stats.upstream_errors == 0
        async with LLMProxy(dead, store, backoff_seconds=0.01, max_retries=1) as proxy:
            async with openai.AsyncOpenAI(
                base_url=url(proxy, attempts[0]), api_key="k", max_retries=0
            ) as client:
                with pytest.raises(
                    openai.APIStatusError, match=r"'dead'.*could not be reached after 2 attempt"
                ) as info:
                    await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
            assert info.value.status_code == 502
        last = (await calls(store, attempts[0]))[-1]
        assert last.attributes[pa.HTTP_STATUS] == 502 and last.status.status_code == "ERROR"


@pytest.fixture
async def echo_headers_upstream() -> AsyncIterator[str]:
    """An upstream answering each chat completion with the auth headers it received."""

    async def handle(request: web.Request) -> web.Response:
        seen = {k: request.headers.get(k) for k in ("authorization", "x-api-key", "x-rollout-id")}
        message = {"role": "assistant", "content": json.dumps(seen)}
        return web.json_response(
            {
                "id": "e",
                "object": "chat.completion",
                "model": "m",
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
            }
        )

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def test_upstream_key_replaces_the_client_key_and_the_proxy_token_is_required(
    echo_headers_upstream: str, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    async with LLMProxy(
        Upstream("s", echo_headers_upstream, api_key="upstream-secret"), store, token="proxy-token"
    ) as proxy:
        async with openai.AsyncOpenAI(base_url=url(proxy, attempt), api_key="wrong", max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError, match="proxy token"):
                await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
        resource = proxy.as_resource("m")
        headers = {"x-rollout-id": "ignored-because-the-path-says"}
        async with openai.AsyncOpenAI(
            base_url=resource.get_base_url(attempt.rollout_id, attempt.attempt.attempt_id),
            api_key=resource.api_key,
            max_retries=0,
            default_headers=headers,
        ) as client:
            answer = await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
    seen = json.loads(answer.choices[0].message.content or "")
    assert seen == {"authorization": "Bearer upstream-secret", "x-api-key": None, "x-rollout-id": None}
    assert resource.model == "m" and resource.api_key == "proxy-token"
    assert proxy.stats.recorded == 1 and proxy.stats.client_errors == 1


async def test_pause_refuses_new_calls_with_retry_after_and_waits_for_in_flight_ones(
    store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    arrived, release = threading.Event(), threading.Event()

    def slow(body: dict[str, Any]) -> str:
        arrived.set()
        release.wait(30)
        return "slow answer"

    with OpenAIServer(slow) as server:
        async with LLMProxy(Upstream("s", server.base_url), store) as proxy:
            base = url(proxy, attempt)
            answers: list[str | None] = []
            paused = anyio.Event()

            async def call() -> None:
                async with openai.AsyncOpenAI(base_url=base, api_key="k", max_retries=0) as client:
                    answer = await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
                    answers.append(answer.choices[0].message.content)

            async def pause() -> None:
                await proxy.pause()
                paused.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await anyio.to_thread.run_sync(arrived.wait, 30)
                tg.start_soon(pause)
                await wait_until(lambda: proxy.paused)
                request = {"model": "m", "messages": ASK}
                async with (
                    aiohttp.ClientSession() as session,
                    session.post(base + "/chat/completions", json=request) as response,
                ):
                    assert response.status == 429 and response.headers["retry-after"] == "1"
                    assert "paused" in (await response.json())["error"]["message"]
                assert not paused.is_set() and not answers  # the in-flight call is still running
                release.set()
                await paused.wait()
                assert proxy.stats.recorded == 1  # the in-flight call was answered and recorded
            assert answers == ["slow answer"]
            proxy.resume()
            await call()
            assert answers == ["slow answer", "slow answer"] and proxy.stats.paused_refusals == 1


# --- streams that do not end well ---------------------------------------------------------

CHUNK = {
    "id": "c1",
    "object": "chat.completion.chunk",
    "model": "m",
    "choices": [{"index": 0, "delta": {"content": "partial "}}],
}


@pytest.fixture
async def stalling_upstream() -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """An upstream that sends one chunk, then stalls (``/stall``) or drops the connection (``/break``)."""
    state: dict[str, Any] = {"release": anyio.Event(), "sent": anyio.Event()}

    async def handle(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"data: {json.dumps(CHUNK)}\n\n".encode())
        state["sent"].set()
        if request.path.startswith("/break"):
            assert request.transport is not None
            request.transport.abort()
            return response
        await state["release"].wait()
        return response

    app = web.Application()
    app.router.add_post("/{mode}/v1/chat/completions", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", state
    finally:
        state["release"].set()
        await runner.cleanup()


@pytest.mark.parametrize("mode", ["stall", "break"])
async def test_an_abandoned_or_broken_stream_is_still_recorded_with_its_error(
    mode: str,
    stalling_upstream: tuple[str, dict[str, Any]],
    store: InMemoryLightningStore,
    attempt: AttemptedRollout,
) -> None:
    base, _ = stalling_upstream
    async with LLMProxy(Upstream("u", f"{base}/{mode}/v1"), store) as proxy:
        request = {"model": "m", "messages": ASK, "stream": True}
        async with (
            aiohttp.ClientSession() as session,
            session.post(url(proxy, attempt) + "/chat/completions", json=request) as response,
        ):
            assert response.status == 200
            first = await response.content.readuntil(b"\n\n")
            assert b"partial" in first
            if mode == "break":
                rest = await response.content.read()
                assert b"[DONE]" not in rest
            # leaving the block closes the connection: for "stall", the client abandons the stream
        await wait_until(lambda: proxy.stats.recorded == 1)
        (span,) = await calls(store, attempt)
        assert span.status.status_code == "ERROR"
        expected = "client disconnected" if mode == "stall" else "upstream stream broke"
        assert expected in (span.status.description or "")
        output = json.loads(span.attributes["gen_ai.output.messages"])
        assert output[0]["parts"] == [{"type": "text", "content": "partial "}]
        async with openai.AsyncOpenAI(base_url=proxy.base_url, api_key="k", max_retries=0) as client:
            models = await client.models.list()  # still serving
        assert [m.id for m in models.data] == []
