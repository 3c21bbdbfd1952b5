"""The store over HTTP on loopback: server in one process, client in another.

Starts ``agl store serve --store memory --port 0`` (uvicorn, uvloop, httptools) and drives it
with :class:`LightningStoreClient` (aiohttp) on uvloop. Prints, per operation and client
concurrency (1 and 8): requests/s and p50/p99 latency; spans/s for batched span ingestion;
and, with ``--compare-clients``, the httpx and aiohttp clients posting the same small JSON.

Targets (issue 7): >= 3,000 requests/s for single operations, >= 50,000 spans/s batched.
``--json`` prints one JSON object instead of lines.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from agentlightning_core.remote._config import TOKEN_ENV, event_loop_options
from agentlightning_core.remote.client import LightningStoreClient
from agentlightning_core.spans import Span


def start_server() -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentlightning_core.cli",
            "store",
            "serve",
            "--store",
            "memory",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, TOKEN_ENV: ""},
    )
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    found = re.search(r"http://[\d.]+:\d+", line)
    if not found:
        process.kill()
        raise RuntimeError(f"the server did not announce its URL: {line!r}")
    return process, found.group(0)


async def drive(n: int, concurrency: int, call: Callable[[int], Awaitable[Any]]) -> dict[str, float]:
    """Run ``call(i)`` for i in range(n) with ``concurrency`` workers; rate and latency figures."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            t0 = time.perf_counter()
            await call(i)
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "per_s": round(n / elapsed, 2),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 3),
    }


def make_span(rollout_id: str, attempt_id: str, i: int) -> Span:
    return Span(
        rollout_id=rollout_id,
        attempt_id=attempt_id,
        sequence_id=0,
        trace_id=f"{i // 100 + 1:032x}",
        span_id=f"{i + 1:016x}",
        parent_id=None,
        name="llm.call",
        start_time=1_700_000_000.0 + i,
        end_time=1_700_000_000.5 + i,
        attributes={"gen_ai.request.model": "m", "tokens": i % 500, "prompt": "p" * 64},
    )


async def add_batch(client: LightningStoreClient, batches: list[list[Span]], i: int) -> None:
    await client.add_many_spans(batches[i])


async def bench_store(url: str, n: int, spans_total: int, batch: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with LightningStoreClient(url, connection_limit=16) as client:
        await drive(200, 4, lambda i: client.enqueue_rollout(i))  # warm up connections and code paths
        await client.dequeue_many_rollouts(200)
        for c in (1, 8):
            results[f"enqueue_rollout c={c}"] = await drive(
                n, c, lambda i: client.enqueue_rollout({"task": i})
            )
            claimed: list[Any] = []

            async def dequeue(i: int, claimed: list[Any] = claimed) -> None:
                claimed.append(await client.dequeue_rollout(worker_id="bench"))

            results[f"dequeue_rollout c={c}"] = await drive(n, c, dequeue)
            assert all(a is not None for a in claimed), "queue ran dry"

            async def update(i: int, claimed: list[Any] = claimed) -> None:
                ar = claimed[i]
                await client.update_attempt(ar.rollout_id, ar.attempt_id, status="running")

            results[f"update_attempt c={c}"] = await drive(n, c, update)

        for c in (1, 2):
            # fresh span ids per round so none is a duplicate
            ar = await client.start_rollout("spans")
            spans = [make_span(ar.rollout_id, ar.attempt_id, i) for i in range(spans_total)]
            batches = [spans[i : i + batch] for i in range(0, spans_total, batch)]
            stats = await drive(len(batches), c, functools.partial(add_batch, client, batches))
            results[f"add_many_spans x{batch} c={c}"] = {
                "spans_per_s": round(stats["per_s"] * batch),
                "p50_ms": stats["p50_ms"],
                "p99_ms": stats["p99_ms"],
            }
            assert (await client.query_spans(ar.rollout_id, limit=1)).total == spans_total
        # single add_span calls from concurrent tasks are coalesced into batches by the client
        ar = await client.start_rollout("spans")
        single = [make_span(ar.rollout_id, ar.attempt_id, i) for i in range(n)]
        stats = await drive(n, 64, lambda i: client.add_span(single[i]))
        results["add_span c=64 (coalesced)"] = {
            "spans_per_s": round(stats["per_s"]),
            "p50_ms": stats["p50_ms"],
            "p99_ms": stats["p99_ms"],
        }
    return results


async def compare_clients(url: str, n: int) -> dict[str, Any]:
    """Raw POSTs of a small JSON body, as in the issue's figures (no store client code on top)."""
    import aiohttp
    import httpx

    target = f"{url}/v1/store/get_latest_resources"
    body = json.dumps({}).encode()
    headers = {"Content-Type": "application/json"}
    results: dict[str, Any] = {}
    async with aiohttp.ClientSession() as session:

        async def aio(i: int) -> None:
            async with session.post(target, data=body, headers=headers) as resp:
                await resp.read()

        await drive(200, 1, aio)
        for c in (1, 8):
            results[f"aiohttp c={c}"] = await drive(n, c, aio)
    async with httpx.AsyncClient() as hx:

        async def hxc(i: int) -> None:
            (await hx.post(target, content=body, headers=headers)).read()

        await drive(200, 1, hxc)
        for c in (1, 8):
            results[f"httpx c={c}"] = await drive(n, c, hxc)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=3000, help="requests per operation and concurrency")
    parser.add_argument("--spans", type=int, default=50_000, help="spans per batched-ingestion round")
    parser.add_argument("--batch", type=int, default=1000, help="spans per add_many_spans call")
    parser.add_argument("--compare-clients", action="store_true", help="also time httpx against aiohttp")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    loop = event_loop_options()
    process, url = start_server()
    try:
        results = anyio.run(bench_store, url, args.n, args.spans, args.batch, backend_options=loop)
        if args.compare_clients:
            results.update(anyio.run(compare_clients, url, args.n, backend_options=loop))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for name, figures in results.items():
        print(
            f"{name:34s} "
            + "  ".join(f"{k}={round(v) if k.endswith('per_s') else v}" for k, v in figures.items())
        )


if __name__ == "__main__":
    main()
