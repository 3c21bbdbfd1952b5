"""The store conformance suite, unchanged, against a real PostgreSQL server.

``SpanBudgetConformance`` is not run: it covers the in-memory span budget, and this store
keeps spans in the database (it bounds them with retention instead; see test_retention.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agentlightning_core.testing.store import StoreConformance, StoreFactory
from agentlightning_postgres import PostgresLightningStore


class TestPostgresStore(StoreConformance):
    @pytest.fixture
    def store_factory(self, make_store: Callable[..., PostgresLightningStore]) -> StoreFactory:
        return make_store
