"""What metrics cost on the store's hot path, and what a scrape costs.

1. In process: the in-memory store plain vs wrapped by ``instrument_store`` (what ``agl train
   --metrics-port`` and the store server do), per operation in microseconds.
2. Over HTTP: ``agl store serve`` with metrics (the default) vs ``--no-metrics``, driven by
   :class:`LightningStoreClient`: requests/s of single operations and spans/s batched.
3. One ``/metrics`` scrape of a store holding N finished rollouts (the refresh reads the store).

Figures are CPU time (of this process, or of the server process), so the waits of a shared
machine do not count. Target: metrics add under 5% to the server's CPU per request (the store
server is how runners reach the store) and a scrape takes well under a second.

    python benchmarks/metrics_bench.py [--ops 20000] [--http-ops 3000] [--rollouts 10000]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from typing import Any

import anyio
import psutil

from agentlightning_core import InMemoryLightningStore, LightningStore
from agentlightning_core.metrics import instrument_store, instrumented_metrics
from agentlightning_core.remote._config import TOKEN_ENV, event_loop_options
from agentlightning_core.remote.client import LightningStoreClient
from agentlightning_core.spans import Span


def _span(rollout_id: str, attempt_id: str, i: int) -> Span:
    return Span(
        rollout_id=rollout_id,
        attempt_id=attempt_id,
        sequence_id=0,
        trace_id=f"{i:032x}",
        span_id=f"{i:016x}",
        parent_id=None,
        name="llm",
        start_time=1.0,
        end_time=2.0,
        attributes={"k": i},
    )


async def _cycle(store: LightningStore, n: int) -> dict[str, float]:
    """Per-operation microseconds of enqueue, dequeue, add_span, update_attempt on ``store``."""
    times: dict[str, float] = {
        "enqueue_rollout": 0.0,
        "dequeue_rollout": 0.0,
        "add_span": 0.0,
        "update_attempt": 0.0,
    }
    clock = time.process_time  # CPU time: a shared machine's waits do not count
    for i in range(n):
        t0 = clock()
        await store.enqueue_rollout({"i": i}, mode="train")
        t1 = clock()
        attempted = await store.dequeue_rollout("w")
        t2 = clock()
        assert attempted is not None
        await store.add_span(_span(attempted.rollout_id, attempted.attempt_id, i))
        t3 = clock()
        await store.update_attempt(attempted.rollout_id, attempted.attempt_id, status="succeeded", reward=1.0)
        t4 = clock()
        times["enqueue_rollout"] += t1 - t0
        times["dequeue_rollout"] += t2 - t1
        times["add_span"] += t3 - t2
        times["update_attempt"] += t4 - t3
    return {k: v / n * 1e6 for k, v in times.items()}


async def in_process(n: int, repeats: int = 3) -> None:
    best: dict[str, dict[str, float]] = {}
    for _ in range(repeats):  # interleaved, best of each: the machine is shared
        for label in ("plain", "instrumented"):
            inner = InMemoryLightningStore()
            store = inner if label == "plain" else instrument_store(inner)
            async with store:
                figures = await _cycle(store, n)
            best[label] = {k: min(v, best.get(label, {}).get(k, v)) for k, v in figures.items()}
    print(f"In process, in-memory store, {n} rollouts (best of {repeats}), CPU microseconds per operation:")
    for op in best["plain"]:
        plain, inst = best["plain"][op], best["instrumented"][op]
        print(
            f"  {op:16} plain {plain:7.1f}  instrumented {inst:7.1f}  (+{inst - plain:5.1f} us, {100 * (inst - plain) / plain:+5.1f}%)"
        )


def _serve(metrics: bool) -> tuple[subprocess.Popen[bytes], str]:
    args = [
        sys.executable,
        "-m",
        "agentlightning_core.cli",
        "store",
        "serve",
        "--store",
        "memory",
        "--port",
        "0",
    ]
    process = subprocess.Popen(
        [*args, *([] if metrics else ["--no-metrics"])],
        stdout=subprocess.PIPE,
        env={**os.environ, TOKEN_ENV: ""},
    )
    assert process.stdout is not None
    found = re.search(r"http://[\d.]+:\d+", process.stdout.readline().decode())
    if not found:
        process.kill()
        raise RuntimeError("the store server did not announce its URL")
    return process, found.group(0)


async def _http_run(url: str, n: int, pid: int) -> dict[str, float]:
    """Server CPU microseconds per request (per span for the batches): wall-clock rates mean
    little on a shared machine, the server's own CPU time does."""
    server = psutil.Process(pid)

    def cpu() -> float:
        times = server.cpu_times()
        return float(times.user + times.system)

    out: dict[str, float] = {}
    async with LightningStoreClient(url) as client:
        start = cpu()
        for i in range(n):
            await client.enqueue_rollout({"i": i})
        out["enqueue_rollout"] = (cpu() - start) / n * 1e6
        start = cpu()
        attempts = []
        for _ in range(n):
            attempted = await client.dequeue_rollout("w")
            assert attempted is not None
            attempts.append(attempted)
        out["dequeue_rollout"] = (cpu() - start) / n * 1e6
        batch = 500
        start = cpu()
        for a in attempts[:50]:
            await client.add_many_spans([_span(a.rollout_id, a.attempt_id, j) for j in range(batch)])
        out["add_many_spans, per span"] = (cpu() - start) / (50 * batch) * 1e6
        start = cpu()
        for a in attempts:
            await client.update_attempt(a.rollout_id, a.attempt_id, status="succeeded", reward=0.5)
        out["update_attempt"] = (cpu() - start) / n * 1e6
    return out


def over_http(n: int, repeats: int = 2) -> None:
    best: dict[str, dict[str, float]] = {}
    for _ in range(repeats):
        for label, metrics in (("no metrics", False), ("metrics", True)):
            process, url = _serve(metrics)
            try:
                figures = anyio.run(
                    _http_run, url, n, process.pid, backend="asyncio", backend_options=event_loop_options()
                )
            finally:
                process.terminate()
                process.wait(timeout=30)
            best[label] = {k: min(v, best.get(label, {}).get(k, v)) for k, v in figures.items()}
    print(
        f"Over HTTP (agl store serve, memory store), {n} requests per operation (best of {repeats}), server CPU us:"
    )
    for key in best["metrics"]:
        off, on = best["no metrics"][key], best["metrics"][key]
        print(f"  {key:26} --no-metrics {off:8.1f}  metrics {on:8.1f}  ({100 * (on - off) / off:+5.1f}%)")


async def scrape(n: int) -> None:
    store = instrument_store(InMemoryLightningStore())
    found = instrumented_metrics(store)
    assert found is not None
    metrics, inner = found
    async with store:
        for i in range(n):
            await inner.enqueue_rollout({"i": i}, mode="train" if i % 4 else "val")
        while (attempted := await inner.dequeue_rollout("w")) is not None:
            await inner.update_attempt(
                attempted.rollout_id, attempted.attempt_id, status="succeeded", reward=1.0
            )
        start = time.process_time()
        await metrics.refresh(inner)
        first = time.process_time() - start
        start = time.process_time()
        await metrics.refresh(inner)
        body: Any = metrics.render()
        again = time.process_time() - start
    print(
        f"Scrape (CPU) of a store with {n} rollouts finished since the metrics started: first {first * 1e3:.0f} ms "
        f"(counts each finished rollout once), next {again * 1e3:.1f} ms ({len(body)} bytes)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ops", type=int, default=20_000)
    parser.add_argument("--http-ops", type=int, default=3_000)
    parser.add_argument("--rollouts", type=int, default=10_000)
    args = parser.parse_args()
    print(f"load average: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    anyio.run(in_process, args.ops)
    over_http(args.http_ops)
    anyio.run(scrape, args.rollouts)


if __name__ == "__main__":
    main()
