"""A child process for the crash and multi-process tests (run as a script, not collected).

``store_child.py ingest PATH``: forever enqueue a rollout, dequeue it and add a batch of
spans, printing ``enqueued ID`` / ``batch ROLLOUT ATTEMPT N`` after each call returns.

``store_child.py worker PATH NAME SHARED_ROLLOUT SHARED_ATTEMPT N``: dequeue until the queue
is empty (printing ``dequeued ID``), allocate N sequence ids on the shared rollout and add
one span with each (printing ``seq K``), and enqueue N rollouts; then print ``done``.
"""

from __future__ import annotations

import sys

import anyio

from agentlightning_core.spans import Span
from agentlightning_sqlite import SqliteLightningStore

BATCH = 20


def _span(rollout_id: str, attempt_id: str, span_id: str, seq: int = 0) -> Span:
    return Span(
        rollout_id=rollout_id,
        attempt_id=attempt_id,
        sequence_id=seq,
        trace_id="0" * 31 + "1",
        span_id=span_id,
        parent_id=None,
        name="step",
        attributes={"payload": "x" * 200, "span": span_id},
    )


async def ingest(path: str) -> None:
    async with SqliteLightningStore(path) as store:
        n = 0
        while True:
            rollout = await store.enqueue_rollout({"n": n})
            print("enqueued", rollout.rollout_id, flush=True)
            got = await store.dequeue_rollout()
            assert got is not None
            spans = [_span(got.rollout_id, got.attempt_id, f"{n}-{i}") for i in range(BATCH)]
            await store.add_many_spans(spans)
            print("batch", got.rollout_id, got.attempt_id, BATCH, flush=True)
            n += 1


async def worker(path: str, name: str, shared_rollout: str, shared_attempt: str, n: int) -> None:
    async with SqliteLightningStore(path) as store:
        while (got := await store.dequeue_rollout(worker_id=name)) is not None:
            print("dequeued", got.rollout_id, flush=True)
        for i in range(n):
            seq = await store.get_next_span_sequence_id(shared_rollout, shared_attempt)
            await store.add_span(_span(shared_rollout, shared_attempt, f"{name}-{i}", seq))
            print("seq", seq, flush=True)
            await store.add_span(_span(shared_rollout, shared_attempt, f"{name}-auto-{i}"))
            await store.enqueue_rollout({"from": name, "i": i})
    print("done", flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "ingest":
        anyio.run(ingest, args[0])
    else:
        anyio.run(worker, args[0], args[1], args[2], args[3], int(args[4]))
