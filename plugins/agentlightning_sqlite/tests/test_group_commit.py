"""Group commit: writes queued together share one transaction, and a failing one takes only itself down."""

from __future__ import annotations

import math
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from agentlightning_core.errors import AttemptNotFoundError, RolloutNotFoundError
from agentlightning_core.spans import Span
from agentlightning_core.types import AttemptStatus
from agentlightning_sqlite import SqliteLightningStore
from agentlightning_sqlite.codec import decode_body, encode_span_body
from agentlightning_sqlite.worker import ConnectionWorker


def _span(rollout_id: str, attempt_id: str, span_id: str, resource: dict[str, Any] | None = None) -> Span:
    return Span(
        rollout_id=rollout_id,
        attempt_id=attempt_id,
        sequence_id=0,
        trace_id="ab" * 16,
        span_id=span_id,
        parent_id=None,
        name="step",
        attributes={"i": span_id},
        resource=resource or {},
    )


async def _gated(store: SqliteLightningStore) -> tuple[ConnectionWorker, threading.Event]:
    """Occupy the store's thread until the returned gate is set, so later calls queue up."""
    await store.start()
    worker = store._worker
    assert worker is not None
    gate, entered = threading.Event(), threading.Event()

    def hold(conn: object) -> None:
        entered.set()
        gate.wait(10)

    worker._put(False, hold, Future())
    assert await anyio.to_thread.run_sync(entered.wait, 5)
    return worker, gate


@pytest.mark.anyio
async def test_queued_writes_share_one_commit_and_a_failing_one_changes_nothing(tmp_path: Path) -> None:
    async with SqliteLightningStore(tmp_path / "g.db", watchdog_interval=None) as store:
        target = await store.start_rollout("target")
        rid, aid = target.rollout.rollout_id, target.attempt.attempt_id
        worker, gate = await _gated(store)
        commits_before = worker.commits
        results: dict[str, Any] = {}

        async def call(name: str, fn: Any) -> None:
            try:
                results[name] = await fn()
            except Exception as exc:
                results[name] = exc

        async with anyio.create_task_group() as tg:
            tg.start_soon(call, "a", lambda: store.enqueue_rollout("a"))
            # A valid group (its heartbeat would move the attempt to running) and then an
            # unknown attempt: the whole call must fail and leave no trace.
            tg.start_soon(
                call,
                "bad_spans",
                lambda: store.add_many_spans([_span(rid, aid, "s1"), _span(rid, "at-missing", "s2")]),
            )
            tg.start_soon(call, "b", lambda: store.enqueue_rollout("b"))
            tg.start_soon(call, "bad_update", lambda: store.update_rollout("ro-missing", metadata={"x": 1}))
            tg.start_soon(call, "spans", lambda: store.add_many_spans([_span(rid, aid, "s3")]))
            with anyio.fail_after(5):  # wait until every call is queued behind the gate
                while worker._jobs.qsize() < 5:
                    await anyio.sleep(0.001)
            gate.set()

        assert worker.commits == commits_before + 1, "the queued writes did not share one transaction"
        assert isinstance(results["bad_spans"], AttemptNotFoundError)
        assert isinstance(results["bad_update"], RolloutNotFoundError)
        ids = {r.rollout_id for r in await store.query_rollouts()}
        assert {results["a"].rollout_id, results["b"].rollout_id, rid} == ids
        spans = await store.query_spans(rid)
        assert [s.span_id for s in spans] == ["s3"] and [s.sequence_id for s in spans] == [1]
        attempt = await store.get_latest_attempt(rid)
        assert attempt is not None and attempt.status is AttemptStatus.RUNNING  # from "spans" only


@pytest.mark.anyio
async def test_a_rolled_back_span_resource_is_not_remembered(tmp_path: Path) -> None:
    resource = {"service.name": "svc", "telemetry.sdk.language": "python"}
    async with SqliteLightningStore(tmp_path / "r.db", watchdog_interval=None) as store:
        ar = await store.start_rollout("x")
        rid, aid = ar.rollout.rollout_id, ar.attempt.attempt_id
        with pytest.raises(AttemptNotFoundError):
            await store.add_many_spans([_span(rid, aid, "s1", resource), _span(rid, "at-missing", "s2")])
        await store.add_span(_span(rid, aid, "s3", resource))
        (span,) = await store.query_spans(rid)
        assert span.resource == resource


@pytest.mark.anyio
async def test_many_concurrent_callers_all_get_their_own_results(tmp_path: Path) -> None:
    async with SqliteLightningStore(tmp_path / "c.db", watchdog_interval=None) as store:
        got: list[int] = []

        async def enqueue(i: int) -> None:
            got.append((await store.enqueue_rollout({"i": i})).input["i"])

        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(enqueue, i)
        assert sorted(got) == list(range(200))
        queued = await store.query_rollouts(status_in=["queuing"])
        assert len(queued) == 200
        dequeued = [await store.dequeue_rollout() for _ in range(200)]
        assert [d.rollout.input["i"] for d in dequeued if d is not None] == [r.input["i"] for r in queued]


def test_span_bodies_keep_values_json_lacks_or_orjson_refuses() -> None:
    for attributes in ({"x": math.inf, "y": 1}, {"big": 2**70}, {"none": None, "nan": math.nan}):
        span = Span(
            rollout_id="r",
            attempt_id="a",
            sequence_id=1,
            trace_id="t",
            span_id="s",
            parent_id=None,
            name="n",
            attributes=attributes,
        )
        decoded = decode_body(encode_span_body(span))["a"]
        assert decoded.keys() == attributes.keys()
        for key, value in attributes.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(decoded[key])
            else:
                assert decoded[key] == value
