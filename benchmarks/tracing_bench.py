"""Tracing overhead and throughput; prints figures (targets: < 30 us per span, adapters >= 50k spans/s).

    python benchmarks/tracing_bench.py [--spans 20000] [--repeats 7] [--calls 200] [--json]
    python benchmarks/tracing_bench.py --integration langchain [--calls 200]
    python benchmarks/tracing_bench.py --tracer agentops   # the agentops tracer next to otel

1. overhead per span: ``with tracer.create_span(...)`` around a tiny piece of work inside a
   trace context, minus the same work untraced. Untraced and traced runs alternate; each
   figure is the median of ``--repeats`` runs after a warm-up, with a fresh in-memory store
   per run. Reported for the sync context (export on the tracer's thread, concurrently) and
   the async one (export on the caller's loop, which the agent yields to every 64 spans):
   the hot path alone (until the last span ended), the whole trace (hot path + export +
   flush) in wall time and in process CPU time (all threads; less sensitive to other load),
   and spans/s through the LightningSpanProcessor into the store;
2. overhead per captured LLM call: the real ``openai`` client against the local scripted
   server, traced minus untraced;
3. adapter throughput: spans/s from a trace to triplets (TracerTraceToTriplet, proxy) and messages.

``--integration langchain`` measures instead what agentlightning-langchain's handler adds: per
``ChatOpenAI`` call on the scripted server and per step of a chain of ``RunnableLambda`` steps,
inside a trace context, with the handler minus without it (median of 5 alternating runs).
``--tracer agentops`` measures 1. and 2. for the ``otel`` tracer and the ``agentops`` tracer
(agentlightning-agentops) side by side, adds the overhead of an AgentOps ``@operation``
entity span (the decorator's own path) and the import + ``init`` time the plugin adds to a
fresh process (median of 5 processes), and skips 3. (the adapters do not depend on the tracer).

The load average and the garbage collector's state (thresholds, collections per 1,000
spans in the traced runs) are printed with the figures, since both move them.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from agentlightning_core.adapter.messages import TraceToMessages
from agentlightning_core.adapter.triplet import LlmProxyTraceToTriplet, TracerTraceToTriplet
from agentlightning_core.spans import Span
from agentlightning_core.store.memory import InMemoryLightningStore
from agentlightning_core.testing.adapter import llm_span, reward_span, span
from agentlightning_core.testing.openai_server import OpenAIServer
from agentlightning_core.tracer.otel import OtelTracer

SPAN_TARGET_US = 30.0
ADAPTER_TARGET = 50_000
YIELD_EVERY = 64


def work() -> int:
    return sum(range(20))


def new_attempt(store: InMemoryLightningStore) -> tuple[str, str]:
    attempted = asyncio.run(store.start_rollout(input="bench"))
    return attempted.rollout_id, attempted.attempt_id


def clocks() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def run_untraced(n: int) -> tuple[float, float]:
    (w0, c0) = clocks()
    for _ in range(n):
        work()
    (w1, c1) = clocks()
    return w1 - w0, c1 - c0


def run_sync(tracer: OtelTracer, n: int, step: Callable[[], int] | None = None) -> tuple[float, float, float]:
    """One traced run: (hot-path wall, whole-trace wall, whole-trace CPU) in seconds.

    ``step`` is a function recording its own span (an AgentOps-decorated ``work``); without
    it each step is ``work()`` inside ``tracer.create_span``."""
    store = InMemoryLightningStore()
    rollout_id, attempt_id = new_attempt(store)
    ctx = tracer.trace_context("bench", store=store, rollout_id=rollout_id, attempt_id=attempt_id)
    (w0, c0) = clocks()
    with ctx:
        if step is None:
            for _ in range(n):
                with tracer.create_span("step"):
                    work()
        else:
            for _ in range(n):
                step()
        hot = time.perf_counter()
    (w1, c1) = clocks()
    assert len(tracer.get_last_trace()) == n + 1, "every span must reach the store"
    return hot - w0, w1 - w0, c1 - c0


async def _untraced_async(n: int) -> tuple[float, float]:
    (w0, c0) = clocks()
    for i in range(n):
        work()
        if i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    (w1, c1) = clocks()
    return w1 - w0, c1 - c0


async def _traced_async(tracer: OtelTracer, n: int) -> tuple[float, float, float]:
    store = InMemoryLightningStore()
    attempted = await store.start_rollout(input="bench")
    ctx = tracer.trace_context(
        "bench", store=store, rollout_id=attempted.rollout_id, attempt_id=attempted.attempt_id
    )
    (w0, c0) = clocks()
    async with ctx:
        for i in range(n):
            with tracer.create_span("step"):
                work()
            if i % YIELD_EVERY == 0:
                await asyncio.sleep(0)
        hot = time.perf_counter()
    (w1, c1) = clocks()
    assert len(tracer.get_last_trace()) == n + 1, "every span must reach the store"
    return hot - w0, w1 - w0, c1 - c0


def run_untraced_async(n: int) -> tuple[float, float]:
    return asyncio.run(_untraced_async(n))


def run_async(tracer: OtelTracer, n: int) -> tuple[float, float, float]:
    return asyncio.run(_traced_async(tracer, n))


def gc_collections() -> list[int]:
    return [g["collections"] for g in gc.get_stats()]


def bench_spans(
    label: str,
    n: int,
    repeats: int,
    untraced_run: Callable[[int], tuple[float, float]],
    traced_run: Callable[[OtelTracer, int], tuple[float, float, float]],
    tracer_factory: Callable[[], OtelTracer] | None = None,
) -> dict[str, Any]:
    tracer = tracer_factory() if tracer_factory is not None else OtelTracer(instrument_openai=False)
    untraced_run(n // 10)  # warm up
    traced_run(tracer, n // 10)
    untraced: list[tuple[float, float]] = []
    traced: list[tuple[float, float, float]] = []
    before = gc_collections()
    for _ in range(repeats):
        untraced.append(untraced_run(n))
        traced.append(traced_run(tracer, n))
    after = gc_collections()
    tracer.teardown()
    base_wall = statistics.median(u[0] for u in untraced)
    base_cpu = statistics.median(u[1] for u in untraced)
    hot = statistics.median(t[0] for t in traced)
    total = statistics.median(t[1] for t in traced)
    cpu = statistics.median(t[2] for t in traced)
    figures: dict[str, Any] = {
        "hot_path_us": (hot - base_wall) / n * 1e6,
        "whole_trace_us": (total - base_wall) / n * 1e6,
        "whole_trace_cpu_us": (cpu - base_cpu) / n * 1e6,
        "flush_ms": (total - hot) * 1e3,
        "spans_per_s": n / total,
        "gc_per_1k_spans": [
            round((a - b) * 1000 / (n * repeats), 2) for a, b in zip(after, before, strict=True)
        ],
    }
    best = (min(t[1] for t in traced) - min(u[0] for u in untraced)) / n * 1e6
    verdict = "met" if figures["whole_trace_us"] < SPAN_TARGET_US else "NOT met"
    print(f"[{label}] {n} spans, median of {repeats} runs")
    print(f"  span overhead, hot path:        {figures['hot_path_us']:7.2f} us/span")
    print(
        f"  span overhead, whole trace:     {figures['whole_trace_us']:7.2f} us/span   "
        f"(target < {SPAN_TARGET_US:.0f}: {verdict}; best run {best:.2f})"
    )
    print(f"  span overhead, CPU all threads: {figures['whole_trace_cpu_us']:7.2f} us/span")
    print(f"  flush at trace end:             {figures['flush_ms']:7.2f} ms")
    print(
        f"  processor -> memory store:      {figures['spans_per_s']:7.0f} spans/s (create + export + flush)"
    )
    print(f"  gc collections per 1k spans (gen0, gen1, gen2): {figures['gc_per_1k_spans']}")
    return figures


def bench_llm_calls(n: int, tracer: OtelTracer | None = None, label: str = "openai sync") -> float:
    import openai

    tracer = tracer if tracer is not None else OtelTracer()
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
    print(f"LLM call overhead ({label}): {over:8.1f} us/call   (untraced call: {per_call:.0f} us over HTTP)")
    tracer.teardown()
    return over


def bench_langchain(n: int) -> dict[str, float]:
    from langchain_core.runnables import RunnableLambda
    from langchain_openai import ChatOpenAI

    from agentlightning_langchain import LightningCallbackHandler

    tracer = OtelTracer()
    tracer.init()
    steps = 20
    chain: Any = RunnableLambda(lambda x: x + 1)
    for _ in range(steps - 1):
        chain = chain | RunnableLambda(lambda x: x + 1)
    with OpenAIServer(lambda body: "a short answer") as server:
        model = ChatOpenAI(model="m", base_url=server.base_url, api_key="bench", max_retries=0)  # type: ignore[arg-type]
        handler = LightningCallbackHandler(tracer)

        def timed(fn: Callable[[Any], Any], config: Any, times: int) -> float:
            with tracer.trace_context("bench"):
                t0 = time.perf_counter()
                for _ in range(times):
                    fn(config)
                return time.perf_counter() - t0

        with_handler = {"callbacks": [handler]}

        figures: dict[str, float] = {}
        for label, fn, per in (
            ("llm_call", lambda config: model.invoke("hello there", config=config), 1),
            ("chain_step", lambda config: chain.invoke(0, config=config), steps),
        ):
            timed(fn, {}, 20)  # warm up (connection pool, imports)
            timed(fn, with_handler, 20)
            plain, traced = [], []
            for _ in range(5):
                plain.append(timed(fn, {}, n))
                traced.append(timed(fn, with_handler, n))
            base = statistics.median(plain) / (n * per) * 1e6
            over = (statistics.median(traced) - statistics.median(plain)) / (n * per) * 1e6
            figures[f"langchain_{label}_overhead_us"] = over
            print(
                f"LangChain handler, added per {label.replace('_', ' ')}: {over:8.1f} us   (without it: {base:.0f} us)"
            )
    tracer.teardown()
    return figures


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


def bench_adapters(calls: int) -> dict[str, float]:
    spans = synthetic_trace(calls)
    figures: dict[str, float] = {}
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
        figures[name] = len(spans) / min(runs)
        print(
            f"adapter {name:24s} {figures[name]:8.0f} spans/s "
            f"(target >= {ADAPTER_TARGET}; {len(spans)} spans, best of 15)"
        )
    return figures


def agentops_tracer(**options: Any) -> OtelTracer:
    from agentlightning_agentops import AgentOpsTracer

    return AgentOpsTracer(**options)


def bench_agentops(args: argparse.Namespace) -> dict[str, Any]:
    """The agentops tracer next to otel: spans (create_span and AgentOps entity spans), LLM calls, import."""
    import agentops

    entity_step = agentops.operation(work)  # records a ``work.task`` span per call
    figures: dict[str, Any] = {}
    for name, factory in (
        ("otel", lambda: OtelTracer(instrument_openai=False)),
        ("agentops", lambda: agentops_tracer(instrument=[])),
    ):
        figures[f"{name}_sync"] = bench_spans(
            f"{name}: sync `with`, create_span", args.spans, args.repeats, run_untraced, run_sync, factory
        )
    figures["agentops_entity_sync"] = bench_spans(
        "agentops: sync `with`, @agentops.operation",
        args.spans,
        args.repeats,
        run_untraced,
        lambda tracer, n: run_sync(tracer, n, entity_step),
        lambda: agentops_tracer(instrument=[]),
    )
    figures["otel_llm_call_overhead_us"] = bench_llm_calls(args.calls, OtelTracer(), "otel, core capture")
    figures["agentops_llm_call_overhead_us"] = bench_llm_calls(
        args.calls, agentops_tracer(instrument=["openai"]), "agentops, AgentOps' openai instrumentor"
    )
    figures["import_init_ms"] = bench_import()
    return figures


_IMPORT_INIT = {
    "otel": "from agentlightning_core import OtelTracer; OtelTracer().init()",
    "agentops": "from agentlightning_agentops import AgentOpsTracer; AgentOpsTracer().init()",
}


def bench_import(runs: int = 5) -> dict[str, float]:
    """Import + init of each tracer in a fresh process (median ms), and what agentops adds."""
    out: dict[str, float] = {}
    for name, code in _IMPORT_INIT.items():
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - t0)
        out[name] = statistics.median(times) * 1e3
    out["added_by_agentops"] = out["agentops"] - out["otel"]
    print(
        f"import + init in a fresh process: otel {out['otel']:.0f} ms, agentops {out['agentops']:.0f} ms "
        f"(the plugin adds {out['added_by_agentops']:.0f} ms; median of {runs})"
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    parser.add_argument(
        "--integration", choices=["langchain"], help="measure an agent-framework integration instead"
    )
    parser.add_argument(
        "--tracer",
        choices=["otel", "agentops"],
        default="otel",
        help="agentops: the agentops tracer next to otel",
    )
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores; gc "
        f"{'enabled' if gc.isenabled() else 'DISABLED'}, thresholds {gc.get_threshold()}"
    )
    figures: dict[str, Any]
    if args.tracer == "agentops":
        figures = bench_agentops(args)
        load = os.getloadavg()
        figures["load_average"] = [round(x, 2) for x in load]
        print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        if args.json:
            print(json.dumps(figures))
        return
    if args.integration == "langchain":
        figures = dict(bench_langchain(args.calls))
    else:
        figures = {
            "sync": bench_spans("sync `with`", args.spans, args.repeats, run_untraced, run_sync),
            "async": bench_spans(
                "async `async with`", args.spans, args.repeats, run_untraced_async, run_async
            ),
            "llm_call_overhead_us": bench_llm_calls(args.calls),
            "adapters_spans_per_s": bench_adapters(1000),
        }
    load = os.getloadavg()
    figures["load_average"] = [round(x, 2) for x in load]
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
