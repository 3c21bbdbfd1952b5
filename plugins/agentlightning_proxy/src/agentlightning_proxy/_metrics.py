"""Prometheus metrics of the proxy, served at ``GET /metrics`` (names and labels in docs/proxy.md).

Counted on the request path as plain numbers (a dict addition and a ``bisect`` per call, no
lock: the proxy runs on one event loop) and exported by :meth:`ProxyMetrics.collect` when
scraped, like the store's hot path in :mod:`agentlightning_core.metrics`. The counters of
:class:`~agentlightning_proxy.ProxyStats`, the calls in flight and the paused state are read
at scrape time. Labels take bounded values only: surfaces, configured upstream names, HTTP
status codes; never rollout or attempt ids.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from agentlightning_core.metrics import MetricsEndpoint, histogram_family, require_prometheus

if TYPE_CHECKING:
    from agentlightning_proxy._app import ProxyApp

__all__ = ["CALL_BUCKETS", "NO_UPSTREAM", "ProxyMetrics"]

CALL_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
)
"""Bucket bounds (seconds) of the call and upstream latency histograms: model calls take long."""

NO_UPSTREAM = "none"
"""The ``upstream`` label of calls the proxy answered itself (bad JSON, unknown model, ...)."""

_STATS = (
    ("recorded", "spans_recorded", "Spans of calls stored in the store"),
    (
        "unattributed",
        "unattributed_calls",
        "Calls without rollout/attempt ids or for a rollout the store does not know",
    ),
    ("upstream_errors", "upstream_errors", "Calls the upstream answered with an error or could not take"),
    (
        "client_errors",
        "client_errors",
        "Requests the proxy refused itself (bad JSON, too large, unknown path, ...)",
    ),
    (
        "token_drift",
        "token_drift",
        "Calls whose prompt token ids do not extend the attempt's previous call's",
    ),
    ("record_failures", "record_failures", "Spans the store refused"),
    ("paused_refusals", "paused_refusals", "Calls answered 429 while the proxy was paused"),
    ("traced_elsewhere", "traced_elsewhere", "Calls forwarded without a span because a tracer records them"),
)


class ProxyMetrics:
    """The metrics of one proxy app, in a registry of their own, with the ASGI ``endpoint``."""

    def __init__(self, app: ProxyApp, *, prefix: str = "agl_proxy") -> None:
        require_prometheus()
        from prometheus_client import CollectorRegistry

        self.app = app
        self.prefix = prefix
        self.calls: dict[tuple[str, str, str], int] = {}
        self.retries: dict[str, int] = {}
        self.call_seconds: dict[tuple[str, ...], list[float]] = {}
        self.upstream_seconds: dict[tuple[str, ...], list[float]] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(self)
        self.endpoint = MetricsEndpoint(self.registry)

    def call(
        self, surface: str, upstream: str, status: int, seconds: float, upstream_seconds: float | None
    ) -> None:
        """Count one finished call: the status its client got, and how long it and its upstream took."""
        key = (surface, upstream, str(status))
        self.calls[key] = self.calls.get(key, 0) + 1
        _observe(self.call_seconds, (surface,), seconds)
        if upstream_seconds is not None:
            _observe(self.upstream_seconds, (surface, upstream), upstream_seconds)

    def retry(self, upstream: str) -> None:
        """Count a retry after ``upstream`` failed (connection error or 408/429/5xx)."""
        self.retries[upstream] = self.retries.get(upstream, 0) + 1

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        p, app = self.prefix, self.app
        calls = CounterMetricFamily(
            f"{p}_calls",
            "Model calls by surface, upstream and the HTTP status the client got",
            labels=["surface", "upstream", "status"],
        )
        for labels, n in sorted(self.calls.items()):
            calls.add_metric(list(labels), n)
        yield calls
        retries = CounterMetricFamily(
            f"{p}_retries", "Retries of calls, by the upstream that failed", labels=["upstream"]
        )
        for upstream, n in sorted(self.retries.items()):
            retries.add_metric([upstream], n)
        yield retries
        for field, name, documentation in _STATS:
            yield CounterMetricFamily(f"{p}_{name}", documentation, value=getattr(app.stats, field))
        yield GaugeMetricFamily(f"{p}_inflight_calls", "Calls being forwarded now", value=app.inflight)
        yield GaugeMetricFamily(
            f"{p}_paused", "1 while the proxy is paused (answering 429), else 0", value=int(app.paused)
        )
        yield histogram_family(
            f"{p}_call_seconds",
            "Time from a request's arrival to its span being recorded (the whole answer for a stream)",
            ["surface"],
            self.call_seconds,
            CALL_BUCKETS,
        )
        yield histogram_family(
            f"{p}_upstream_seconds",
            "Time from sending a call to the upstream to its response headers (the answering attempt)",
            ["surface", "upstream"],
            self.upstream_seconds,
            CALL_BUCKETS,
        )


def _observe(series: dict[tuple[str, ...], list[float]], labels: tuple[str, ...], seconds: float) -> None:
    values = series.get(labels)
    if values is None:
        values = series[labels] = [0.0] * (len(CALL_BUCKETS) + 2)
    values[bisect_left(CALL_BUCKETS, seconds)] += 1
    values[-1] += seconds
