"""Throughput and memory of a LightningStore backend.

    python benchmarks/store_bench.py [--store NAME] [--path FILE] [--dsn DSN] [--json] [--quick]

The store is resolved by name through the plugin registry (``memory``, ``sqlite``, ...);
``--path`` is passed as ``path=`` for file-based stores (the file and its -wal/-shm files are
deleted before each step). ``--store postgres`` uses ``--dsn`` (or ``$AGL_POSTGRES_DSN``), else
a throw-away PostgreSQL server on 127.0.0.1 with its default, durable settings; each step gets
a fresh schema, dropped after it. Prints ops/s per operation with the target beside it: issue 3's for
the in-memory store (30x the previous generation's), issue 6's for ``sqlite`` (every call
committed to disk); resident bytes per stored span for 1,000 rollouts x 100 spans, measured as
the RSS growth of a fresh subprocess, and for a file store its bytes on disk per span.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from agentlightning_core import semconv
from agentlightning_core.plugins import resolve_component
from agentlightning_core.spans import Span
from agentlightning_core.store.base import EnqueueRequest, LightningStore

# previous generation's in-memory store on this machine class (issue 3), and our targets
PREVIOUS = {
    "enqueue": 3_700,
    "dequeue": 1_800,
    "add_span": 1_400,
    "query_spans_100": 4_900,
    "update_attempt": 3_000,
}
TARGETS: dict[str, float] = {
    "enqueue": 30 * 3_700,
    "dequeue": 30 * 1_800,
    "add_span": 30 * 1_400,
    "add_span_batch100": 300_000,
    "query_spans_100": 30_000,
    "update_attempt": 30 * 3_000,
}
BYTES_PER_SPAN_TARGET = 1024
# A store on a file commits every call to disk: the SQLite store's targets (issue 6)
FILE_TARGETS: dict[str, dict[str, float]] = {
    "sqlite": {
        "enqueue": 5_000,
        "dequeue": 5_000,
        "add_span_batch100": 50_000,
        "query_spans_100": 500,  # one rollout's 100 spans in under 2 ms
    },
    # issue 18: PostgreSQL on loopback, this 2-core machine
    "postgres": {
        "cycles_concurrent8": 500,
        "add_span_batch100": 20_000,
    },
}
CONCURRENT_TASKS = 16
CYCLE_WORKERS = 8
"""Workers of the cycle step: each enqueues a rollout, dequeues one and completes its attempt."""

_QUESTIONS = ("What is the capital of France?", "How many legs has a spider?", "Name a prime above 90.")


def make_span(rollout_id: str, attempt_id: str, trace_id: str, i: int) -> Span:
    """A typical LLM-call span: what the tracer records for a chat call of the ``openai``
    client (the keys of ``semconv``; a test of the SQLite plugin compares them with a span
    captured from the real client). Values are fresh objects per span, as when decoded
    from the wire."""
    question = _QUESTIONS[i % 3]
    messages = [
        {"role": "system", "parts": [{"type": "text", "content": "You are a helpful assistant."}]},
        {"role": "user", "parts": [{"type": "text", "content": f"{question} (#{i})"}]},
    ]
    answer = [
        {"role": "assistant", "parts": [{"type": "text", "content": f"Answer {i}."}], "finish_reason": "stop"}
    ]
    return Span(
        rollout_id=rollout_id,
        attempt_id=attempt_id,
        sequence_id=0,
        trace_id=trace_id,
        span_id=f"{i + 1:016x}",
        parent_id=f"{i:016x}" if i else None,
        name="chat gpt-4o-mini",
        start_time=1.7e9 + i,
        end_time=1.7e9 + i + 0.5,
        attributes={
            semconv.GEN_AI_OPERATION_NAME: "chat",
            semconv.GEN_AI_PROVIDER_NAME: "openai",
            semconv.LLM_STREAM: False,
            semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
            semconv.GEN_AI_REQUEST_TEMPERATURE: 0.7,
            semconv.GEN_AI_INPUT_MESSAGES: json.dumps(messages, ensure_ascii=False),
            semconv.GEN_AI_OUTPUT_MESSAGES: json.dumps(answer, ensure_ascii=False),
            semconv.GEN_AI_RESPONSE_ID: f"chatcmpl-{i:08x}",
            semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini",
            semconv.GEN_AI_RESPONSE_FINISH_REASONS: ["stop"],
            semconv.GEN_AI_USAGE_INPUT_TOKENS: 100 + i % 50,
            semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 20 + i % 30,
        },
        kind="CLIENT",
    )


def remove_db(path: str) -> None:
    """Delete a database file and the SQLite log files beside it."""
    for p in (path, path + "-wal", path + "-shm", path + "-journal"):
        if os.path.exists(p):
            os.remove(p)


def store_spec(args: argparse.Namespace, schema: str | None = None) -> Any:
    if args.store == "postgres":
        spec = {"type": "postgres", "dsn": args.dsn, "pool_size": CYCLE_WORKERS}
        return spec if schema is None else {**spec, "schema": schema}
    if args.path:
        return {"type": args.store, "path": args.path}
    if args.store == "memory":
        return {"type": "memory", "watchdog_interval": None}
    return args.store


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.scale = 0.1 if args.quick else 1.0
        self.results: dict[str, float] = {}
        self.schemas: list[str] = []

    def n(self, count: int) -> int:
        return max(100, int(count * self.scale))

    def fresh_store(self) -> LightningStore:
        if self.args.path:
            remove_db(self.args.path)
        schema = None
        if self.args.store == "postgres":  # a new schema per step, dropped at the end
            schema = f"agl_bench_{os.getpid()}_{len(self.schemas)}"
            self.schemas.append(schema)
        store: LightningStore = resolve_component("store", store_spec(self.args, schema), base=LightningStore)
        return store

    async def drop_schemas(self) -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(self.args.dsn, autocommit=True) as conn:
            for schema in self.schemas:
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())

    async def timed(self, name: str, ops: int, body: Callable[[], Awaitable[None]]) -> None:
        gc.collect()
        t0 = time.perf_counter()
        await body()
        self.results[name] = ops / (time.perf_counter() - t0)

    async def run(self) -> None:
        for step in (
            self.enqueue,
            self.dequeue,
            self.concurrent,
            self.cycles,
            self.add_span,
            self.add_otel_span,
            self.query_spans,
            self.update_attempt,
            self.wait_for_rollouts,
        ):
            async with self.fresh_store() as store:
                await step(store)
        if self.schemas:
            await self.drop_schemas()

    async def enqueue(self, store: LightningStore) -> None:
        n = self.n(50_000)

        async def one() -> None:
            for i in range(n):
                await store.enqueue_rollout({"q": i})

        await self.timed("enqueue", n, one)
        batches = [[EnqueueRequest(input={"q": i}) for i in range(100)] for _ in range(n // 100)]

        async def many() -> None:
            for batch in batches:
                await store.enqueue_many_rollouts(batch)

        await self.timed("enqueue_batch100", n // 100 * 100, many)

    async def dequeue(self, store: LightningStore) -> None:
        n = self.n(50_000)
        for _ in range(n // 100):
            await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(100)])

        async def body() -> None:
            for _ in range(n // 100 * 100):
                await store.dequeue_rollout(worker_id="w1")

        await self.timed("dequeue", n // 100 * 100, body)

    async def concurrent(self, store: LightningStore) -> None:
        """Several tasks calling at once (runners, server requests): enqueue, then dequeue."""
        n = self.n(20_000) // CONCURRENT_TASKS * CONCURRENT_TASKS

        async def run(body: Callable[[], Awaitable[Any]]) -> None:
            async def task() -> None:
                for _ in range(n // CONCURRENT_TASKS):
                    await body()

            async with anyio.create_task_group() as tg:
                for _ in range(CONCURRENT_TASKS):
                    tg.start_soon(task)

        await self.timed(
            f"enqueue_concurrent{CONCURRENT_TASKS}", n, lambda: run(lambda: store.enqueue_rollout({"q": 1}))
        )
        await self.timed(
            f"dequeue_concurrent{CONCURRENT_TASKS}",
            n,
            lambda: run(lambda: store.dequeue_rollout(worker_id="w1")),
        )

    async def cycles(self, store: LightningStore) -> None:
        """Workers at once, each repeating a rollout's whole life: enqueue, dequeue, complete."""
        n = self.n(10_000) // CYCLE_WORKERS * CYCLE_WORKERS

        async def worker(k: int) -> None:
            for i in range(n // CYCLE_WORKERS):
                await store.enqueue_rollout({"q": i})
                got = await store.dequeue_rollout(worker_id=f"w{k}")
                assert got is not None  # every worker enqueued one first
                await store.update_attempt(got.rollout_id, got.attempt.attempt_id, status="succeeded")

        async def body() -> None:
            async with anyio.create_task_group() as tg:
                for k in range(CYCLE_WORKERS):
                    tg.start_soon(worker, k)

        await self.timed(f"cycles_concurrent{CYCLE_WORKERS}", n, body)

    async def _running(self, store: LightningStore, count: int) -> list[tuple[str, str]]:
        out = []
        for _ in range(count):
            ar = await store.start_rollout({"q": 1})
            out.append((ar.rollout_id, ar.attempt_id))
        return out

    async def add_span(self, store: LightningStore) -> None:
        n = self.n(50_000)
        ids = await self._running(store, 100)
        spans = [make_span(*ids[i % 100], f"{i % 100:032x}", i) for i in range(n)]

        async def one() -> None:
            for span in spans:
                await store.add_span(span)

        await self.timed("add_span", n, one)
        n_batch = self.n(200_000) // 100
        ids = await self._running(store, 100)
        batches = [
            [make_span(*ids[b % 100], f"{b:032x}", b * 100 + i) for i in range(100)] for b in range(n_batch)
        ]

        async def many() -> None:
            for batch in batches:
                await store.add_many_spans(batch)

        await self.timed("add_span_batch100", n_batch * 100, many)

    async def add_otel_span(self, store: LightningStore) -> None:
        from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

        n = self.n(20_000)
        tracer = TracerProvider().get_tracer("bench")
        readable: list[ReadableSpan] = []
        for i in range(n):
            with tracer.start_as_current_span("chat gpt-4o-mini") as sp:
                sp.set_attribute(semconv.GEN_AI_REQUEST_MODEL, "gpt-4o-mini")
                sp.set_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS, i)
            readable.append(sp)  # type: ignore[arg-type]
        ids = await self._running(store, 100)

        async def body() -> None:
            for i, span in enumerate(readable):
                rid, aid = ids[i % 100]
                await store.add_otel_span(rid, aid, span)

        await self.timed("add_otel_span", n, body)

    async def query_spans(self, store: LightningStore) -> None:
        ((rid, aid),) = await self._running(store, 1)
        await store.add_many_spans([make_span(rid, aid, "ab" * 16, i) for i in range(100)])
        n = self.n(20_000)

        async def body() -> None:
            for _ in range(n):
                await store.query_spans(rid)

        await self.timed("query_spans_100", n, body)

    async def update_attempt(self, store: LightningStore) -> None:
        n = self.n(50_000)
        ids = await self._running(store, n)

        async def body() -> None:
            for rid, aid in ids:
                await store.update_attempt(rid, aid, status="succeeded")

        await self.timed("update_attempt", n, body)

    async def wait_for_rollouts(self, store: LightningStore) -> None:
        n = self.n(10_000)
        ids = await self._running(store, n)

        async def body() -> None:
            # each round trip: a waiter blocks, another task finishes the rollout and wakes it
            for rid, aid in ids:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(store.wait_for_rollouts, [rid], 10.0)
                    await anyio.lowlevel.checkpoint()
                    await store.update_attempt(rid, aid, status="succeeded")

        await self.timed("wait_for_rollouts", n, body)
        done = [rid for rid, _ in ids[:100]]
        m = self.n(20_000)

        async def check() -> None:
            for _ in range(m):
                await store.wait_for_rollouts(done, timeout=0)

        await self.timed("wait_for_rollouts_check100", m, check)


_RSS_PROBE = r"""
import asyncio, gc, json, sys
sys.path.insert(0, {bench_dir!r})
from store_bench import make_span, store_spec
import argparse
from agentlightning_core import semconv
from agentlightning_core.plugins import resolve_component
from agentlightning_core.store.base import LightningStore

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * {page}

async def main():
    args = argparse.Namespace(**{args!r})
    store = resolve_component("store", store_spec(args, {schema!r}), base=LightningStore)
    async with store:
        ids = []
        for _ in range(1000):
            ar = await store.start_rollout({{"q": 1}})
            ids.append((ar.rollout_id, ar.attempt_id, ar.rollout_id.encode().hex()[:32].rjust(32, "0")))
        make_span(*ids[0][:2], ids[0][2], 0)
        gc.collect()
        before = rss()
        for rid, aid, trace in ids:
            await store.add_many_spans([make_span(rid, aid, trace, i) for i in range(100)])
        gc.collect()
        after = rss()
        stats = await store.statistics()
    print(json.dumps({{"bytes_per_span": (after - before) / 100_000,
                      "estimated_bytes_per_span": stats.get("span_bytes", 0) / max(1, stats.get("spans", 1)),
                      "file_bytes_per_span": stats.get("file_bytes", 0) / max(1, stats.get("spans", 1)),
                      "database_bytes_per_span": stats.get("database_bytes", 0) / max(1, stats.get("spans", 1))}}))

asyncio.run(main())
"""


def measure_rss(args: argparse.Namespace, schema: str | None = None) -> dict[str, float]:
    probe = _RSS_PROBE.format(
        schema=schema,
        bench_dir=os.path.dirname(os.path.abspath(__file__)),
        page=os.sysconf("SC_PAGE_SIZE"),
        args={"store": args.store, "path": args.path, "dsn": args.dsn},
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--store", default="memory", help="registered store name (default: memory)")
    parser.add_argument(
        "--path", default=None, help="database file for file-based stores (recreated per step)"
    )
    parser.add_argument(
        "--dsn",
        default=os.environ.get("AGL_POSTGRES_DSN"),
        help="--store postgres: the database (default: a throw-away one)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="a tenth of the operations (a smoke run)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.store == "postgres" and not args.dsn:
            from agentlightning_postgres.testing import TemporaryCluster

            args.dsn = stack.enter_context(TemporaryCluster()).dsn
        run(args)


def run(args: argparse.Namespace) -> None:
    tmp: str | None = None
    if args.path is None and args.store not in ("memory", "postgres"):
        tmp = tempfile.mkdtemp(prefix="agl-store-bench-")
        args.path = os.path.join(tmp, "store.db")
    bench = Bench(args)
    anyio.run(bench.run)
    if args.path:
        remove_db(args.path)
    if args.store == "postgres":
        bench.schemas = [f"agl_bench_rss_{os.getpid()}"]
        rss = measure_rss(args, bench.schemas[0])
        anyio.run(bench.drop_schemas)
    else:
        rss = measure_rss(args)
    if args.path:
        remove_db(args.path)
    if args.json:
        print(json.dumps({"store": args.store, "ops_per_second": bench.results, **rss}, indent=2))
        return
    targets = FILE_TARGETS.get(args.store, TARGETS)
    load = os.getloadavg()[0]
    print(
        f"store: {args.store}{' (quick run)' if args.quick else ''}, load average {load:.2f} on {os.cpu_count()} cores"
    )
    for name, value in bench.results.items():
        target = targets.get(name)
        line = f"  {name:<28} {value:>12,.0f} ops/s"
        if target is not None:
            verdict = "ok" if value >= target else "BELOW TARGET"
            line += f"   target >= {target:>9,.0f}  {verdict}"
            if name in PREVIOUS and targets is TARGETS:
                line += f"  ({value / PREVIOUS[name]:.0f}x previous)"
        if name == "query_spans_100":
            line += f"   ({1e6 / value:,.0f} us per read)"
        print(line)
    per_span = rss["bytes_per_span"]
    verdict = "ok" if per_span < BYTES_PER_SPAN_TARGET else "ABOVE TARGET"
    print(
        f"  {'resident bytes per span':<28} {per_span:>12,.0f} B       target <  {BYTES_PER_SPAN_TARGET:>9,}  {verdict}"
        f"  (store's estimate: {rss['estimated_bytes_per_span']:.0f} B)"
    )
    if rss.get("database_bytes_per_span"):
        print(
            f"  {'database bytes per span':<28} {rss['database_bytes_per_span']:>12,.0f} B       (tables and "
            "indexes of the store's schema, as PostgreSQL reports them)"
        )
    if rss["file_bytes_per_span"]:
        print(
            f"  {'file bytes per span':<28} {rss['file_bytes_per_span']:>12,.0f} B       (database + log, "
            "indexes included; benchmarks/sqlite_bytes_per_span.py measures after VACUUM)"
        )


if __name__ == "__main__":
    main()
