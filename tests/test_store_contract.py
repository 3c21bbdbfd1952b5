"""A store method is written in five places; these tests tie them to ``store/base.py``.

The base class, the in-memory, SQLite and PostgreSQL stores, the HTTP client and the server's operation
table must agree on every method's parameter names, kinds and defaults (the table: names and
which are required). Each check is also run on a deliberately drifted copy, to show it fails.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping

import attrs
import pytest

from agentlightning_core.remote._protocol import OPERATIONS, Operation, Param
from agentlightning_core.remote.client import LightningStoreClient
from agentlightning_core.spans import Span
from agentlightning_core.store.base import LightningStore, PaginatedResult
from agentlightning_core.store.memory import InMemoryLightningStore
from agentlightning_core.testing.store import signature_drift, store_methods
from agentlightning_postgres import PostgresLightningStore
from agentlightning_sqlite import SqliteLightningStore

LIFECYCLE = frozenset({"start", "aclose"})
"""Methods of the store object itself, not operations on its data."""
CLIENT_SIDE = {"add_otel_span": "the client converts the SDK span and sends it with add_span"}
"""Store methods with no operation of their own, and why."""


def operation_drift(operations: Mapping[str, Operation]) -> list[str]:
    """How an operation table differs from the store methods: one line per difference."""
    problems: list[str] = []
    methods = store_methods()
    for name, signature in methods.items():
        if name in LIFECYCLE or name in CLIENT_SIDE:
            continue
        op = operations.get(name)
        if op is None:
            problems.append(f"LightningStore.{name} has no operation")
            continue
        params = list(signature.parameters.values())[1:]
        want = [(p.name, p.default is inspect.Parameter.empty) for p in params]
        got = [(p.name, p.required) for p in op.params]
        if got != want:
            problems.append(f"operation {name} takes (name, required) {got}; the method takes {want}")
    for name, op in operations.items():
        if name not in methods and op.handler is None:
            problems.append(f"operation {name} is no store method and has no handler")
    return problems


@pytest.mark.parametrize(
    "cls", [InMemoryLightningStore, SqliteLightningStore, PostgresLightningStore, LightningStoreClient]
)
def test_store_methods_agree_with_the_base_class(cls: type[LightningStore]) -> None:
    assert signature_drift(cls) == []


def test_operation_table_agrees_with_the_store_methods() -> None:
    assert operation_drift(OPERATIONS) == []


# --- each check fails on a drifted copy ------------------------------------------------


class _RenamedFilter(InMemoryLightningStore):
    async def query_spans(  # type: ignore[override]
        self, rollout_id: str, attempt_id: str | None = None, *, names: str | None = None
    ) -> PaginatedResult[Span]:
        raise AssertionError("never called")


class _OtherDefault(InMemoryLightningStore):
    async def query_attempts(  # type: ignore[override]
        self,
        rollout_id: str,
        *,
        sort_by: str = "start_time",
        sort_order: str = "asc",
        limit: int = -1,
        offset: int = 0,
    ) -> PaginatedResult[object]:
        raise AssertionError("never called")


class _Positional(InMemoryLightningStore):
    async def update_worker(
        self, worker_id: str, status: object = None, heartbeat_stats: object = None
    ) -> object:  # type: ignore[override]
        raise AssertionError("never called")


def test_signature_check_catches_drift() -> None:
    (renamed,) = signature_drift(_RenamedFilter)
    assert (
        "_RenamedFilter.query_spans" in renamed
        and "names=None" in renamed
        and "name_contains=None" in renamed
    )
    (default,) = signature_drift(_OtherDefault)
    assert "sort_by='start_time'" in default and "sort_by='sequence_id'" in default
    (positional,) = signature_drift(_Positional)
    assert "update_worker" in positional
    missing = signature_drift(type("Bare", (), {}))
    assert len(missing) == len(store_methods()) and "Bare.query_workers is missing" in " ".join(missing)


def test_operation_check_catches_drift() -> None:
    drifted = dict(OPERATIONS)
    query_workers = OPERATIONS["query_workers"]
    drifted["query_workers"] = attrs.evolve(
        query_workers, params=tuple(p for p in query_workers.params if p.name != "worker_id_contains")
    )
    dequeue = OPERATIONS["dequeue_many_rollouts"]
    drifted["dequeue_many_rollouts"] = attrs.evolve(
        dequeue, params=tuple(attrs.evolve(p, required=False) for p in dequeue.params)
    )
    del drifted["get_many_span_sequence_ids"]
    drifted["query_everything"] = attrs.evolve(OPERATIONS["statistics"], name="query_everything")
    drifted["get_worker_by_id"] = attrs.evolve(
        OPERATIONS["get_worker_by_id"], params=(Param("worker", {"type": "string"}, required=True),)
    )
    problems = operation_drift(drifted)
    assert len(problems) == 5, problems
    joined = "\n".join(problems)
    for name in (
        "query_workers",
        "dequeue_many_rollouts",
        "get_many_span_sequence_ids",
        "query_everything",
        "get_worker_by_id",
    ):
        assert name in joined
