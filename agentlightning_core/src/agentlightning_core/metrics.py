"""Prometheus metrics of a store: what a run is doing, for ``/metrics`` (needs ``prometheus-client``:
``pip install agentlightning-core[metrics]``).

Three pieces, usable apart:

- :class:`StoreMetrics`: the metrics (names and labels in docs/metrics.md) in their own
  :class:`prometheus_client.CollectorRegistry`. Events on the hot path (operation latency,
  spans ingested, heartbeats) are counted as they happen; the state of the store (rollouts
  by status and mode, queue depth, workers, rewards per resources version) is read from
  the store when metrics are scraped, so the hot path pays nothing for it.
- :func:`instrument_store`: wraps a store so every operation is timed and counted; the
  store server does this itself, ``agl train --metrics-port`` for the shared-memory strategy.
- :class:`MetricsEndpoint`: an ASGI handler answering ``GET /metrics`` from any registry,
  for any ASGI app (the store server mounts one; an LLM proxy can mount its own).

Labels take bounded values only: operation names, statuses, modes, the newest
:data:`MAX_RESOURCE_VERSIONS` resources ids and the :data:`MAX_WORKERS` most recently beating
workers. Rollout and attempt ids are never labels.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

import anyio

from agentlightning_core.store.base import LightningStore
from agentlightning_core.types import TERMINAL_ROLLOUT_STATUSES, RolloutStatus

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import HistogramMetricFamily

__all__ = [
    "LATENCY_BUCKETS",
    "MAX_RESOURCE_VERSIONS",
    "MAX_WORKERS",
    "MetricsEndpoint",
    "MetricsServer",
    "StoreMetrics",
    "histogram_family",
    "instrument_store",
    "instrumented_metrics",
    "instrumented_server",
    "require_prometheus",
]

logger = logging.getLogger(__name__)

MAX_RESOURCE_VERSIONS = 100
"""Reward series are kept for this many resources ids (the newest); older ones are dropped."""
MAX_WORKERS = 100
"""Heartbeat age series are kept for this many workers (the most recently beating)."""

LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
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
    10.0,
)
"""Bucket bounds (seconds) of the store's operation latency histograms."""
# No negative bound: prometheus-client then drops a histogram's _sum, which mean rewards need.
REWARD_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 10.0)
_ACTIVE = (RolloutStatus.QUEUING, RolloutStatus.REQUEUING, RolloutStatus.PREPARING, RolloutStatus.RUNNING)
_FINISHED = tuple(sorted(TERMINAL_ROLLOUT_STATUSES))
_PAGE = 256
_SPAN_RESULTS = {"add_span": "one", "add_otel_span": "one", "add_many_spans": "many"}


def require_prometheus() -> None:
    """Raise ``ImportError`` with the install line when ``prometheus-client`` is missing."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        from agentlightning_core.plugins import install_hint

        raise ImportError(
            "Metrics need prometheus-client. Install it with: "
            + install_hint("agentlightning-core", "metrics")
        ) from None


class StoreMetrics:
    """The metrics of one store, in ``registry`` (default: a new one of its own)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, prefix: str = "agl") -> None:
        require_prometheus()
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.created = time.time()
        r, p = self.registry, prefix
        self.hot = _HotPath(prefix)
        r.register(self.hot)
        self.rollouts = Gauge(f"{p}_rollouts", "Rollouts in the store by status", ["status"], registry=r)
        self.rollouts_active = Gauge(
            f"{p}_rollouts_active", "Unfinished rollouts by status and mode", ["status", "mode"], registry=r
        )
        self.rollouts_finished = Counter(
            f"{p}_rollouts_finished",
            "Rollouts that reached a final status since the metrics started, by status and mode",
            ["status", "mode"],
            registry=r,
        )
        self.attempts_finished = Counter(
            f"{p}_attempts_finished",
            "Attempts of finished rollouts, by final attempt status",
            ["status"],
            registry=r,
        )
        self.attempts_active = Gauge(
            f"{p}_attempts_active",
            "Latest attempts of preparing or running rollouts, by status",
            ["status"],
            registry=r,
        )
        self.retries = Counter(
            f"{p}_rollout_retries", "Attempts beyond the first of finished rollouts", registry=r
        )
        self.queue_depth = Gauge(f"{p}_queue_depth", "Rollouts waiting in the queue", registry=r)
        self.spans_stored = Gauge(f"{p}_spans_stored", "Spans the store holds", registry=r)
        self.workers = Gauge(f"{p}_workers", "Known workers by status", ["status"], registry=r)
        self.heartbeat_age = Gauge(
            f"{p}_worker_heartbeat_age_seconds",
            f"Seconds since each worker's last heartbeat (the {MAX_WORKERS} most recent workers)",
            ["worker"],
            registry=r,
        )
        self.reward = Histogram(
            f"{p}_rollout_reward",
            f"Final rewards of finished rollouts by resources id (the {MAX_RESOURCE_VERSIONS} newest ids)",
            ["resources_id"],
            registry=r,
            buckets=REWARD_BUCKETS,
        )
        self.refreshed = Gauge(
            f"{p}_metrics_refresh_seconds", "Time the last scrape took to read the store's state", registry=r
        )
        self._versions: OrderedDict[str, None] = OrderedDict()
        self._workers: set[str] = set()
        self._watermark = self.created
        self._at_watermark: set[str] = set()
        self._refresh_lock = anyio.Lock()

    # --- scrape time ------------------------------------------------------------------------

    async def refresh(self, store: LightningStore) -> None:
        """Read the store's state into the gauges and count rollouts finished since the last refresh."""
        async with self._refresh_lock:
            started = time.perf_counter()
            stats = await store.statistics()
            by_status: dict[str, int] = stats.get("rollouts_by_status", {})
            for status in RolloutStatus:
                self.rollouts.labels(status.value).set(by_status.get(status.value, 0))
            self.spans_stored.set(stats.get("spans", 0))
            await self._active(store, stats)
            await self._finished(store)
            await self._workers_state(store)
            self.refreshed.set(time.perf_counter() - started)

    async def _active(self, store: LightningStore, stats: dict[str, Any]) -> None:
        active = (await store.query_rollouts(status_in=_ACTIVE)).items
        counts: dict[tuple[str, str], int] = {
            (s.value, m): 0 for s in _ACTIVE for m in ("train", "val", "test", "none")
        }
        attempts: dict[str, int] = {}
        for rollout in active:
            key = (str(rollout.status), str(rollout.mode) if rollout.mode is not None else "none")
            counts[key] = counts.get(key, 0) + 1
            if rollout.status in (RolloutStatus.PREPARING, RolloutStatus.RUNNING):
                attempt = await store.get_latest_attempt(rollout.rollout_id)
                if attempt is not None:
                    attempts[str(attempt.status)] = attempts.get(str(attempt.status), 0) + 1
        for (status, mode), n in counts.items():
            self.rollouts_active.labels(status, mode).set(n)
        for status in ("preparing", "running", "unresponsive"):
            self.attempts_active.labels(status).set(attempts.pop(status, 0))
        for status, n in attempts.items():
            self.attempts_active.labels(status).set(n)
        queued = sum(1 for r in active if r.status in (RolloutStatus.QUEUING, RolloutStatus.REQUEUING))
        self.queue_depth.set(stats.get("queue_length", queued))

    async def _finished(self, store: LightningStore) -> None:
        """Count rollouts whose end time passed the watermark (newest first, page by page)."""
        from agentlightning_core.errors import NotFoundError

        offset, newest, newest_ids = 0, self._watermark, set(self._at_watermark)
        while True:
            page = await store.query_rollouts(
                status_in=_FINISHED, sort_by="end_time", sort_order="desc", limit=_PAGE, offset=offset
            )
            older = False
            for rollout in page.items:
                end = rollout.end_time if rollout.end_time is not None else 0.0
                if end < self._watermark or (
                    end == self._watermark and rollout.rollout_id in self._at_watermark
                ):
                    older = True
                    break
                if end > newest:
                    newest, newest_ids = end, {rollout.rollout_id}
                elif end == newest:
                    newest_ids.add(rollout.rollout_id)
                mode = str(rollout.mode) if rollout.mode is not None else "none"
                self.rollouts_finished.labels(str(rollout.status), mode).inc()
                try:
                    attempts = (await store.query_attempts(rollout.rollout_id)).items
                except NotFoundError:  # deleted meanwhile
                    continue
                for attempt in attempts:
                    self.attempts_finished.labels(str(attempt.status)).inc()
                if len(attempts) > 1:
                    self.retries.inc(len(attempts) - 1)
                latest = attempts[-1] if attempts else None
                if latest is not None and latest.reward is not None:
                    self._reward(latest.resources_id or rollout.resources_id or "none", latest.reward)
            if older or len(page.items) < _PAGE:
                break
            offset += _PAGE
        self._watermark, self._at_watermark = newest, newest_ids

    def _reward(self, resources_id: str, reward: float) -> None:
        self._versions[resources_id] = None
        self._versions.move_to_end(resources_id)
        while len(self._versions) > MAX_RESOURCE_VERSIONS:
            old, _ = self._versions.popitem(last=False)
            self.reward.remove(old)
        self.reward.labels(resources_id).observe(reward)

    async def _workers_state(self, store: LightningStore) -> None:
        workers = (await store.query_workers()).items
        counts = {"idle": 0, "busy": 0, "unknown": 0}
        for worker in workers:
            counts[str(worker.status)] = counts.get(str(worker.status), 0) + 1
        for status, n in counts.items():
            self.workers.labels(status).set(n)
        beating = sorted(
            (w for w in workers if w.last_heartbeat_time is not None),
            key=lambda w: cast(float, w.last_heartbeat_time),
            reverse=True,
        )[:MAX_WORKERS]
        now = time.time()
        shown = {w.worker_id for w in beating}
        for gone in self._workers - shown:
            self.heartbeat_age.remove(gone)
        for worker in beating:
            self.heartbeat_age.labels(worker.worker_id).set(
                max(0.0, now - cast(float, worker.last_heartbeat_time))
            )
        self._workers = shown

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)


class _HotPath:
    """Counts of the hot path as plain numbers, exported by ``collect`` when scraped.

    prometheus-client's own Histogram takes a lock per bucket and per sum (about as long as a
    fast store operation); here one observation is a ``bisect`` and two additions. The store's
    operations run on one event loop, so no lock is taken; an operation called from several
    threads at once may, rarely, lose one count.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.bounds = LATENCY_BUCKETS
        self.latency: dict[str, list[float]] = {}  # operation -> [count per bucket ..., +Inf, sum]
        self.errors: dict[tuple[str, str], int] = {}
        self.spans = 0
        self.heartbeats = {"worker": 0, "attempt": 0}

    def series(self, operation: str) -> list[float]:
        return self.latency.setdefault(operation, [0.0] * (len(self.bounds) + 2))

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        p = self.prefix
        yield histogram_family(
            f"{p}_store_operation_seconds",
            "Time the store took for one operation",
            ["operation"],
            {(operation,): values for operation, values in self.latency.items()},
            self.bounds,
        )
        errors = CounterMetricFamily(
            f"{p}_store_operation_errors", "Store operations that raised", labels=["operation", "error"]
        )
        for (operation, error), n in sorted(self.errors.items()):
            errors.add_metric([operation, error], n)
        yield errors
        yield CounterMetricFamily(
            f"{p}_spans_ingested", "Spans newly stored (duplicates not counted)", value=self.spans
        )
        beats = CounterMetricFamily(
            f"{p}_runner_heartbeats",
            "Heartbeats received: worker (update_worker) or attempt (update_attempt without a status)",
            labels=["kind"],
        )
        for kind, n in self.heartbeats.items():
            beats.add_metric([kind], n)
        yield beats


def histogram_family(
    name: str,
    documentation: str,
    labels: Sequence[str],
    series: Mapping[tuple[str, ...], Sequence[float]],
    bounds: Sequence[float] = LATENCY_BUCKETS,
) -> HistogramMetricFamily:
    """A histogram exported from plain numbers counted on a hot path (no lock per observation).

    ``series`` maps label values to ``[count per bucket ..., count above the last bound, sum]``
    (start from ``[0.0] * (len(bounds) + 2)``); a value ``v`` is counted in the bucket
    ``bisect_left(bounds, v)``.
    """
    from prometheus_client.core import HistogramMetricFamily

    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    for values, counts in sorted(series.items()):
        cumulative, buckets = 0.0, []
        for bound, n in zip((*bounds, float("inf")), counts[:-1], strict=True):
            cumulative += n
            buckets.append((_le(bound), cumulative))
        family.add_metric(list(values), buckets, counts[-1])
    return family


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(float(bound))


# --- the instrumented store ------------------------------------------------------------------


class _InstrumentedStore(LightningStore):
    """Delegates every operation to ``inner``, timing it and counting its events.

    The timed methods are generated from :class:`LightningStore` (every public coroutine
    method), so a new store method is instrumented without a change here; anything else
    (a backend's own attributes) is looked up on ``inner``.
    """

    def __init__(
        self, inner: LightningStore, metrics: StoreMetrics, serve: tuple[str, int] | None = None
    ) -> None:
        self.inner = inner
        self.metrics = metrics
        self.serve = serve
        self.server: MetricsServer | None = None
        self._hot = hot = metrics.hot
        self._series = {name: hot.series(name) for name in _OPERATIONS}

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (unpickling, or a failed __init__)
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"instrument_store({self.inner!r})"

    async def start(self) -> None:
        await self.inner.start()
        if self.serve is not None and self.server is None:
            self.server = MetricsServer(self.metrics, self.inner, *self.serve)
            self.server.start()

    async def aclose(self) -> None:
        try:
            if self.server is not None:
                # In a thread: a scrape in flight waits for this loop to refresh the gauges.
                await anyio.to_thread.run_sync(self.server.close)
                self.server = None
        finally:
            await self.inner.aclose()

    def _after(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        hot, kind = self._hot, _SPAN_RESULTS.get(name)
        if kind == "one":
            if result is not None:
                hot.spans += 1
        elif kind == "many":
            hot.spans += len(result)
        elif name == "update_worker":
            hot.heartbeats["worker"] += 1
        elif name == "update_attempt" and "last_heartbeat_time" in kwargs and "status" not in kwargs:
            hot.heartbeats["attempt"] += 1


def _timed(name: str) -> Callable[..., Awaitable[Any]]:
    watched = name in _SPAN_RESULTS or name in ("update_worker", "update_attempt")

    async def method(self: _InstrumentedStore, *args: Any, **kwargs: Any) -> Any:
        start = perf_counter()
        try:
            result = await getattr(self.inner, name)(*args, **kwargs)
        except Exception as exc:
            errors = self._hot.errors
            key = (name, type(exc).__name__)
            errors[key] = errors.get(key, 0) + 1
            raise
        finally:
            elapsed = perf_counter() - start
            series = self._series[name]
            series[bisect_left(LATENCY_BUCKETS, elapsed)] += 1
            series[-1] += elapsed
        if watched:
            self._after(name, args, kwargs, result)
        return result

    method.__name__ = method.__qualname__ = name
    declared = getattr(LightningStore, name)
    method.__doc__ = declared.__doc__
    method.__signature__ = inspect.signature(declared)  # type: ignore[attr-defined]
    return method


_OPERATIONS: tuple[str, ...] = tuple(
    name
    for name, value in inspect.getmembers(LightningStore, inspect.iscoroutinefunction)
    if not name.startswith("_") and name not in ("start", "aclose")
)
for _name in _OPERATIONS:
    setattr(_InstrumentedStore, _name, _timed(_name))
_InstrumentedStore.__abstractmethods__ = frozenset()


def instrument_store(
    store: LightningStore, metrics: StoreMetrics | None = None, *, serve: tuple[str, int] | None = None
) -> LightningStore:
    """``store`` with every operation timed and counted in ``metrics`` (default: new ones).

    ``serve=(host, port)`` also serves ``/metrics`` there while the store is open
    (``port=0`` picks a free one; see ``instrumented_metrics(store).server``). A store already
    instrumented is returned as it is.
    """
    if isinstance(store, _InstrumentedStore):
        return store
    factory = cast(Callable[..., LightningStore], _InstrumentedStore)
    return factory(store, metrics if metrics is not None else StoreMetrics(), serve)


def instrumented_metrics(store: LightningStore) -> tuple[StoreMetrics, LightningStore] | None:
    """``(metrics, inner store)`` of a store made by :func:`instrument_store`; None for any other."""
    if isinstance(store, _InstrumentedStore):
        return store.metrics, store.inner
    return None


def instrumented_server(store: LightningStore) -> MetricsServer | None:
    """The metrics server of an instrumented store opened with ``serve=``, else None."""
    return store.server if isinstance(store, _InstrumentedStore) else None


# --- serving -----------------------------------------------------------------------------------

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class MetricsEndpoint:
    """ASGI handler answering ``GET``/``HEAD`` with ``registry`` in the Prometheus text format.

    ``before(…)``: an awaitable run before each scrape (e.g. ``StoreMetrics.refresh``). Mount it
    in any ASGI app: ``if scope["path"] == "/metrics": await endpoint(scope, receive, send)``.
    """

    def __init__(
        self, registry: CollectorRegistry, before: Callable[[], Awaitable[None]] | None = None
    ) -> None:
        require_prometheus()
        self.registry = registry
        self.before = before

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            body = f"{method} is not allowed on /metrics; use GET".encode()
            await _answer(send, 405, b"text/plain; charset=utf-8", body, [(b"allow", b"GET, HEAD")])
            return
        if self.before is not None:
            await self.before()
        body = generate_latest(self.registry)
        await _answer(send, 200, CONTENT_TYPE_LATEST.encode(), b"" if method == "HEAD" else body, [])


async def _answer(
    send: Send, status: int, content_type: bytes, body: bytes, extra: Sequence[tuple[bytes, bytes]]
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class MetricsServer:
    """``/metrics`` of ``metrics`` on ``host:port`` for a process without an HTTP server of its own.

    prometheus-client's HTTP server answers in a thread; before each scrape it asks the
    event loop that owns ``store`` (the loop :meth:`start` is called from) to refresh.
    """

    def __init__(
        self, metrics: StoreMetrics, store: LightningStore, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.metrics = metrics
        self.store = store
        self.host = host
        self.port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> None:
        """Bind and serve in a thread (call from the store's event loop)."""
        from prometheus_client import start_http_server

        loop = asyncio.get_running_loop()
        metrics, store = self.metrics, self.store

        class _Refresh:
            """Collected first: brings the store's state into the gauges before they are read."""

            def collect(self) -> list[Any]:
                future = asyncio.run_coroutine_threadsafe(metrics.refresh(store), loop)
                try:
                    future.result(timeout=30)
                except Exception:
                    logger.exception("Reading the store's state for /metrics failed")
                return []

        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Refresh())
        registry.register(_Forward(metrics.registry))
        try:
            self._server, self._thread = start_http_server(self.port, self.host, registry=registry)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"Cannot serve metrics on {self.host}:{self.port}: {exc.strerror}. Pick another --metrics-port "
                "(0 for any free one).",
            ) from exc
        self.port = self._server.server_address[1]
        logger.info("Serving metrics on %s", self.url)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _Forward:
    """A collector yielding everything another registry collects."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Any:
        return self.registry.collect()
