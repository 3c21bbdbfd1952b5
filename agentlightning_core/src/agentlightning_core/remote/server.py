"""``LightningStoreServer``: any store behind HTTP, served by uvicorn in the current event loop.

Use it as an async context manager; the listening socket is bound before ``__aenter__``
returns, so ``server.url`` is ready to hand to clients (``port=0`` picks a free port)::

    async with store, LightningStoreServer(store, port=0) as server:
        client = LightningStoreClient(server.url)

The server does not start or close the store: its owner does.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any, Self

import anyio

from agentlightning_core.otlp_export import OtlpSpec, forwarding_store, otlp_exporter
from agentlightning_core.remote._app import DEFAULT_MAX_BODY_BYTES, Pages, PagesFactory, StoreApp
from agentlightning_core.remote._config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    LOCAL_HOSTS,
    TOKEN_ENV,
    base_url,
    event_loop_options,
    token_from_env,
)
from agentlightning_core.store.base import LightningStore
from agentlightning_core.validation import check_positive_int

__all__ = ["LightningStoreServer", "bind_socket", "run_server_processes", "run_server_until_signal"]

logger = logging.getLogger(__name__)


def bind_socket(host: str, port: int) -> socket.socket:
    """A non-blocking TCP socket listening on ``host:port`` (0: a free port), or an ``OSError``
    that says what to do."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(
        family, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )  # IPPROTO_TCP: asyncio then sets TCP_NODELAY
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise OSError(
            exc.errno,
            f"Cannot listen on {host}:{port}: {exc.strerror}. Pick another --port (0 for any free one) "
            "or stop the process using it.",
        ) from exc
    sock.setblocking(False)
    return sock


class LightningStoreServer:
    """Serve ``store`` over HTTP on ``host:port`` (127.0.0.1 unless told otherwise).

    :param token: bearer token every request but ``GET /health`` must carry; None (default)
        reads ``AGL_SERVER_TOKEN`` and, when that is unset too, serves without one.
    :param max_body_bytes: larger request bodies get 413.
    :param graceful_shutdown_seconds: how long in-flight requests may finish on close.
    :param otlp: also forward every span the store accepts (from any route) to an OTLP/HTTP
        endpoint: a URL, a dict of :class:`~agentlightning_core.otlp_export.OtlpExporter`
        arguments, an exporter, or True for the ``OTEL_EXPORTER_OTLP_*`` variables (docs/otlp.md).
    :param metrics: serve Prometheus metrics at ``GET /metrics`` (with prometheus-client installed).
    :param pages: builds read-only pages served beside the API (``agl store serve`` passes
        the dashboard, :class:`agentlightning_core.dashboard.DashboardApp`).
    """

    def __init__(
        self,
        store: LightningStore,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        token: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        graceful_shutdown_seconds: int = 5,
        log_level: str = "warning",
        sock: socket.socket | None = None,
        otlp: OtlpSpec = None,
        metrics: bool = True,
        pages: PagesFactory | None = None,
    ) -> None:
        port = check_positive_int("LightningStoreServer port", port, minimum=0)
        if port > 65535:
            raise ValueError(f"LightningStoreServer port must be in 0..65535 (0: any free one), got {port!r}")
        check_positive_int("LightningStoreServer graceful_shutdown_seconds", graceful_shutdown_seconds)
        token = token_from_env(token)
        if host not in LOCAL_HOSTS and not token:
            logger.warning(
                "Store server on %s:%s has no token: anyone who can reach it can read and change the "
                "store. Set one with token=... or %s.",
                host,
                port,
                TOKEN_ENV,
            )
        self.store = store
        self.host = host
        self.port = port
        self.token = token
        self.otlp = otlp_exporter(otlp)
        served = store if self.otlp is None else forwarding_store(store, self.otlp)
        self.app: StoreApp | Pages = StoreApp(
            served, token=token, max_body_bytes=max_body_bytes, metrics=metrics, pages=pages
        )
        self.graceful_shutdown_seconds = graceful_shutdown_seconds
        self.log_level = log_level
        self._uvicorn: Any = None
        self._task: asyncio.Task[None] | None = None
        self._sock = sock
        if sock is not None:
            self.port = sock.getsockname()[1]

    @property
    def url(self) -> str:
        """Base URL clients use, e.g. ``http://127.0.0.1:4747``."""
        return base_url(self.host, self.port)

    @property
    def started(self) -> bool:
        return self._task is not None

    def _bind(self) -> socket.socket:
        if self._sock is not None:  # listening already, shared with other server processes
            return self._sock
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        return sock

    def _make_uvicorn(self) -> Any:
        import uvicorn

        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            log_level=self.log_level,
            access_log=False,
            timeout_graceful_shutdown=self.graceful_shutdown_seconds,
            server_header=False,
        )

        class _Server(uvicorn.Server):
            ready: anyio.Event | None = None

            @contextlib.contextmanager
            def capture_signals(self) -> Generator[None, None, None]:
                # Signals belong to the application embedding the server (agl store serve
                # handles them itself), so uvicorn must not take SIGINT/SIGTERM over.
                yield

            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets=sockets)
                if self.ready is not None:
                    self.ready.set()

        return _Server(config)

    async def serve(self) -> None:
        """Serve in the calling task until :meth:`request_shutdown` is called."""
        await self._serve(None)

    async def _serve(self, ready: anyio.Event | None) -> None:
        if self._uvicorn is not None:
            raise RuntimeError(f"The store server on {self.url} is already running")
        sock = self._bind()
        server = self._uvicorn = self._make_uvicorn()
        server.ready = ready
        try:
            await server.serve([sock])
        finally:
            sock.close()
            self._uvicorn = None

    async def start(self) -> None:
        """Bind and serve in a background task; returns once uvicorn answers requests.

        uvicorn runs on asyncio only, so this does too. :meth:`aclose` may be called from any
        task of the same loop.
        """
        if self._task is not None:
            return
        ready = anyio.Event()
        task = asyncio.get_running_loop().create_task(
            self._serve(ready), name=f"agl-store-server-{self.port}"
        )
        ready_wait = asyncio.ensure_future(ready.wait())
        try:
            await asyncio.wait({task, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while starting: stop the server task, free the port
            with anyio.CancelScope(shield=True):
                await self._stop_task(task)
            raise
        finally:
            ready_wait.cancel()
        if task.done():  # failed (or stopped) before it was ready
            task.result()
            raise RuntimeError(f"The store server on {self.host}:{self.port} stopped while starting")
        self._task = task
        logger.info("Store server listening on %s", self.url)

    def request_shutdown(self) -> None:
        """Ask uvicorn to stop gracefully; :meth:`serve` then returns."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    async def aclose(self) -> None:
        """Stop accepting connections, let in-flight requests finish, and return. Idempotent."""
        task, self._task = self._task, None
        self.request_shutdown()
        if task is not None:
            await task
        if self.otlp is not None:
            await anyio.to_thread.run_sync(self.otlp.close)

    async def _stop_task(self, task: asyncio.Task[None]) -> None:
        """Stop a server task that may not have run yet, and wait until it has ended."""
        if self._uvicorn is None:
            task.cancel()  # not started: it never binds
        else:
            self.request_shutdown()  # uvicorn finishes starting, then shuts down gracefully
        with anyio.move_on_after(self.graceful_shutdown_seconds + 5.0):
            await asyncio.wait({task})
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            logger.warning("Store server stopped while starting: %r", task.exception())

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


def run_server_until_signal(
    store: LightningStore,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    token: str | None = None,
    announce: Callable[[str], None] | None = None,
    sock: socket.socket | None = None,
    otlp: OtlpSpec = None,
    metrics: bool = True,
    pages: PagesFactory | None = None,
) -> None:
    """Open ``store``, serve it until SIGINT or SIGTERM, then close both (uvloop when installed).

    ``sock``: serve this listening socket (shared with other server processes) instead of
    binding ``host:port``.

    ``announce(url)`` is called once the server answers requests; ``pages`` as for
    :class:`LightningStoreServer`. Meant for a process that
    only serves: it also makes the garbage collector run less often (a store holds many
    long-lived objects that every full collection would walk again), which measured about
    20% more spans/s on large span batches. ``otlp`` as for :class:`LightningStoreServer`.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)

    async def main() -> None:
        async with (
            store,
            LightningStoreServer(
                store, host, port, token=token, sock=sock, otlp=otlp, metrics=metrics, pages=pages
            ) as server,
        ):
            if announce is not None:
                announce(server.url)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    logger.info("Received %s: stopping the store server", signal.Signals(signum).name)
                    return

    anyio.run(main, backend="asyncio", backend_options=event_loop_options())


def _serve_worker(
    spec: Any,
    sock: socket.socket,
    token: str | None,
    otlp: OtlpSpec,
    metrics: bool,
    pages: PagesFactory | None,
    ready: Any,
) -> None:
    """One process of :func:`run_server_processes`: its own store from ``spec``, the shared socket."""
    from agentlightning_core.plugins import resolve_component

    run_server_until_signal(
        resolve_component("store", spec),
        token=token,
        sock=sock,
        otlp=otlp,
        metrics=metrics,
        pages=pages,
        announce=ready.send,
    )


def run_server_processes(
    spec: Any,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    workers: int,
    token: str | None = None,
    announce: Callable[[str], None] | None = None,
    otlp: OtlpSpec = None,
    metrics: bool = True,
    pages: PagesFactory | None = None,
) -> int:
    """Serve the store of ``spec`` from ``workers`` processes sharing one listening socket
    (the kernel spreads connections over them) until SIGINT or SIGTERM; returns the exit code.

    Each process builds its own store from ``spec`` (a component spec), so the store must keep
    its data where processes share it (a database), not in process memory. ``announce(url)``
    is called once every process answers requests. A process that dies stops the others (exit
    code 1).
    """
    import multiprocessing
    import multiprocessing.connection

    workers = check_positive_int("workers", workers)
    sock = bind_socket(host, port)
    url = base_url(host, sock.getsockname()[1])
    context = multiprocessing.get_context("spawn")  # no inherited event loop, threads or connections
    pipes = [context.Pipe(duplex=False) for _ in range(workers)]
    processes = [
        context.Process(
            target=_serve_worker,
            args=(spec, sock, token, otlp, metrics, pages, sender),
            name=f"agl-store-server-{i}",
        )
        for i, (_, sender) in enumerate(pipes)
    ]
    readers: list[Any] = [reader for reader, _ in pipes]

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        for process in processes:
            process.start()
        sock.close()  # the processes hold it now
        for _, sender in pipes:
            sender.close()
        sentinels = {process.sentinel: process for process in processes}
        while True:
            ended = multiprocessing.connection.wait([*sentinels, *readers])
            dead = [sentinels[s] for s in ended if s in sentinels]
            if dead:
                logger.error(
                    "Store server process %s exited with code %s; stopping the others",
                    ", ".join(str(p.pid) for p in dead),
                    ", ".join(str(p.exitcode) for p in dead),
                )
                code = 1
                break
            for reader in readers[:]:
                if reader in ended:
                    reader.recv()  # that process answers requests
                    readers.remove(reader)
            if not readers and announce is not None:
                announce(url)
                announce = None
    except KeyboardInterrupt:
        logger.info("Stopping %d store server processes", workers)
    finally:
        signal.signal(signal.SIGTERM, previous)
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                process.terminate()  # SIGTERM: a graceful stop
        for process in processes:
            if process.pid is not None:
                process.join(timeout=30)
                if process.exitcode is None:
                    process.kill()
                    process.join()
    return code
