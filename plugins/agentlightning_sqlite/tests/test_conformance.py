"""The store conformance suite, unchanged, against a real SQLite file.

``SpanBudgetConformance`` is not run: it covers the in-memory span budget, and this store
keeps spans on disk (it bounds the file with retention instead; see test_retention.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from agentlightning_core.testing.store import StoreConformance, StoreFactory
from agentlightning_sqlite import SqliteLightningStore


class TestSqliteStore(StoreConformance):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> StoreFactory:
        counter = itertools.count()

        def factory(**options: Any) -> SqliteLightningStore:
            return SqliteLightningStore(tmp_path / f"store-{next(counter)}.db", **options)

        return factory
