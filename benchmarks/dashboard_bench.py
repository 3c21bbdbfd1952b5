"""Latency of every dashboard page on a large SQLite store (issue 17's target: p95 < 300 ms).

    python benchmarks/dashboard_bench.py [--db FILE] [--rollouts 10000] [--spans 100] [--requests 40]

Builds the store once (10,000 finished rollouts of 100 spans each: 1,000,000 spans; 20
resources versions; 8 workers; rollouts tagged with steps, half train, half val) in ``--db``
(default: a file in the temp directory, kept and reused by later runs), then serves its
dashboard with :class:`DashboardServer` on 127.0.0.1 and requests each page ``--requests``
times, one at a time. Prints p50/p95/max per page next to the target; before that, the first
request and how long the dashboard takes to read every finished rollout's reward (a bounded
share per page load); and the plans of the SQLite queries the pages run.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import anyio

from agentlightning_core import PromptTemplate, semconv
from agentlightning_core.dashboard import DashboardServer
from agentlightning_core.spans import Span
from agentlightning_core.store.base import EnqueueRequest
from agentlightning_sqlite import SqliteLightningStore

TARGET_P95_MS = 300.0
VERSIONS = 20
WORKERS = 8


async def build(path: Path, rollouts: int, spans_per: int) -> None:
    rng = random.Random(0)
    async with SqliteLightningStore(path, watchdog_interval=None) as store:
        ids = []
        for v in range(VERSIONS):
            prompt = (
                f"You are a careful assistant (v{v}).\nAnswer {{question}}.\n"
                + "Think step by step.\n" * (v % 3)
            )
            ids.append((await store.add_resources({"prompt_template": PromptTemplate(prompt)})).resources_id)
        batch = 500
        t0 = time.perf_counter()
        for start in range(0, rollouts, batch):
            n = min(batch, rollouts - start)
            requests = [
                EnqueueRequest(
                    input={"question": f"q{start + i}", "text": "x" * 200},
                    mode="train" if (start + i) % 2 == 0 else "val",
                    resources_id=ids[(start + i) * VERSIONS // rollouts],
                    metadata={"step": (start + i) * 10 // rollouts},
                )
                for i in range(n)
            ]
            await store.enqueue_many_rollouts(requests)
            attempted = await store.dequeue_many_rollouts(n, worker_id=f"worker-{start // batch % WORKERS}")
            spans: list[Span] = []
            for ar in attempted:
                r, a = ar.rollout, ar.attempt
                base = time.time()
                for s in range(spans_per):
                    span_id = f"{s + 1:016x}"
                    spans.append(
                        Span(
                            rollout_id=r.rollout_id,
                            attempt_id=a.attempt_id,
                            sequence_id=s + 1,
                            trace_id=f"{hash(r.rollout_id) & (2**64 - 1):032x}",
                            span_id=span_id,
                            parent_id=None if s == 0 else f"{1:016x}",
                            name="agent" if s == 0 else "openai.chat.completion" if s % 10 == 1 else "tool",
                            start_time=base + s * 0.01,
                            end_time=base + s * 0.01 + 0.005,
                            attributes={semconv.REWARD_VALUE: 1.0} if s == spans_per - 1 else {"i": s},
                        )
                    )
            for k in range(0, len(spans), 5000):
                await store.add_many_spans(spans[k : k + 5000])
            for ar in attempted:
                await store.update_attempt(
                    ar.rollout.rollout_id, ar.attempt.attempt_id, status="succeeded", reward=rng.random()
                )
            done = start + n
            if done % 2000 == 0 or done == rollouts:
                print(
                    f"  built {done} rollouts, {done * spans_per} spans ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
        for w in range(WORKERS):
            await store.update_worker(f"worker-{w}", status="idle", heartbeat_stats={"cpu": 0.5})


def pages(rollout_ids: list[str], resources_ids: list[str]) -> dict[str, list[str]]:
    rng = random.Random(1)
    return {
        "run page": ["/"],
        "run page, live part": ["/dashboard/run/live"],
        "rollouts, page 1": ["/dashboard/rollouts"],
        "rollouts, page 150": ["/dashboard/rollouts?page=150"],
        "rollouts, status=succeeded": ["/dashboard/rollouts?status=succeeded&page=3"],
        "rollouts, mode=val": ["/dashboard/rollouts?mode=val&page=2"],
        "rollouts, resources version": [f"/dashboard/rollouts?resources_id={resources_ids[7]}"],
        "rollouts, reward 0.2..0.4": ["/dashboard/rollouts?reward_min=0.2&reward_max=0.4"],
        "rollout (100 spans)": [f"/dashboard/rollouts/{rid}" for rid in rng.sample(rollout_ids, 20)],
        "resources": ["/dashboard/resources"],
        "resources version + diff": [f"/dashboard/resources/{rid}" for rid in resources_ids[1:]],
        "workers": ["/dashboard/workers"],
    }


async def measure(path: Path, requests: int) -> int:
    store = SqliteLightningStore(path, watchdog_interval=None)
    failures = 0
    async with store, DashboardServer(store, port=0) as server, aiohttp.ClientSession() as http:
        rollout_ids = [r.rollout_id for r in await store.query_rollouts(limit=2000)]
        resources_ids = [r.resources_id for r in await store.query_resources(sort_by="create_time")]

        async def get(url: str) -> float:
            t = time.perf_counter()
            async with http.get(server.url + url) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"GET {url} answered {resp.status}")
            return (time.perf_counter() - t) * 1e3

        cold = await get("/")
        print(f"first request (starts reading the rewards of every finished rollout): {cold:.0f} ms")
        started, loads = time.perf_counter(), 0
        while True:  # what the run page's live updates do until every reward is read
            async with http.get(server.url + "/dashboard/run/live") as resp:
                body = await resp.text()
            loads += 1
            if 'id="index-progress"' not in body:
                break
        print(f"every reward read after {time.perf_counter() - started:.1f} s more ({loads} live updates)")
        print(f"{'page':32} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  target p95 < {TARGET_P95_MS:.0f} ms")
        for name, urls in pages(rollout_ids, resources_ids).items():
            times = [await get(urls[i % len(urls)]) for i in range(requests)]
            times.sort()
            p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
            ok = p95 < TARGET_P95_MS
            failures += not ok
            print(
                f"{name:32} {statistics.median(times):8.1f} {p95:8.1f} {times[-1]:8.1f}  {'ok' if ok else 'MISSED'}",
                flush=True,
            )
    return failures


def query_plans(path: Path) -> None:
    """SQLite's plan of each query the pages send (SCAN of a big table would show here)."""
    conn = sqlite3.connect(path)
    statements = {
        "rollouts page (newest first)": "SELECT * FROM rollouts r ORDER BY r.start_time DESC, r.rid DESC LIMIT 50 OFFSET 500",
        "rollouts by status": "SELECT * FROM rollouts r WHERE (r.status IN ('succeeded') AND r.status IN ('succeeded','failed','cancelled')) ORDER BY r.start_time DESC, r.rid DESC LIMIT 50",
        "latest attempt": "SELECT * FROM attempts a WHERE a.rid = 5 ORDER BY a.sequence_id DESC LIMIT 1",
        "spans of an attempt": "SELECT * FROM spans WHERE rid = 5 AND aid = 5 ORDER BY sequence_id",
    }
    print("SQLite query plans:")
    for name, sql in statements.items():
        plan = "; ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql))
        print(f"  {name}: {plan}")
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", type=Path, default=Path(tempfile.gettempdir()) / "agl_dashboard_bench.db")
    parser.add_argument("--rollouts", type=int, default=10_000)
    parser.add_argument("--spans", type=int, default=100, help="spans per rollout")
    parser.add_argument("--requests", type=int, default=40, help="requests per page")
    args = parser.parse_args()
    if not args.db.exists():
        print(f"Building {args.db}: {args.rollouts} rollouts x {args.spans} spans", flush=True)
        anyio.run(build, args.db, args.rollouts, args.spans)
    else:
        print(f"Reusing {args.db} (delete it to rebuild)")
    size = sum(p.stat().st_size for p in args.db.parent.glob(args.db.name + "*"))
    print(f"store file: {size / 2**20:.0f} MiB; load average {os.getloadavg()[0]:.2f}")
    query_plans(args.db)
    failures = anyio.run(measure, args.db, args.requests)
    print("all pages within target" if not failures else f"{failures} page(s) missed the target")
    return 0


if __name__ == "__main__":
    sys.exit(main())
