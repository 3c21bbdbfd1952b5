"""Fixtures: a store, the core's scripted model server and a proxy in front of it, all on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from agentlightning_core import AttemptedRollout, InMemoryLightningStore
from agentlightning_core.testing.openai_server import OpenAIServer
from agentlightning_proxy import LLMProxy, Upstream


@pytest.fixture
def server() -> Iterator[OpenAIServer]:
    with OpenAIServer() as server:
        yield server


@pytest.fixture
async def store() -> AsyncIterator[InMemoryLightningStore]:
    async with InMemoryLightningStore() as store:
        yield store


@pytest.fixture
async def proxy(server: OpenAIServer, store: InMemoryLightningStore) -> AsyncIterator[LLMProxy]:
    async with LLMProxy([Upstream("scripted", server.base_url)], store, backoff_seconds=0.01) as proxy:
        yield proxy


@pytest.fixture
async def attempt(store: InMemoryLightningStore) -> AttemptedRollout:
    return await store.start_rollout({"task": 1})
