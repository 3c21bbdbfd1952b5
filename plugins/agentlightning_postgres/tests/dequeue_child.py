"""A child process of test_dequeue.py (run as a script, not collected).

``dequeue_child.py DSN SCHEMA NAME``: dequeue until the queue is empty, finishing each
attempt, and print one line per rollout it got.
"""

from __future__ import annotations

import sys

import anyio

from agentlightning_postgres import PostgresLightningStore


async def main(dsn: str, schema: str, name: str) -> None:
    async with PostgresLightningStore(dsn, schema=schema, pool_size=2) as store:
        while (got := await store.dequeue_rollout(worker_id=name)) is not None:
            await store.update_attempt(got.rollout_id, got.attempt.attempt_id, status="succeeded")
            print(got.rollout_id, flush=True)


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], sys.argv[2], sys.argv[3])
