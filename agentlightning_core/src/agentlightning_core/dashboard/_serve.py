"""Serving the dashboard alone (``agl dashboard``), on the store server's uvicorn machinery."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

import anyio

from agentlightning_core.dashboard._app import DashboardApp
from agentlightning_core.remote._config import DEFAULT_DASHBOARD_PORT, DEFAULT_HOST, event_loop_options
from agentlightning_core.remote.server import LightningStoreServer
from agentlightning_core.store.base import LightningStore

__all__ = ["DashboardServer", "run_dashboard_until_signal"]

logger = logging.getLogger(__name__)


class DashboardServer(LightningStoreServer):
    """Only the dashboard of ``store`` over HTTP: no store API, so nothing can change the store.

    Same arguments, token rule (``AGL_SERVER_TOKEN`` when ``token`` is None) and lifecycle as
    :class:`LightningStoreServer`.
    """

    def __init__(
        self,
        store: LightningStore,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_DASHBOARD_PORT,
        *,
        token: str | None = None,
        log_level: str = "warning",
    ) -> None:
        super().__init__(store, host, port, token=token, log_level=log_level)
        self.app = DashboardApp(store, self.token)


def run_dashboard_until_signal(
    store: LightningStore,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_DASHBOARD_PORT,
    *,
    token: str | None = None,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Open ``store`` and serve its dashboard until SIGINT or SIGTERM, then close both."""

    async def main() -> None:
        async with store, DashboardServer(store, host, port, token=token) as server:
            if announce is not None:
                announce(server.url)
            with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    logger.info("Received %s: stopping the dashboard", signal.Signals(signum).name)
                    return

    anyio.run(main, backend="asyncio", backend_options=event_loop_options())
