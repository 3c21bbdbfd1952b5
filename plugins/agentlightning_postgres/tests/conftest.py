"""A real PostgreSQL server for the whole session (initdb in a temporary directory, a free
loopback port), and a fresh schema per store, so every test starts from an empty store."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentlightning_postgres import PostgresLightningStore
from agentlightning_postgres.testing import PostgresNotInstalledError, TemporaryCluster

_schemas = itertools.count()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def postgres() -> Iterator[TemporaryCluster]:
    """The session's PostgreSQL cluster. Missing server binaries fail the tests (never skip)."""
    try:
        cluster = TemporaryCluster({"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"})
    except PostgresNotInstalledError as exc:
        pytest.fail(str(exc), pytrace=False)
    with cluster:
        yield cluster


@pytest.fixture
def dsn(postgres: TemporaryCluster) -> str:
    return postgres.dsn


def new_schema() -> str:
    return f"t{next(_schemas)}"


@pytest.fixture
def make_store(dsn: str) -> Callable[..., PostgresLightningStore]:
    """Stores in a new schema each (or in ``schema=`` when given, to share one)."""

    def make(**options: Any) -> PostgresLightningStore:
        options.setdefault("schema", new_schema())
        return PostgresLightningStore(dsn, **options)

    return make
