"""Fixtures of the APO tests (helpers live in ``apo_world``)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apo_world import World, make_world_fixture

from agentlightning_core import LLM
from agentlightning_core.testing.openai_server import OpenAIServer


@pytest.fixture
def make_world() -> Iterator[Callable[[list[str]], tuple[World, OpenAIServer, LLM]]]:
    yield from make_world_fixture()
