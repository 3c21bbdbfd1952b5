"""Shared fixtures (an initialised ``OtelTracer``); span helpers live in ``lc_spans``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentlightning_core import OtelTracer

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def tracer() -> Iterator[OtelTracer]:
    tracer = OtelTracer()
    tracer.init()
    yield tracer
    tracer.teardown()
