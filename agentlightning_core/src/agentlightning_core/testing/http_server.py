"""A real store server on 127.0.0.1 in a background thread, for tests of HTTP clients.

One :class:`StoreServerThread` runs one uvicorn server in its own thread and event loop and
serves any number of stores, each under its own URL prefix (``/s/<n>``), so a test module
pays for one server while every test gets a fresh, empty store::

    with StoreServerThread() as servers:
        url = servers.mount(InMemoryLightningStore())   # http://127.0.0.1:PORT/s/1
        ...
        servers.unmount(url)

Stores live in the server thread's loop: start and close them there with :meth:`run`
(from synchronous code) or :meth:`arun` (from any other event loop).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar

from agentlightning_core.remote._app import StoreApp
from agentlightning_core.remote._config import DEFAULT_HOST
from agentlightning_core.remote.server import LightningStoreServer
from agentlightning_core.store.base import LightningStore

__all__ = ["StoreServerThread"]

T = TypeVar("T")
_Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]


class _Router:
    """ASGI app dispatching ``/s/<n>/...`` to the store app mounted as ``n``."""

    def __init__(self) -> None:
        self.apps: dict[str, StoreApp] = {}
        self.handlers: dict[str, ASGIApp] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: _Send) -> None:
        if scope["type"] != "http":
            return
        _, _, rest = scope["path"].partition("/s/")
        name, slash, tail = rest.partition("/")
        app = self.handlers.get(name)
        if app is None or not scope["path"].startswith("/s/"):
            body = b'{"error":"RouteNotFound","message":"no store mounted at this path"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 404,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await app({**scope, "path": slash + tail}, receive, send)


class StoreServerThread:
    """A uvicorn server on ``127.0.0.1:<free port>`` in a daemon thread, serving mounted stores."""

    def __init__(self) -> None:
        self._router = _Router()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="agl-store-server", daemon=True)
        self._server: LightningStoreServer | None = None
        self._count = 0
        self._held: dict[str, tuple[asyncio.Event, asyncio.Task[None]]] = {}

    def start(self) -> None:
        self._thread.start()
        # The router takes the place of the single store app; the server's own store is unused.
        server = LightningStoreServer(None, DEFAULT_HOST, 0)  # type: ignore[arg-type]
        server.app = self._router  # type: ignore[assignment]
        self.run(server.start())
        self._server = server

    def close(self) -> None:
        if self._server is not None:
            self.run(self._server.aclose())
            self._server = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("StoreServerThread is not started")
        return self._server.url

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` in the server's loop and return its result (blocking the caller)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` in the server's loop, awaiting it from the caller's asyncio loop."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    def mount(
        self,
        store: LightningStore,
        *,
        token: str | None = None,
        max_body_bytes: int | None = None,
        wrap: Callable[[StoreApp], ASGIApp] | None = None,
    ) -> str:
        """Serve ``store`` under a new prefix and return its base URL (the store is not started).

        ``wrap(app)`` returns an ASGI app to serve instead, e.g. one that injects failures.
        """
        self._count += 1
        name = str(self._count)
        kwargs: dict[str, Any] = {"token": token}
        if max_body_bytes is not None:
            kwargs["max_body_bytes"] = max_body_bytes
        app = self._router.apps[name] = StoreApp(store, **kwargs)
        self._router.handlers[name] = wrap(app) if wrap is not None else app
        return f"{self.base_url}/s/{name}"

    def unmount(self, url: str) -> None:
        name = url.rsplit("/", 1)[-1]
        self._router.apps.pop(name, None)
        self._router.handlers.pop(name, None)

    def app(self, url: str) -> StoreApp:
        """The app serving ``url`` (to inspect its idempotency cache, say)."""
        return self._router.apps[url.rsplit("/", 1)[-1]]

    async def open_store(self, store: LightningStore, **mount_options: Any) -> str:
        """Mount ``store`` and keep it entered (``async with store``) in the server's loop until
        :meth:`close_store`; a store's start and close then run in one task, as they must."""
        url = self.mount(store, **mount_options)
        started: asyncio.Future[None] = self._loop.create_future()
        stop = asyncio.Event()

        async def hold() -> None:
            try:
                async with store:
                    started.set_result(None)
                    await stop.wait()
            except BaseException as exc:
                if not started.done():
                    started.set_exception(exc)
                raise

        async def begin() -> asyncio.Task[None]:
            task = asyncio.get_running_loop().create_task(hold())
            await started
            return task

        task = await self.arun(begin())
        self._held[url] = (stop, task)
        return url

    async def close_store(self, url: str) -> None:
        """Close a store opened with :meth:`open_store` and unmount it."""
        held = self._held.pop(url, None)
        self.unmount(url)
        if held is None:
            return
        stop, task = held

        async def end() -> None:
            stop.set()
            await task

        await self.arun(end())
