"""Bytes on disk per stored span for the SQLite store (store_bench reports resident bytes only).

    python benchmarks/sqlite_bytes_per_span.py [--rollouts 1000] [--spans 100]

Stores rollouts x spans typical LLM-call spans (store_bench's ``make_span``) in batches of
one rollout, checkpoints the write-ahead log, and prints file bytes per span, the span body
bytes per span, and the batched ingest rate.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import anyio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from store_bench import make_span

from agentlightning_sqlite import SqliteLightningStore


async def measure(path: str, rollouts: int, spans: int) -> None:
    async with SqliteLightningStore(path, watchdog_interval=None) as store:
        ids = [await store.start_rollout({"q": i}) for i in range(rollouts)]
        batches = [
            [make_span(ar.rollout_id, ar.attempt_id, f"{k:032x}", i) for i in range(spans)]
            for k, ar in enumerate(ids)
        ]
        empty = os.path.getsize(path)
        t0 = time.perf_counter()
        for batch in batches:
            await store.add_many_spans(batch)
        elapsed = time.perf_counter() - t0
        stats = await store.statistics()
        await store.vacuum()
    total = rollouts * spans
    size = os.path.getsize(path)
    print(f"spans stored:            {stats['spans']:,}")
    print(f"batched ingest:          {total / elapsed:,.0f} spans/s (batches of {spans})")
    print(f"file bytes per span:     {(size - empty) / total:,.0f} B (after VACUUM, indexes included)")
    print(f"body bytes per span:     {stats['span_bytes'] / total:,.0f} B (attributes etc., compressed)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--spans", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agl-sqlite-bytes-") as tmp:
        anyio.run(measure, os.path.join(tmp, "store.db"), args.rollouts, args.spans)


if __name__ == "__main__":
    main()
