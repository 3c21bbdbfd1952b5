"""Pytest fixtures for Agent Lightning (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from agentlightning_core.testing.openai_server import OpenAIServer

__all__ = ["agl_openai_server", "agl_register_plugin"]


@pytest.fixture
def agl_register_plugin() -> Iterator[Callable[..., str]]:
    """Register a plugin (module or object with hookimpls) for the current test only.

    ``agl_register_plugin(plugin, name=None)`` returns the plugin's name; it is
    unregistered, and the component registry rebuilt, when the test ends.
    """
    from agentlightning_core.plugins import registered_plugin

    with ExitStack() as stack:

        def register(plugin: object, name: str | None = None) -> str:
            return stack.enter_context(registered_plugin(plugin, name))

        yield register


@pytest.fixture
def agl_openai_server() -> Iterator[OpenAIServer]:
    """A started scripted OpenAI-compatible server on 127.0.0.1 (echoes the last user message
    until replies are queued with ``add_reply``); ``base_url`` goes to the ``openai`` client."""
    from agentlightning_core.testing.openai_server import OpenAIServer

    with OpenAIServer() as server:
        yield server
