"""Fixtures of the embedded-model tests: the 0.5B catalogue model, assembled once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentlightning_local import LocalModel, ensure_model_file, get_model

TEST_MODEL = "qwen2.5-coder-0.5b"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: end-to-end test that starts a real model server")


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding the test model, assembled (and SHA-256 verified) for this session."""
    folder = tmp_path_factory.mktemp("model-cache")
    ensure_model_file(get_model(TEST_MODEL), folder)
    return folder


@pytest.fixture(scope="module")
def local_model(model_cache: Path) -> Iterator[LocalModel]:
    """One running server shared by a module's tests (started with the sync context manager)."""
    model = LocalModel(TEST_MODEL, n_ctx=2048, cache_dir=model_cache)
    with model:
        yield model
