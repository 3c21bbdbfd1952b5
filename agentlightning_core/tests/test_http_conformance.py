"""The HTTP client passes the store conformance suites against a live server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from agentlightning_core.remote.client import LightningStoreClient
from agentlightning_core.store.memory import InMemoryLightningStore
from agentlightning_core.testing.http_server import StoreServerThread
from agentlightning_core.testing.store import SpanBudgetConformance, StoreConformance, StoreFactory


class MountedClient(LightningStoreClient):
    """A client of a fresh in-memory store served by the module's server thread.

    Entering the client opens the backing store in the server's loop; leaving closes it.
    """

    def __init__(self, servers: StoreServerThread, **options: Any) -> None:
        self.backing = InMemoryLightningStore(**options)
        self.servers = servers
        super().__init__(servers.base_url, max_retries=1, backoff_seconds=0.01)

    async def start(self) -> None:
        self.url = await self.servers.open_store(self.backing)
        await super().start()

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            await self.servers.close_store(self.url)


@pytest.fixture(scope="module")
def servers() -> Iterator[StoreServerThread]:
    with StoreServerThread() as s:
        yield s


@pytest.fixture
def http_factory(servers: StoreServerThread) -> StoreFactory:
    return lambda **options: MountedClient(servers, **options)


class TestHttpStore(StoreConformance):
    @pytest.fixture
    def store_factory(self, http_factory: StoreFactory) -> StoreFactory:
        return http_factory


class TestHttpSpanBudget(SpanBudgetConformance):
    @pytest.fixture
    def store_factory(self, http_factory: StoreFactory) -> StoreFactory:
        return http_factory
