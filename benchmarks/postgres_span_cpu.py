"""CPU per span batch of the PostgreSQL store: where ``add_span_batch100`` of store_bench.py spends.

    python benchmarks/postgres_span_cpu.py [--batches N] [--batch-size K] [--runs R]

On a throw-away PostgreSQL server (default, durable settings), one task adds batches of K
spans (store_bench's LLM-call span) to 100 running attempts in turn, one after another, as
``add_span_batch100`` does, and prints per batch: wall time, the client's CPU
(``time.process_time``) and the server's (every process of the cluster, from
``/proc/<pid>/stat``), so runs on a shared machine compare by CPU rather than by wall rate.
Then the time of ``query_spans`` reading one rollout's 100 spans, and database bytes per span.
"""

from __future__ import annotations

import argparse
import os
import time

import anyio
from store_bench import make_span

from agentlightning_postgres import PostgresLightningStore
from agentlightning_postgres.testing import TemporaryCluster


async def run(cluster: TemporaryCluster, args: argparse.Namespace) -> None:
    async with PostgresLightningStore(cluster.dsn, pool_size=8, watchdog_interval=None) as store:
        ids = []
        for _ in range(100):
            got = await store.start_rollout({"q": 1})
            ids.append((got.rollout_id, got.attempt_id))
        batches = [
            [make_span(*ids[b % 100], f"{b:032x}", b * args.batch_size + i) for i in range(args.batch_size)]
            for b in range(args.batches + 100)
        ]
        for batch in batches[:100]:  # every attempt running, every statement prepared
            await store.add_many_spans(batch)
        server, client, wall = cluster.cpu_seconds(), time.process_time(), time.perf_counter()
        for batch in batches[100:]:
            await store.add_many_spans(batch)
        wall = time.perf_counter() - wall
        client = time.process_time() - client
        server = cluster.cpu_seconds() - server
        n = args.batches
        one = await store.start_rollout({"q": 2})
        await store.add_many_spans(
            [make_span(one.rollout_id, one.attempt_id, "ab" * 16, i) for i in range(100)]
        )
        reads = 200
        started = time.perf_counter()
        for _ in range(reads):
            await store.query_spans(one.rollout_id)
        query = (time.perf_counter() - started) / reads
        stats = await store.statistics()
        print(
            f"{n * args.batch_size / wall:8,.0f} spans/s; per batch of {args.batch_size}: wall {wall / n * 1e3:.2f} ms,"
            f" client CPU {client / n * 1e3:.2f} ms, server CPU {server / n * 1e3:.2f} ms;"
            f" query_spans of 100 {query * 1e3:.2f} ms;"
            f" {stats['database_bytes'] / stats['spans']:.0f} database bytes per span;"
            f" load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=300, help="timed batches (default 300)")
    parser.add_argument("--batch-size", type=int, default=100, help="spans per batch (default 100)")
    parser.add_argument("--runs", type=int, default=2, help="runs on the same server (default 2)")
    args = parser.parse_args()
    with TemporaryCluster() as cluster:
        for _ in range(args.runs):
            anyio.run(run, cluster, args)


if __name__ == "__main__":
    main()
