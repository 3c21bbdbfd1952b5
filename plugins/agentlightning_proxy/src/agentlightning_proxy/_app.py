"""The proxy as a raw ASGI application: attribution, forwarding, streaming and recording.

One request is one :class:`_Call`: read and parse the body, pick an upstream, forward
(retrying connection errors and 408/429/5xx), pass the answer through (a stream chunk by
chunk as it arrives), and store one span before the client sees the end of the answer, so
"the client has its response" implies "the call is in the store".
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import re
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import anyio
import attrs
import orjson

from agentlightning_core import LightningStore, NotFoundError, Span, SpanStatus, semconv
from agentlightning_proxy import attributes as pa
from agentlightning_proxy._capture import (
    CHAT,
    COMPLETIONS,
    MESSAGES,
    SURFACES,
    StreamFold,
    request_attributes,
    response_attributes,
    span_name,
)
from agentlightning_proxy._metrics import NO_UPSTREAM, ProxyMetrics
from agentlightning_proxy._upstream import (
    UpstreamBroken,
    UpstreamClient,
    UpstreamResponse,
    UpstreamUnreachable,
)
from agentlightning_proxy.config import Upstream

__all__ = ["TRACED_HEADER", "ProxyApp", "ProxyStats", "Route"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Route = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An extra ASGI route mounted with :meth:`ProxyApp.add_route` (e.g. ``GET /metrics``)."""

TRACED_HEADER = semconv.TRACED_HEADER
"""A request carrying this header is recorded by an in-process tracer already: the proxy
forwards it without recording it again (counted in ``ProxyStats.traced_elsewhere``)."""
_TRACED = TRACED_HEADER.encode()

_ATTRIBUTED_PATH = re.compile(r"^/rollout/([^/]+)/attempt/([^/]+)(/.*)$")
_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_NOT_FORWARDED = frozenset(
    {
        b"host",
        b"content-type",
        b"content-length",
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-connection",
        b"accept-encoding",
        b"x-rollout-id",
        b"x-attempt-id",
        _TRACED,
    }
)
_CLIENT_AUTH = frozenset({b"authorization", b"x-api-key"})
_NOT_BACK = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"content-encoding",
        b"date",
        b"server",
    }
)
_RAW_LIMIT = 65536
_DRIFT_MEMORY = 10_000


@attrs.define
class ProxyStats:
    """Counters of a proxy since it started."""

    calls: int = 0
    """Model calls received on a recorded surface."""
    recorded: int = 0
    """Spans stored in the store."""
    unattributed: int = 0
    """Calls without rollout/attempt ids, or for a rollout the store does not know."""
    upstream_errors: int = 0
    """Calls answered with an error status by the upstream or failing to reach it."""
    client_errors: int = 0
    """Requests the proxy refused itself (bad JSON, too large, unknown model or path, ...)."""
    retries: int = 0
    token_drift: int = 0
    """Calls whose prompt token ids do not extend the previous call's of the attempt."""
    record_failures: int = 0
    """Spans the store refused (logged)."""
    paused_refusals: int = 0
    traced_elsewhere: int = 0
    """Calls forwarded without a span because a tracer records them (``x-agentlightning-traced``)."""


class _ProxyError(Exception):
    def __init__(
        self, status: int, kind: str, message: str, headers: Sequence[tuple[bytes, bytes]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = list(headers)


def _error_body(surface: str | None, kind: str, message: str) -> bytes:
    """An error in the shape the client's SDK parses (Anthropic's on ``/v1/messages``)."""
    if surface == MESSAGES:
        return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})
    return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": kind}})


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    headers: Sequence[tuple[bytes, bytes]] = (),
    *,
    content_type: bytes = b"application/json",
) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _strip_token_ids(body: Any) -> bool:
    """Remove what ``return_token_ids`` added to a response or chunk; True when something was."""
    if not isinstance(body, dict):
        return False
    changed = body.pop("prompt_token_ids", None) is not None
    for choice in body.get("choices") or ():
        if isinstance(choice, dict):
            changed = (choice.pop("token_ids", None) is not None) or changed
            changed = (choice.pop("prompt_token_ids", None) is not None) or changed
    return changed


def _strip_event(event: bytes) -> bytes:
    if b"token_ids" not in event:
        return event
    lines = event.split(b"\n")
    for i, line in enumerate(lines):
        if line.startswith(b"data:") and b"token_ids" in line:
            try:
                data = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                continue
            if _strip_token_ids(data):
                lines[i] = b"data: " + orjson.dumps(data)
    return b"\n".join(lines)


def _traceparent(headers: dict[bytes, bytes]) -> tuple[str, str | None]:
    """Trace id and parent span id from a W3C ``traceparent`` header, else a new trace."""
    value = headers.get(b"traceparent", b"").decode("latin-1").split("-")
    if len(value) == 4 and len(value[1]) == 32 and len(value[2]) == 16:
        try:
            int(value[1], 16), int(value[2], 16)
            return value[1].lower(), value[2].lower()
        except ValueError:
            pass
    return f"{random.getrandbits(128):032x}", None


class ProxyApp:
    """The ASGI application of :class:`~agentlightning_proxy.LLMProxy` (which owns its lifecycle)."""

    def __init__(
        self,
        upstreams: Sequence[Upstream],
        store: LightningStore | None,
        *,
        token: str | None,
        capture_tokens: bool,
        max_retries: int,
        backoff_seconds: float,
        timeout_seconds: float,
        max_body_bytes: int,
        keep_unattributed: int,
        metrics: bool,
    ) -> None:
        if not upstreams:
            raise ValueError(
                "LLMProxy needs at least one upstream, e.g. Upstream('vllm', 'http://127.0.0.1:8000/v1')"
            )
        names = [u.name for u in upstreams]
        if len(set(names)) != len(names):
            raise ValueError(f"LLMProxy upstream names must be distinct, got {names}")
        self.upstreams = list(upstreams)
        self.store = store
        self.capture_tokens = capture_tokens
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.timeout_seconds = timeout_seconds
        self.max_body_bytes = max_body_bytes
        self.stats = ProxyStats()
        self.unattributed: collections.deque[Span] = collections.deque(maxlen=keep_unattributed)
        self.client: UpstreamClient | None = None
        self.paused = False
        self._tokens = {b"Bearer " + token.encode(), token.encode()} if token else None
        self._routes: dict[tuple[str, str], Route] = {}
        self._round_robin = 0
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._last_tokens: collections.OrderedDict[tuple[str, str], list[int]] = collections.OrderedDict()
        self.metrics = ProxyMetrics(self) if metrics else None
        if self.metrics is not None:
            for method in ("GET", "HEAD"):
                self.add_route(method, "/metrics", self.metrics.endpoint)

    # --- lifecycle and control -----------------------------------------------------------

    async def open(self) -> None:
        if self.client is None:
            self.client = UpstreamClient(connect_timeout=10.0, read_timeout=self.timeout_seconds)

    async def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    async def pause(self) -> None:
        self.paused = True
        await self._idle.wait()

    def add_route(self, method: str, path: str, route: Route) -> None:
        key = (method.upper(), path)
        if key in self._routes:
            raise ValueError(f"The proxy already has a route {method.upper()} {path}")
        self._routes[key] = route

    @property
    def inflight(self) -> int:
        """Calls being forwarded now."""
        return self._inflight

    @property
    def models(self) -> list[str]:
        """Configured model names (``*``, any name, is not listed)."""
        return sorted({m for u in self.upstreams for m in u.models if m != "*"})

    # --- ASGI ------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        headers = dict(scope["headers"])
        path, rollout_id, attempt_id = self._attribute(scope["path"], headers)
        surface = SURFACES.get(path)
        try:
            if path == "/health":
                await _respond(send, 200, b'{"status":"ok"}')
                return
            self._check_auth(headers)
            route = self._routes.get((method, path))
            if route is not None:
                await route(scope, receive, send)
                return
            if path in ("/v1/models", "/models") and method == "GET":
                data = [
                    {"id": m, "object": "model", "created": 0, "owned_by": "agentlightning-proxy"}
                    for m in self.models
                ]
                await _respond(send, 200, orjson.dumps({"object": "list", "data": data}))
                return
            if surface is None:
                raise _ProxyError(
                    404,
                    "not_found",
                    f"No route {method} {path}; the proxy serves POST {', '.join(SURFACES)} and GET /v1/models",
                )
            if method != "POST":
                raise _ProxyError(
                    405,
                    "method_not_allowed",
                    f"{method} is not allowed on {path}; use POST",
                    [(b"allow", b"POST")],
                )
            if self.paused:
                self.stats.paused_refusals += 1
                raise _ProxyError(
                    429,
                    "proxy_paused",
                    "The proxy is paused while the model is updated; retry shortly",
                    [(b"retry-after", b"1")],
                )
        except _ProxyError as exc:
            self.stats.client_errors += 1
            await _respond(send, exc.status, _error_body(surface, exc.kind, exc.message), exc.headers)
            return
        self._inflight += 1
        self._idle.clear()
        try:
            await _Call(self, surface, path, headers, rollout_id, attempt_id, receive, send).run()
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    def _attribute(self, path: str, headers: dict[bytes, bytes]) -> tuple[str, str | None, str | None]:
        match = _ATTRIBUTED_PATH.match(path)
        if match is not None:
            return match.group(3), match.group(1), match.group(2)
        rollout = headers.get(b"x-rollout-id")
        attempt = headers.get(b"x-attempt-id")
        if rollout and attempt:
            return path, rollout.decode("latin-1"), attempt.decode("latin-1")
        return path, None, None

    def _check_auth(self, headers: dict[bytes, bytes]) -> None:
        if self._tokens is None:
            return
        if headers.get(b"authorization") in self._tokens or headers.get(b"x-api-key") in self._tokens:
            return
        raise _ProxyError(
            401,
            "unauthorized",
            "Missing or wrong proxy token: send it as the API key (Authorization: Bearer or x-api-key)",
        )

    # --- routing ---------------------------------------------------------------------------

    def route(self, model: str, rollout_id: str | None) -> list[Upstream]:
        """Upstreams serving ``model`` in the order to try them; a rollout always starts on the
        same one (the upstream's prefix cache then holds its conversation)."""
        candidates = [u for u in self.upstreams if u.serves(model)]
        if not candidates:
            return []
        if rollout_id is not None:
            start = zlib.crc32(rollout_id.encode()) % len(candidates)
        else:
            start = self._round_robin % len(candidates)
            self._round_robin += 1
        return candidates[start:] + candidates[:start]

    def backoff(self, attempt: int, retry_after: str | None) -> float:
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), 30.0)
            except ValueError:
                pass
        return min(self.backoff_seconds * 2.0**attempt, 10.0) * random.uniform(0.5, 1.5)

    # --- recording -------------------------------------------------------------------------

    def check_drift(self, key: tuple[str, str], attributes: dict[str, Any]) -> None:
        prompt = attributes.get(semconv.LLM_PROMPT_TOKEN_IDS)
        if not isinstance(prompt, list):
            return
        previous = self._last_tokens.pop(key, None)
        if previous is not None:
            drift = prompt[: len(previous)] != previous
            attributes[pa.TOKEN_DRIFT] = drift
            if drift:
                self.stats.token_drift += 1
                logger.warning(
                    "Re-tokenization drift in rollout %s attempt %s: the prompt token ids do not extend the "
                    "previous call's prompt + completion",
                    *key,
                )
        completion = attributes.get(semconv.LLM_RESPONSE_TOKEN_IDS)
        self._last_tokens[key] = prompt + (completion if isinstance(completion, list) else [])
        while len(self._last_tokens) > _DRIFT_MEMORY:
            self._last_tokens.popitem(last=False)

    async def record(self, span: Span, headers: dict[bytes, bytes]) -> None:
        if _TRACED in headers:
            self.stats.traced_elsewhere += 1
            return
        if span.rollout_id == pa.UNATTRIBUTED_ID or self.store is None:
            self.stats.unattributed += 1
            self.unattributed.append(span)
            return
        try:
            await self.store.add_span(span)  # sequence id 0: the store numbers it
            self.stats.recorded += 1
        except NotFoundError as exc:
            logger.info("Recording a call for an unknown rollout/attempt as unattributed: %s", exc)
            span.attributes[semconv.ROLLOUT_ID] = span.rollout_id
            span.attributes[semconv.ATTEMPT_ID] = span.attempt_id
            self.stats.unattributed += 1
            self.unattributed.append(
                attrs.evolve(span, rollout_id=pa.UNATTRIBUTED_ID, attempt_id=pa.UNATTRIBUTED_ID)
            )
        except Exception:
            self.stats.record_failures += 1
            logger.exception(
                "The store refused the span of a %s call of rollout %s", span.name, span.rollout_id
            )


class _Call:
    """One recorded model call, from request to stored span."""

    def __init__(
        self,
        app: ProxyApp,
        surface: str,
        path: str,
        headers: dict[bytes, bytes],
        rollout_id: str | None,
        attempt_id: str | None,
        receive: Receive,
        send: Send,
    ) -> None:
        self.app = app
        self.surface = surface
        self.path = path
        self.headers = headers
        self.rollout_id = rollout_id
        self.attempt_id = attempt_id
        self.receive = receive
        self.send = send
        self.start_time = time.time()
        self.started = time.perf_counter()
        self.attributes: dict[str, Any] = {pa.SURFACE: surface, pa.URL_PATH: path}
        self.model: Any = None
        self.error: str | None = None
        self.status = 0
        self.upstream_seconds: float | None = None
        self.body: dict[str, Any] | None = None
        """The parsed request; its span attributes are taken while the upstream works on it."""

    async def run(self) -> None:
        app = self.app
        app.stats.calls += 1
        try:
            await self._forward()
        except _ProxyError as exc:
            app.stats.client_errors += 1 if exc.status < 500 else 0
            self.status = exc.status
            self.error = exc.message
            await _respond(
                self.send, exc.status, _error_body(self.surface, exc.kind, exc.message), exc.headers
            )
            await self._record()

    async def _read_body(self) -> bytes:
        limit = self.app.max_body_bytes
        length = self.headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise self._too_large(int(length))
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise _ProxyError(
                    400, "client_disconnected", "The client disconnected before sending the whole body"
                )
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise self._too_large(size)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _too_large(self, size: int) -> _ProxyError:
        return _ProxyError(
            413,
            "request_too_large",
            f"Request body of {size} bytes exceeds the proxy's limit of {self.app.max_body_bytes} bytes",
        )

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            self.attributes[pa.REQUEST_BODY_RAW] = raw[:_RAW_LIMIT].decode("utf-8", "replace")
            raise _ProxyError(
                400, "invalid_request_error", f"The request body is not valid JSON: {exc}"
            ) from None
        if not isinstance(body, dict):
            self.attributes[pa.REQUEST_BODY_RAW] = raw[:_RAW_LIMIT].decode("utf-8", "replace")
            raise _ProxyError(
                400,
                "invalid_request_error",
                f"The request body must be a JSON object, got {type(body).__name__}",
            )
        return body

    def _upstream_headers(self, upstream: Upstream) -> list[tuple[bytes, bytes]]:
        replace_auth = upstream.api_key is not None or self.app._tokens is not None
        out = [
            (k, v)
            for k, v in self.headers.items()
            if k not in _NOT_FORWARDED and not (replace_auth and k in _CLIENT_AUTH)
        ]
        out += ((b"accept-encoding", b"identity"), (b"content-type", b"application/json"))
        if upstream.api_key is not None:
            key = upstream.api_key.encode("latin-1")
            out.append(
                (b"x-api-key", key) if self.surface == MESSAGES else (b"authorization", b"Bearer " + key)
            )
        return out

    def _capture_request(self) -> None:
        if self.body is not None:
            vendor = "anthropic" if self.surface == MESSAGES else "openai"
            self.attributes.update(request_attributes(self.surface, self.body, vendor))
            self.body = None

    async def _forward(self) -> None:
        app = self.app
        raw = await self._read_body()
        body = self._parse(raw)
        self.body = body
        self.model = body.get("model")
        if not isinstance(self.model, str) or not self.model:
            raise _ProxyError(
                400, "invalid_request_error", f"The request needs a 'model' string, got {self.model!r}"
            )
        order = app.route(self.model, self.rollout_id)
        if not order:
            raise _ProxyError(
                404,
                "model_not_found",
                f"Model {self.model!r} is not served here; configured models: {', '.join(app.models)}",
            )
        strip = False
        if app.capture_tokens and self.surface in (CHAT, COMPLETIONS) and not body.get("return_token_ids"):
            raw = orjson.dumps({**body, "return_token_ids": True})
            strip = True
        stream = body.get("stream") is True
        response, upstream = await self._send_upstream(order, raw)
        self.attributes[pa.UPSTREAM] = upstream.name
        self.attributes[pa.TTFB_MS] = round((time.perf_counter() - self.started) * 1000, 3)
        self.status = response.status
        try:
            content_type = response.header(b"content-type") or b""
            if stream and response.status == 200 and content_type.startswith(b"text/event-stream"):
                await self._stream(response, strip)
            else:
                await self._whole(response, strip)
        finally:
            response.release()

    async def _send_upstream(self, order: list[Upstream], data: bytes) -> tuple[UpstreamResponse, Upstream]:
        app = self.app
        client = app.client
        assert client is not None, "the proxy is not started"
        retries = 0
        while True:
            upstream = order[retries % len(order)]
            url = upstream.base_url + self.path[3:]  # base_url ends in /v1; path starts with /v1
            sent = time.perf_counter()
            try:
                response = await client.post(
                    url, data, self._upstream_headers(upstream), meanwhile=self._capture_request
                )
            except UpstreamUnreachable as exc:
                if retries >= app.max_retries:
                    app.stats.upstream_errors += 1
                    self.attributes[pa.UPSTREAM] = upstream.name
                    self.attributes[pa.RETRIES] = retries
                    raise _ProxyError(
                        502,
                        "upstream_unreachable",
                        f"Upstream {upstream.name!r} ({upstream.base_url}) could not be reached after {retries + 1} "
                        f"attempt(s): {exc}",
                    ) from None
                delay = app.backoff(retries, None)
            else:
                if response.status not in _RETRY_STATUSES or retries >= app.max_retries:
                    self.upstream_seconds = time.perf_counter() - sent
                    self.attributes[pa.RETRIES] = retries
                    return response, upstream
                retry_after = response.header(b"retry-after")
                delay = app.backoff(retries, retry_after.decode("latin-1") if retry_after else None)
                response.release()
            retries += 1
            app.stats.retries += 1
            if app.metrics is not None:
                app.metrics.retry(upstream.name)
            logger.info(
                "Retrying a %s call on upstream %s in %.2fs",
                self.surface,
                order[retries % len(order)].name,
                delay,
            )
            await anyio.sleep(delay)

    def _client_headers(self, response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in response.headers if k not in _NOT_BACK]

    async def _whole(self, response: UpstreamResponse, strip: bool) -> None:
        try:
            data = await response.read()
        except UpstreamBroken as exc:
            self.app.stats.upstream_errors += 1
            raise _ProxyError(
                502, "upstream_broken", f"Upstream {self.attributes[pa.UPSTREAM]!r}: {exc}"
            ) from None
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            parsed = None
        if response.status >= 400:
            self.app.stats.upstream_errors += 1
            self.error = f"upstream answered {response.status}"
            self.attributes[pa.RESPONSE_BODY_RAW] = data[:_RAW_LIMIT].decode("utf-8", "replace")
        elif isinstance(parsed, dict):
            self.attributes.update(response_attributes(self.surface, parsed))
            if strip and _strip_token_ids(parsed):
                data = orjson.dumps(parsed)
        else:
            self.attributes[pa.RESPONSE_BODY_RAW] = data[:_RAW_LIMIT].decode("utf-8", "replace")
            self.attributes[pa.CAPTURE_ERROR] = "the upstream's response body is not a JSON object"
        await self._record()
        headers = [(k, v) for k, v in self._client_headers(response) if k != b"content-type"]
        content_type = response.header(b"content-type") or b"application/json"
        await _respond(self.send, response.status, data, headers, content_type=content_type)

    async def _stream(self, response: UpstreamResponse, strip: bool) -> None:
        fold = StreamFold(self.surface)
        send = self.send
        pending = b""
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": self._client_headers(response),
            }
        )
        disconnected, streaming = False, True
        # A client that goes away cancels the upstream read. The watcher is a plain asyncio task
        # cancelling this task's scope (an anyio task group per stream costs more than the rest).
        with anyio.CancelScope() as scope:
            watcher = asyncio.ensure_future(self.receive())

            def watched(receiving: asyncio.Future[Message]) -> None:
                nonlocal disconnected, watcher
                if not streaming or receiving.cancelled() or receiving.exception() is not None:
                    return
                if receiving.result()["type"] == "http.disconnect":
                    disconnected = True
                    scope.cancel()
                else:  # not a disconnect (a late body part): keep watching
                    watcher = asyncio.ensure_future(self.receive())
                    watcher.add_done_callback(watched)

            watcher.add_done_callback(watched)
            try:
                async for chunk in response.iter_chunks():
                    if strip:
                        fold.feed(chunk)
                        pending += chunk
                        *events, pending = pending.replace(b"\r\n", b"\n").split(b"\n\n")
                        if not events:
                            continue
                        chunk = b"".join(_strip_event(e) + b"\n\n" for e in events)
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    else:
                        try:  # the client first, the fold after: it is not on the client's path
                            await send({"type": "http.response.body", "body": chunk, "more_body": True})
                        finally:
                            fold.feed(chunk)
            except UpstreamBroken as exc:
                self.error = f"the upstream stream broke: {exc}"
            except OSError as exc:  # the client went away while we were sending
                disconnected = True
                self.error = f"the client disconnected: {exc}"
            finally:
                streaming = False
                watcher.cancel()
        if disconnected and self.error is None:
            self.error = "the client disconnected before the stream ended"
        fold.close()
        self.attributes.update(response_attributes(self.surface, fold.folded()))
        if fold.bad_events:
            self.attributes[pa.CAPTURE_ERROR] = f"{fold.bad_events} stream event(s) could not be parsed"
        with anyio.CancelScope(shield=True):
            await self._record()
        if not disconnected:
            await send({"type": "http.response.body", "body": pending, "more_body": False})

    async def _record(self) -> None:
        app = self.app
        self._capture_request()
        end = time.time()
        attributes = self.attributes
        attributes[pa.HTTP_STATUS] = self.status
        rollout_id, attempt_id = self.rollout_id, self.attempt_id
        if rollout_id is None or attempt_id is None or app.store is None:
            rollout_id = attempt_id = pa.UNATTRIBUTED_ID
        else:
            app.check_drift((rollout_id, attempt_id), attributes)
        trace_id, parent_id = _traceparent(self.headers)
        failed = self.error is not None or self.status >= 400
        span = Span(
            rollout_id=rollout_id,
            attempt_id=attempt_id,
            sequence_id=0,  # numbered by the store when it stores the span, so in order across machines
            trace_id=trace_id,
            span_id=f"{random.getrandbits(64):016x}",
            parent_id=parent_id,
            name=span_name(self.attributes[pa.SURFACE], self.model),
            start_time=self.start_time,
            end_time=end,
            attributes=attributes,
            status=SpanStatus("ERROR", self.error or f"HTTP {self.status}") if failed else SpanStatus("OK"),
            kind="CLIENT",
        )
        await app.record(span, self.headers)
        if app.metrics is not None:
            app.metrics.call(
                self.surface,
                attributes.get(pa.UPSTREAM, NO_UPSTREAM),
                self.status,
                time.perf_counter() - self.started,
                self.upstream_seconds,
            )
