"""OTLP export (``otlp=``): what forwarding costs the store, and how fast it exports.

Printed, next to their targets:

1. ``submit`` per span on the caller's thread (the store server's event loop): target < 2 us.
2. Store server ingestion (``add_many_spans`` of 256 spans over HTTP, one client) without and
   with ``otlp=`` pointing at a sink in another process: target < 25% fewer spans/s (the
   export thread shares the server's GIL: conversion and protobuf encoding are CPU work).
3. Export throughput of the background thread (OpenTelemetry's OTLP/HTTP exporter, batches of
   512) to the sink: target > 20,000 spans/s, so a run's spans do not queue up.

    python benchmarks/otlp_bench.py [--spans 50000]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from typing import Any

import anyio

from agentlightning_core.otlp_export import OtlpExporter
from agentlightning_core.remote.client import LightningStoreClient
from agentlightning_core.remote.server import LightningStoreServer
from agentlightning_core.spans import Span
from agentlightning_core.store.memory import InMemoryLightningStore

SINK = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_spans(n: int, rollout_id: str = "r", attempt_id: str = "a") -> list[Span]:
    now = time.time()
    return [
        Span(
            rollout_id=rollout_id,
            attempt_id=attempt_id,
            sequence_id=0,
            trace_id=f"{i // 256 + 1:032x}",
            span_id=f"{i + 1:016x}",
            parent_id=None if i % 256 == 0 else f"{i // 256 * 256 + 1:016x}",
            name="chat small",
            start_time=now,
            end_time=now + 0.1,
            attributes={"gen_ai.request.model": "small", "gen_ai.usage.input_tokens": 12, "k": "v" * 40},
        )
        for i in range(n)
    ]


def bench_submit(n: int) -> float:
    exporter = OtlpExporter("http://127.0.0.1:9", metrics=False, max_queue=n)
    exporter._thread = object()  # type: ignore[assignment]  # measure the queueing alone: no export
    spans = make_spans(n)
    start = time.perf_counter()
    for i in range(0, n, 256):
        exporter.submit(spans[i : i + 256])
    return (time.perf_counter() - start) / n * 1e6


async def ingest(n: int, otlp: Any) -> tuple[float, OtlpExporter | None]:
    store = InMemoryLightningStore()
    async with store, LightningStoreServer(store, port=0, otlp=otlp) as server:
        async with LightningStoreClient(server.url) as client:
            ar = await client.start_rollout("bench")
            spans = make_spans(n, ar.rollout_id, ar.attempt_id)
            start = time.perf_counter()
            for i in range(0, n, 256):
                await client.add_many_spans(spans[i : i + 256])
            rate = n / (time.perf_counter() - start)
        if server.otlp is not None:
            await anyio.to_thread.run_sync(server.otlp.flush, 120.0)
        return rate, server.otlp


def bench_export(n: int, url: str) -> float:
    with OtlpExporter(url, metrics=False, max_queue=n) as exporter:
        spans = make_spans(n)
        start = time.perf_counter()
        exporter.submit(spans)
        exporter.flush(300)
        elapsed = time.perf_counter() - start
        assert exporter.stats.spans_exported == n, exporter.stats
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=50_000)
    n = parser.parse_args().spans
    port = free_port()
    sink = subprocess.Popen([sys.executable, "-c", SINK, str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):  # the sink binds within a fraction of a second
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        print(f"load average: {os.getloadavg()[0]:.2f}  spans: {n}")
        print(f"1. submit per span:          {bench_submit(n):8.2f} us   (target < 2 us)")
        plain, _ = anyio.run(ingest, n, None)
        forwarded, exporter = anyio.run(ingest, n, {"endpoint": url, "metrics": False})
        assert exporter is not None
        drop = 100 * (1 - forwarded / plain)
        print(f"2. ingestion without otlp:   {plain:8.0f} spans/s")
        print(f"   ingestion with otlp:      {forwarded:8.0f} spans/s ({drop:.0f}% fewer; target < 25%)")
        print(f"   forwarded {exporter.stats.spans_exported}, dropped {exporter.stats.spans_dropped}")
        print(f"3. export throughput:        {bench_export(n, url):8.0f} spans/s (target > 20000)")
    finally:
        sink.terminate()
        sink.wait(10)


if __name__ == "__main__":
    main()
