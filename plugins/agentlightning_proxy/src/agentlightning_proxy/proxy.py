"""``LLMProxy``: between agents and model servers, recording every call into the store.

::

    async with store, LLMProxy([Upstream("vllm", "http://127.0.0.1:8000/v1", ["qwen"])], store) as proxy:
        trainer = Trainer(..., initial_resources={"llm": proxy.as_resource("qwen")})

Each agent then calls ``{proxy}/rollout/{rollout_id}/attempt/{attempt_id}/v1/...`` (what
``ProxyLLM.get_base_url`` gives), or the plain ``/v1/...`` with ``x-rollout-id`` and
``x-attempt-id`` headers. The proxy runs on uvicorn in the caller's asyncio event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Generator, Sequence
from types import TracebackType
from typing import Any, Self

import anyio

from agentlightning_core import LightningStore, ProxyLLM, Span
from agentlightning_proxy._app import ProxyApp, ProxyStats, Route
from agentlightning_proxy.config import Upstream

__all__ = ["LLMProxy"]

logger = logging.getLogger(__name__)

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class LLMProxy:
    """An OpenAI- and Anthropic-compatible proxy that records each call as a span.

    :param upstreams: the model servers; several may serve one model name (a rollout sticks
        to one of them, the others take over when it cannot be reached).
    :param store: where spans go; None forwards only (every call is then unattributed).
    :param host: address to listen on (127.0.0.1: this machine only).
    :param port: port to listen on; 0 picks a free one (see :attr:`url`).
    :param token: when set, clients must send it as their API key; the upstreams then get
        their own ``api_key`` (or none) instead of the client's.
    :param capture_tokens: ask OpenAI-compatible upstreams for token ids (vLLM's
        ``return_token_ids``) and remove them from answers to clients that did not ask.
    :param max_retries: retries of a call on connection errors and 408/429/5xx.
    :param backoff_seconds: first retry delay (doubling, jittered by +-50%).
    :param timeout_seconds: longest wait for a byte from the upstream.
    :param max_body_bytes: larger request bodies get 413.
    :param keep_unattributed: how many spans of unattributed calls :attr:`unattributed` keeps.
    :param metrics: serve Prometheus metrics at ``GET /metrics`` (behind the token, like every
        route but ``/health``; names in docs/proxy.md).
    """

    def __init__(
        self,
        upstreams: Sequence[Upstream] | Upstream,
        store: LightningStore | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str | None = None,
        *,
        capture_tokens: bool = False,
        max_retries: int = 2,
        backoff_seconds: float = 0.2,
        timeout_seconds: float = 600.0,
        max_body_bytes: int = 32 * 1024 * 1024,
        keep_unattributed: int = 1000,
        metrics: bool = True,
        log_level: str = "warning",
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"LLMProxy port must be in 0..65535 (0: any free one), got {port!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"LLMProxy max_retries must be an integer >= 0, got {max_retries!r}")
        if host not in _LOCAL_HOSTS and not token:
            logger.warning(
                "LLM proxy on %s:%s has no token: anyone who can reach it can spend your model budget",
                host,
                port,
            )
        self.host = host
        self.port = port
        self.token = token
        self.log_level = log_level
        self.app = ProxyApp(
            [upstreams] if isinstance(upstreams, Upstream) else list(upstreams),
            store,
            token=token,
            capture_tokens=capture_tokens,
            max_retries=max_retries,
            backoff_seconds=backoff_seconds,
            timeout_seconds=timeout_seconds,
            max_body_bytes=max_body_bytes,
            keep_unattributed=keep_unattributed,
            metrics=metrics,
        )
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    # --- what clients use -------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port`` (the port chosen once started when ``port=0``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI ``base_url`` of unattributed calls: ``{url}/v1``."""
        return f"{self.url}/v1"

    def base_url_for(self, rollout_id: str, attempt_id: str) -> str:
        """The ``base_url`` that attributes calls to one attempt."""
        return f"{self.url}/rollout/{rollout_id}/attempt/{attempt_id}/v1"

    def as_resource(self, model: str, sampling_parameters: dict[str, Any] | None = None) -> ProxyLLM:
        """A ``ProxyLLM`` for ``initial_resources``: the runner hands each attempt its own URL."""
        if not self.started:
            raise RuntimeError(
                "LLMProxy.as_resource needs a started proxy (its port); use it inside `async with proxy:`"
            )
        return ProxyLLM(
            endpoint=self.base_url,
            model=model,
            sampling_parameters=dict(sampling_parameters or {}),
            api_key=self.token,
        )

    @property
    def stats(self) -> ProxyStats:
        return self.app.stats

    @property
    def unattributed(self) -> list[Span]:
        """Spans of the latest unattributed calls (no ids, or a rollout the store does not know)."""
        return list(self.app.unattributed)

    @property
    def models(self) -> list[str]:
        return self.app.models

    def add_route(self, method: str, path: str, route: Route) -> None:
        """Mount an extra ASGI route (e.g. ``GET /status``) behind the token; calls to it are not recorded."""
        self.app.add_route(method, path, route)

    # --- weight updates ---------------------------------------------------------------------

    async def pause(self) -> None:
        """Answer new calls with 429 and ``Retry-After``, and return once in-flight calls are done.

        For an algorithm about to swap the model's weights; :meth:`resume` ends the pause.
        """
        await self.app.pause()

    def resume(self) -> None:
        self.app.paused = False

    @property
    def paused(self) -> bool:
        return self.app.paused

    # --- lifecycle --------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._task is not None

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio then sets TCP_NODELAY
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(2048)
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno,
                f"LLMProxy cannot listen on {self.host}:{self.port}: {exc.strerror}. Pick another port (0: any free one).",
            ) from exc
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        return sock

    async def start(self) -> None:
        """Bind, open the upstream connection pool and serve in a background task of this loop."""
        if self._task is not None:
            return
        import uvicorn

        sock = self._bind()
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            log_level=self.log_level,
            access_log=False,
            proxy_headers=False,  # the proxy never reads the client's address: skip the middleware
            server_header=False,
            date_header=False,
            timeout_graceful_shutdown=5,
        )
        ready = anyio.Event()

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Generator[None, None, None]:
                yield  # signals belong to the embedding application (agl proxy serve handles them)

            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets=sockets)
                ready.set()

        await self.app.open()
        server = self._server = _Server(config)

        async def serve() -> None:
            try:
                await server.serve([sock])
            finally:
                sock.close()

        task = asyncio.get_running_loop().create_task(serve(), name=f"agl-llm-proxy-{self.port}")
        waiter = asyncio.ensure_future(ready.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task.done():
            await self.app.close()
            task.result()
            raise RuntimeError(f"LLMProxy on {self.url} stopped while starting")
        self._task = task
        logger.info(
            "LLM proxy listening on %s (upstreams: %s)",
            self.url,
            ", ".join(u.name for u in self.app.upstreams),
        )

    async def aclose(self) -> None:
        """Stop accepting calls, let in-flight ones finish, close the pool. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            self._server.should_exit = True
            await task
        await self.app.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
