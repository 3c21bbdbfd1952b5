"""Shared pytest configuration of the monorepo: async tests run on asyncio."""

import pytest

# A top-level distribution folder has its package's name; import the real package before pytest
# names test modules after the folder (importlib mode), or the folder would shadow it.
import agentlightning_agentops  # noqa: F401
import agentlightning_apo  # noqa: F401
import agentlightning_langchain  # noqa: F401


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
