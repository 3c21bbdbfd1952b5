"""The store as a raw ASGI application (no web framework: measured faster and lighter).

Routes:

- ``POST /v1/store/<method>``: every store method (see :mod:`~agentlightning_core.remote._protocol`);
- ``POST /v1/traces``: OTLP/HTTP trace export (protobuf, optionally gzip);
- ``GET /openapi.json``: the OpenAPI 3.1 description;
- ``GET /metrics``: Prometheus metrics of the store (with ``prometheus-client`` installed; see
  :mod:`agentlightning_core.metrics`);
- ``GET /health``: ``{"status": "ok"}``, answered without a token so probes need no secret;
- with ``pages`` (``agl store serve`` passes the dashboard): the paths it ``handles`` go to it.

With a token, every other route needs ``Authorization: Bearer <token>`` (401 otherwise).
Bad input gets a 4xx JSON ``{"error", "message"}`` and the server keeps serving.
"""

from __future__ import annotations

import hmac
import logging
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from agentlightning_core.remote._idempotency import Answer, IdempotencyCache
from agentlightning_core.remote._jsonio import dumps, loads
from agentlightning_core.remote._protocol import (
    CLIENT_ID_HEADER,
    IDEMPOTENCY_HEADER,
    OPERATIONS,
    STORE_PREFIX,
    Operation,
    error_body,
    status_for_exception,
)
from agentlightning_core.remote._schema import Checker, SchemaError, compile_schema, model_schemas
from agentlightning_core.store.base import LightningStore
from agentlightning_core.validation import check_positive_int

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Pages", "PagesFactory", "StoreApp"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
_JSON = b"application/json"
_PROTOBUF = b"application/x-protobuf"
_OK_HEALTH = b'{"status":"ok"}'
_IDEMPOTENCY = IDEMPOTENCY_HEADER.lower().encode()
_CLIENT_ID = CLIENT_ID_HEADER.lower().encode()


class _HTTPError(Exception):
    def __init__(
        self, status: int, name: str, message: str, headers: list[tuple[bytes, bytes]] | None = None
    ):
        super().__init__(message)
        self.status = status
        self.name = name
        self.message = message
        self.headers = headers or []


class Pages(Protocol):
    """An ASGI app mounted beside the API (the dashboard) for the paths it handles."""

    def handles(self, path: str) -> bool: ...

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...


PagesFactory = Callable[[LightningStore, "str | None"], Pages]
"""Builds the pages of a store, given the store and the server's token (None: open)."""


def _error_answer(status: int, name: str, message: str) -> Answer:
    return Answer(status, dumps(error_body(name, message)))


class StoreApp:
    """ASGI app serving ``store``. ``token``: required bearer token (None: open)."""

    def __init__(
        self,
        store: LightningStore,
        *,
        token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        idempotency: IdempotencyCache | None = None,
        metrics: bool = True,
        pages: PagesFactory | None = None,
    ) -> None:
        check_positive_int("StoreApp max_body_bytes", max_body_bytes)
        self.metrics_endpoint: Any = None
        if metrics:
            self.metrics_endpoint, store = _with_metrics(store)
        self.store = store
        self.max_body_bytes = max_body_bytes
        self.idempotency = idempotency if idempotency is not None else IdempotencyCache()
        self._auth = b"Bearer " + token.encode() if token else None
        self._checkers: dict[str, Checker] = {}
        self._openapi: bytes | None = None
        self.pages = pages(store, token or None) if pages is not None else None
        models = _models()
        for name, op in OPERATIONS.items():
            self._checkers[name] = compile_schema(op.body_schema(), models)

    # --- ASGI entry point -------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if self.pages is not None and self.pages.handles(path):
            await self.pages(scope, receive, send)  # it applies the same token itself
            return
        method: str = scope["method"]
        headers = dict(scope["headers"])
        extra: list[tuple[bytes, bytes]] = []
        content_type = _JSON
        try:
            if path == "/health":
                _require_method(method, ("GET", "HEAD"), path)
                answer = Answer(200, _OK_HEALTH)
            else:
                self._check_auth(headers)
                if path.startswith(STORE_PREFIX):
                    _require_method(method, ("POST",), path)
                    answer, replayed = await self._operation(
                        path[len(STORE_PREFIX) :], headers, receive, scope.get("client")
                    )
                    if replayed:
                        extra.append((b"idempotent-replayed", b"true"))
                elif path == "/v1/traces":
                    _require_method(method, ("POST",), path)
                    answer = await self._otlp(headers, receive)
                    if answer.status == 200:
                        content_type = _PROTOBUF
                elif path == "/metrics":
                    if self.metrics_endpoint is None:
                        raise _HTTPError(404, "RouteNotFound", _NO_METRICS)
                    await self.metrics_endpoint(scope, receive, send)
                    return
                elif path == "/openapi.json":
                    _require_method(method, ("GET", "HEAD"), path)
                    answer = Answer(200, self._openapi_bytes())
                else:
                    raise _HTTPError(
                        404, "RouteNotFound", f"No route {path!r}; see GET /openapi.json for the API"
                    )
        except _HTTPError as exc:
            answer = _error_answer(exc.status, exc.name, exc.message)
            extra.extend(exc.headers)
        await _send(send, answer, content_type, extra, head=method == "HEAD")

    # --- checks -----------------------------------------------------------------------

    def _check_auth(self, headers: dict[bytes, bytes]) -> None:
        if self._auth is None:
            return
        given = headers.get(b"authorization", b"")
        if not hmac.compare_digest(given, self._auth):
            raise _HTTPError(
                401,
                "Unauthorized",
                "Missing or wrong bearer token: send 'Authorization: Bearer <token>' with the server's token",
                [(b"www-authenticate", b"Bearer")],
            )

    async def _read_body(self, headers: dict[bytes, bytes], receive: Receive) -> bytes:
        limit = self.max_body_bytes
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise _too_large(int(length), limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _HTTPError(400, "ClientDisconnected", "The client disconnected before sending the body")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _too_large(size, limit)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        encoding = headers.get(b"content-encoding", b"identity").strip().lower()
        if encoding == b"gzip":
            return _gunzip(body, limit)
        if encoding not in (b"identity", b""):
            raise _HTTPError(
                415,
                "UnsupportedMediaType",
                f"Unsupported Content-Encoding {encoding.decode('latin-1')!r}; send gzip or no encoding",
            )
        return body

    # --- store operations -------------------------------------------------------------

    async def _operation(
        self, name: str, headers: dict[bytes, bytes], receive: Receive, peer: Any
    ) -> tuple[Answer, bool]:
        op = OPERATIONS.get(name)
        if op is None:
            raise _HTTPError(
                404,
                "RouteNotFound",
                f"Unknown store operation {name!r}; available: {', '.join(OPERATIONS)}",
            )
        body = await self._read_body(headers, receive)
        key = headers.get(_IDEMPOTENCY)
        if key and not op.read_only:
            # Keys are only unique per client: scope them by the client's id and address, so
            # two clients that happen to send the same key never get each other's answers.
            host = peer[0] if peer else None
            scoped = (headers.get(_CLIENT_ID, b""), host, name, key)
            return await self.idempotency.run(scoped, lambda: self._execute(op, body))
        return await self._execute(op, body), False

    async def _execute(self, op: Operation, body: bytes) -> Answer:
        try:
            data = loads(body) if body else {}
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return _error_answer(400, "MalformedJSON", f"The request body is not valid JSON: {exc}")
        if type(data) is not dict:
            return _error_answer(
                422, "InvalidRequest", f"The request body must be a JSON object, got {type(data).__name__}"
            )
        try:
            kwargs = op.quick_decode(data) if op.quick_decode is not None else None
            if kwargs is None:
                self._checkers[op.name](data, op.name)
                kwargs = {
                    p.name: p.decode(data[p.name]) if p.decode else data[p.name]
                    for p in op.params
                    if p.name in data
                }
        except SchemaError as exc:
            return _error_answer(422, "InvalidRequest", str(exc))
        except (ValueError, TypeError) as exc:
            return _error_answer(422, type(exc).__name__, f"{op.name}: {exc}")
        try:
            if op.handler is not None:
                result = await op.handler(self.store, **kwargs)
            else:
                result = await getattr(self.store, op.name)(**kwargs)
            return Answer(200, dumps(op.result.encode(result)))
        except Exception as exc:
            status = status_for_exception(exc)
            if status >= 500:
                logger.exception("Store operation %s failed", op.name)
            return _error_answer(status, type(exc).__name__, str(exc) or repr(exc))

    # --- OTLP -------------------------------------------------------------------------

    async def _otlp(self, headers: dict[bytes, bytes], receive: Receive) -> Answer:
        from agentlightning_core.remote import _otlp as otlp

        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().decode("latin-1").lower()
        if content_type not in otlp.OTLP_CONTENT_TYPES:
            raise _HTTPError(
                415,
                "UnsupportedMediaType",
                f"POST /v1/traces takes OTLP protobuf (Content-Type: application/x-protobuf), got {content_type!r}",
            )
        body = await self._read_body(headers, receive)
        try:
            request = otlp.decode_export_request(body)
        except ValueError as exc:
            raise _HTTPError(400, "MalformedProtobuf", str(exc)) from None
        result = otlp.IngestResult()
        spans = otlp.spans_from_request(request, result)
        try:
            await otlp.ingest_spans(self.store, spans, result)
        except Exception as exc:
            logger.exception("Storing %d OTLP spans failed", len(spans))
            return _error_answer(500, type(exc).__name__, str(exc) or repr(exc))
        if result.rejected:
            logger.warning("OTLP export: rejected %d span(s): %s", result.rejected, "; ".join(result.reasons))
        return Answer(200, otlp.encode_export_response(result))

    def _openapi_bytes(self) -> bytes:
        if self._openapi is None:
            from agentlightning_core.remote._openapi import openapi_document

            self._openapi = dumps(openapi_document(bearer=self._auth is not None))
        return self._openapi


_NO_METRICS = (
    "This store server has no /metrics: it was started with metrics off, or prometheus-client is not "
    "installed (pip install 'agentlightning-core[metrics]')"
)


def _with_metrics(store: LightningStore) -> tuple[Any, LightningStore]:
    """The ``/metrics`` handler and the instrumented store (reusing the metrics of a store that
    already is instrumented); ``(None, store)`` without prometheus-client."""
    from agentlightning_core.metrics import MetricsEndpoint, instrument_store, instrumented_metrics

    try:
        served = instrument_store(store)
    except ImportError as exc:
        logger.debug("No /metrics: %s", exc)
        return None, store
    metrics, inner = instrumented_metrics(served) or (None, store)
    assert metrics is not None
    return MetricsEndpoint(metrics.registry, lambda: metrics.refresh(inner)), served


def _models() -> dict[str, Any]:
    from agentlightning_core.remote._openapi import MODEL_CLASSES

    return model_schemas(*MODEL_CLASSES)


def _require_method(method: str, allowed: tuple[str, ...], path: str) -> None:
    if method not in allowed:
        raise _HTTPError(
            405,
            "MethodNotAllowed",
            f"{method} is not allowed on {path}; use {' or '.join(allowed)}",
            [(b"allow", ", ".join(allowed).encode())],
        )


def _too_large(size: int, limit: int) -> _HTTPError:
    return _HTTPError(
        413,
        "PayloadTooLarge",
        f"Request body of {size} bytes exceeds the server's limit of {limit} bytes; send smaller batches",
    )


def _gunzip(body: bytes, limit: int) -> bytes:
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(body, limit + 1)
    except zlib.error as exc:
        raise _HTTPError(
            400, "MalformedGzip", f"Content-Encoding is gzip but the body is not: {exc}"
        ) from None
    if len(out) > limit or decompressor.unconsumed_tail:
        raise _too_large(len(out), limit)
    if not decompressor.eof:
        raise _HTTPError(400, "MalformedGzip", "Content-Encoding is gzip but the gzip stream is truncated")
    return out


async def _send(
    send: Send, answer: Answer, content_type: bytes, extra: list[tuple[bytes, bytes]], *, head: bool
) -> None:
    content_type = content_type if answer.status < 400 else _JSON
    headers = [(b"content-type", content_type), (b"content-length", str(len(answer.body)).encode()), *extra]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else answer.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
