"""Tracing overhead and throughput; prints figures (targets: < 30 us per span, adapters >= 50k spans/s).

    python benchmarks/tracing_bench.py [--spans 20000] [--calls 200]

1. overhead per span: ``with tracer.create_span(...)`` around a tiny piece of work inside a
   trace context (export to the in-memory store running concurrently), minus the same work
   untraced; also the time to flush at the end;
2. overhead per captured LLM call: the real ``openai`` client against the local scripted
   server, traced minus untraced;
3. spans/s through the LightningSpanProcessor into the in-memory store;
4. adapter throughput: spans/s from a trace to triplets (TracerTraceToTriplet, proxy) and messages.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from agentlightning_core.adapter.messages import TraceToMessages
from agentlightning_core.adapter.triplet import LlmProxyTraceToTriplet, TracerTraceToTriplet
from agentlightning_core.spans import Span
from agentlightning_core.store.memory import InMemoryLightningStore
from agentlightning_core.testing.adapter import llm_span, reward_span, span
from agentlightning_core.testing.openai_server import OpenAIServer
from agentlightning_core.tracer.otel import OtelTracer


def work() -> int:
    return sum(range(20))


def new_attempt(store: InMemoryLightningStore) -> tuple[str, str]:
    attempted = asyncio.run(store.start_rollout(input="bench"))
    return attempted.rollout_id, attempted.attempt_id


def bench_spans(n: int) -> None:
    store = InMemoryLightningStore()
    tracer = OtelTracer(instrument_openai=False)
    rollout_id, attempt_id = new_attempt(store)
    # warm up
    with tracer.trace_context("warm", store=store, rollout_id=rollout_id, attempt_id=attempt_id):
        for _ in range(1000):
            with tracer.create_span("s"):
                work()
    untraced, traced, flush, total = [], [], [], []
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(n):
            work()
        untraced.append(time.perf_counter() - t0)
        rollout_id, attempt_id = new_attempt(store)
        ctx = tracer.trace_context("bench", store=store, rollout_id=rollout_id, attempt_id=attempt_id)
        t0 = time.perf_counter()
        with ctx:
            for _ in range(n):
                with tracer.create_span("step"):
                    work()
            t1 = time.perf_counter()
        t2 = time.perf_counter()
        traced.append(t1 - t0)
        flush.append(t2 - t1)
        total.append(t2 - t0)
        assert len(tracer.get_last_trace()) == n + 1, "every span must reach the store"
    over = (min(traced) - min(untraced)) / n * 1e6
    print(f"span overhead (hot path):        {over:8.2f} us/span   (target < 30; {n} spans, best of 3)")
    print(f"flush at trace end:              {min(flush) * 1e3:8.2f} ms for {n} spans")
    print(f"processor -> memory store:       {n / min(total):8.0f} spans/s (create + export + flush)")
    tracer.teardown()


def bench_llm_calls(n: int) -> None:
    import openai

    tracer = OtelTracer()
    tracer.init()
    messages = [{"role": "user", "content": "hello there"}]
    with (
        OpenAIServer(lambda body: "a short answer") as server,
        openai.OpenAI(base_url=server.base_url, api_key="bench", max_retries=0) as client,
    ):
        for _ in range(20):  # warm up the connection pool
            client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
        untraced, traced = [], []
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(n):
                client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
            untraced.append(time.perf_counter() - t0)
            with tracer.trace_context("llm"):
                t0 = time.perf_counter()
                for _ in range(n):
                    client.chat.completions.create(model="m", messages=messages)  # type: ignore[arg-type]
                traced.append(time.perf_counter() - t0)
    per_call = statistics.median(untraced) / n * 1e6
    over = (statistics.median(traced) - statistics.median(untraced)) / n * 1e6
    print(
        f"LLM call overhead (openai sync): {over:8.1f} us/call   (untraced call: {per_call:.0f} us over HTTP)"
    )
    tracer.teardown()


def synthetic_trace(calls: int) -> list[Span]:
    spans = [span(1, "agent", start=0, end=calls * 2 + 2)]
    history = [{"role": "system", "content": "You are a helpful agent."}]
    index = 2
    for i in range(calls):
        history = [*history[-6:], {"role": "user", "content": f"question {i} " * 5}]
        tool_parent = index
        spans.append(span(index, "tool-step", parent=1, start=i * 2, end=i * 2 + 1.5))
        index += 1
        spans.append(
            llm_span(
                index,
                history,
                {"role": "assistant", "content": f"answer {i} " * 10},
                parent=tool_parent,
                start=i * 2 + 0.1,
                end=i * 2 + 1.0,
                prompt_token_ids=list(range(64)),
                response_token_ids=list(range(32)),
            )
        )
        index += 1
    spans.append(reward_span(index, 1.0, parent=1, start=calls * 2 + 1))
    return spans


def bench_adapters(calls: int) -> None:
    spans = synthetic_trace(calls)
    for name, adapter in (
        ("TracerTraceToTriplet", TracerTraceToTriplet(reward_policy="broadcast")),
        ("LlmProxyTraceToTriplet", LlmProxyTraceToTriplet()),
        ("TraceToMessages", TraceToMessages()),
    ):
        adapter.adapt(spans)
        runs = []
        for _ in range(15):
            t0 = time.perf_counter()
            out = adapter.adapt(spans)
            runs.append(time.perf_counter() - t0)
        assert len(out) == calls
        print(
            f"adapter {name:24s} {len(spans) / min(runs):8.0f} spans/s (target >= 50000; {len(spans)} spans)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20000)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    bench_spans(args.spans)
    bench_llm_calls(args.calls)
    bench_adapters(1000)


if __name__ == "__main__":
    main()
