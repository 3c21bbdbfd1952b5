"""CPU per rollout cycle of the PostgreSQL store: client and server, not wall-clock.

    python benchmarks/postgres_cycles_cpu.py [--cycles N] [--workers K] [--runs R]

Runs ``store_bench.py``'s ``cycles_concurrent8`` step (K tasks sharing one store, each
enqueueing a rollout, dequeuing one and completing its attempt) on a throw-away server and
prints, per run, the rate and the CPU time per cycle of this process (``time.process_time``)
and of the server's processes (their ``/proc/<pid>/stat`` ticks). On a shared machine the rate
follows the load; the CPU per cycle hardly does, so compare changes by it.
"""

from __future__ import annotations

import argparse
import os
import time

import anyio

from agentlightning_postgres import PostgresLightningStore
from agentlightning_postgres.testing import TemporaryCluster


async def run_cycles(
    cluster: TemporaryCluster, schema: str, cycles: int, workers: int
) -> tuple[float, float, float]:
    async with PostgresLightningStore(cluster.dsn, schema=schema, pool_size=workers) as store:

        async def worker(k: int) -> None:
            for i in range(cycles // workers):
                await store.enqueue_rollout({"q": i})
                got = await store.dequeue_rollout(worker_id=f"w{k}")
                assert got is not None
                await store.update_attempt(got.rollout_id, got.attempt.attempt_id, status="succeeded")

        server0, client0, t0 = cluster.cpu_seconds(), time.process_time(), time.perf_counter()
        async with anyio.create_task_group() as tg:
            for k in range(workers):
                tg.start_soon(worker, k)
        wall = time.perf_counter() - t0
        client = time.process_time() - client0
        server = cluster.cpu_seconds() - server0
        return wall, client, server


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    n = args.cycles // args.workers * args.workers
    with TemporaryCluster() as cluster:
        for run in range(args.runs):
            wall, client, server = anyio.run(run_cycles, cluster, f"cpu{run}", n, args.workers)
            print(
                f"run {run}: {n / wall:6.0f} cycles/s  client {client / n * 1e3:.2f} ms  server"
                f" {server / n * 1e3:.2f} ms  total {(client + server) / n * 1e3:.2f} ms CPU per cycle"
                f"  (load average {os.getloadavg()[0]:.2f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
