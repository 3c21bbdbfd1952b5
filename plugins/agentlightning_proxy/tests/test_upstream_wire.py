"""The proxy's upstream client against a raw HTTP/1.1 server that misbehaves on purpose:
connections closed between calls, bodies framed by chunks or by the connection's end, bodies
that break off, a slow client behind a large stream, TLS."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import openai
import pytest
import trustme

from agentlightning_core import AttemptedRollout, InMemoryLightningStore
from agentlightning_proxy import LLMProxy, Upstream
from agentlightning_proxy import attributes as pa

pytestmark = pytest.mark.anyio

ASK = [{"role": "user", "content": "hi"}]
ANSWER = json.dumps(
    {
        "id": "chatcmpl-raw",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "raw"}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }
).encode()

Handler = Callable[[int, int, asyncio.StreamWriter], Awaitable[bool]]
"""(connection number, request number on it, writer) -> keep the connection open."""


async def read_request(reader: asyncio.StreamReader) -> bool:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    await reader.readexactly(length)
    return True


class RawServer:
    """An HTTP/1.1 server written on sockets, so each test decides the bytes on the wire."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.tls = tls
        self.connections = 0
        self.base_url = ""

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.base_url = f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number, requests = self.connections, 0
        try:
            while True:
                try:
                    await read_request(reader)
                except asyncio.IncompleteReadError:
                    return
                requests += 1
                keep = await self.handler(number, requests, writer)
                await writer.drain()
                if not keep:
                    return
        finally:
            writer.close()


@pytest.fixture
async def store() -> AsyncIterator[InMemoryLightningStore]:
    async with InMemoryLightningStore() as store:
        yield store


async def ask(proxy: LLMProxy, attempt: AttemptedRollout) -> str | None:
    base = proxy.base_url_for(attempt.rollout_id, attempt.attempt.attempt_id)
    async with openai.AsyncOpenAI(base_url=base, api_key="k", max_retries=0) as client:
        answer = await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
    return answer.choices[0].message.content


def whole(body: bytes = ANSWER, *, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


async def test_a_kept_alive_connection_the_upstream_dropped_is_replaced_without_a_retry(
    store: InMemoryLightningStore,
) -> None:
    async def handler(connection: int, request: int, writer: asyncio.StreamWriter) -> bool:
        if request == 2:  # the second call on a connection: hang up without answering
            return False
        writer.write(whole())
        return True

    attempt = await store.start_rollout({"task": 1})
    async with RawServer(handler) as upstream, LLMProxy(Upstream("raw", upstream.base_url), store) as proxy:
        assert [await ask(proxy, attempt) for _ in range(3)] == ["raw", "raw", "raw"]
        # call 1 opened connection 1; call 2 found it dropped and opened 2; call 3 likewise 3
        assert upstream.connections == 3
        assert proxy.stats.retries == 0 and proxy.stats.upstream_errors == 0
    spans = await store.query_spans(attempt.rollout_id)
    assert [s.attributes[pa.RETRIES] for s in spans] == [0, 0, 0]


async def test_chunked_and_connection_framed_bodies_are_read_whole(store: InMemoryLightningStore) -> None:
    async def handler(connection: int, request: int, writer: asyncio.StreamWriter) -> bool:
        if connection == 1:  # chunked, in three pieces, then kept alive for call 2
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            parts = [ANSWER[:10], ANSWER[10:50], ANSWER[50:]]
            writer.write(head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n")
            return request < 2
        # no length and no chunking: the body ends with the connection
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n" + ANSWER
        )
        return False

    attempt = await store.start_rollout({"task": 1})
    async with RawServer(handler) as upstream, LLMProxy(Upstream("raw", upstream.base_url), store) as proxy:
        assert [await ask(proxy, attempt) for _ in range(3)] == ["raw", "raw", "raw"]
        assert upstream.connections == 2
    spans = await store.query_spans(attempt.rollout_id)
    assert len(spans) == 3 and all(s.status.status_code == "OK" for s in spans)


async def test_a_body_that_breaks_off_is_a_502_and_is_recorded(store: InMemoryLightningStore) -> None:
    async def handler(connection: int, request: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(whole()[:-20])  # promises the whole answer, sends part of it, hangs up
        return False

    attempt = await store.start_rollout({"task": 1})
    async with RawServer(handler) as upstream, LLMProxy(Upstream("raw", upstream.base_url), store) as proxy:
        with pytest.raises(openai.InternalServerError, match="mid-response") as caught:
            await ask(proxy, attempt)
        assert caught.value.status_code == 502
        assert proxy.stats.upstream_errors == 1
    (span,) = await store.query_spans(attempt.rollout_id)
    assert span.status.status_code == "ERROR" and "mid-response" in (span.status.description or "")
    assert span.attributes[pa.HTTP_STATUS] == 502 and span.attributes[pa.UPSTREAM] == "raw"
    assert "gen_ai.input.messages" in span.attributes


async def test_a_large_stream_reaches_a_slow_client_whole(store: InMemoryLightningStore) -> None:
    """4 MiB of events: the proxy stops reading the upstream while the client lags (1 MiB buffer)
    and resumes, and every byte arrives in order."""
    events = [
        b"data: "
        + json.dumps(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": f"{i:06d}" + "x" * 4000}}],
            }
        ).encode()
        + b"\n\n"
        for i in range(1000)
    ]

    async def handler(connection: int, request: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
        for event in events:
            writer.write(event)
            await writer.drain()
        writer.write(b"data: [DONE]\n\n")
        return False

    attempt = await store.start_rollout({"task": 1})
    async with RawServer(handler) as upstream, LLMProxy(Upstream("raw", upstream.base_url), store) as proxy:
        base = proxy.base_url_for(attempt.rollout_id, attempt.attempt.attempt_id)
        async with openai.AsyncOpenAI(base_url=base, api_key="k", max_retries=0) as client:
            stream = await client.chat.completions.create(model="m", messages=ASK, stream=True)  # type: ignore[arg-type]
            received = []
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
                if len(received) % 100 == 0:
                    await asyncio.sleep(0.05)  # lag behind, so the proxy's buffer fills
    assert [r[:6] for r in received] == [f"{i:06d}" for i in range(1000)]
    (span,) = await store.query_spans(attempt.rollout_id)
    assert span.status.status_code == "OK"


async def test_an_https_upstream_is_reached_over_verified_tls(
    store: InMemoryLightningStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    certificate.configure_cert(server_context)

    async def handler(connection: int, request: int, writer: asyncio.StreamWriter) -> bool:
        writer.write(whole())
        return True

    attempt = await store.start_rollout({"task": 1})
    async with RawServer(handler, tls=server_context) as upstream:
        https = upstream.base_url.replace("http://", "https://")
        # an upstream whose certificate nobody vouches for is refused, as unreachable
        async with LLMProxy(Upstream("tls", https), store, max_retries=0) as proxy:
            with pytest.raises(openai.InternalServerError, match="CERTIFICATE_VERIFY_FAILED"):
                await ask(proxy, attempt)
        # trusted through the standard OpenSSL variable, as for a company CA
        authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        async with LLMProxy(Upstream("tls", https), store) as proxy:
            assert [await ask(proxy, attempt) for _ in range(2)] == ["raw", "raw"]
    assert upstream.connections == 1  # the refused handshake never got this far; then one kept alive
    spans = await store.query_spans(attempt.rollout_id)
    assert [s.attributes[pa.HTTP_STATUS] for s in spans] == [502, 200, 200]


async def test_a_silent_upstream_times_out_before_and_during_its_answer(
    store: InMemoryLightningStore,
) -> None:
    release = asyncio.Event()

    async def handler(connection: int, request: int, writer: asyncio.StreamWriter) -> bool:
        if connection == 1:  # never answers: the call is retried on a new connection
            await release.wait()
            return False
        if connection == 2:
            writer.write(whole())
            return False
        writer.write(whole()[:-20])  # starts its answer, then stalls
        await writer.drain()
        await release.wait()
        return False

    attempt = await store.start_rollout({"task": 1})
    async with (
        RawServer(handler) as upstream,
        LLMProxy(
            Upstream("raw", upstream.base_url), store, timeout_seconds=0.5, backoff_seconds=0.01
        ) as proxy,
    ):
        assert await ask(proxy, attempt) == "raw"
        assert proxy.stats.retries == 1
        with pytest.raises(openai.InternalServerError, match=r"sent nothing for 0\.5 s mid-response"):
            await ask(proxy, attempt)
        release.set()
    first, second = await store.query_spans(attempt.rollout_id)
    assert first.attributes[pa.RETRIES] == 1 and first.status.status_code == "OK"
    assert second.attributes[pa.HTTP_STATUS] == 502 and second.status.status_code == "ERROR"
