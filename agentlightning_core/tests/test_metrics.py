"""Prometheus metrics: ``/metrics`` of the store server and of ``agl train --metrics-port``,
scraped during real runs and parsed with prometheus-client's text parser."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import anyio
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentlightning_core import (
    AttemptedRollout,
    ClientServerExecutionStrategy,
    FastAlgorithm,
    InMemoryLightningStore,
    LightningStore,
    LightningStoreServer,
    PromptTemplate,
    RolloutConfig,
    Trainer,
    rollout,
)
from agentlightning_core import metrics as metrics_module
from agentlightning_core.cli import main
from agentlightning_core.metrics import (
    StoreMetrics,
    instrument_store,
    instrumented_metrics,
    instrumented_server,
)
from agentlightning_core.testing.agents import double_agent
from agentlightning_core.testing.store import StoreConformance, StoreFactory

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a scrape by (name, sorted labels), through the Prometheus text parser."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


def scrape(url: str, token: str | None = None) -> str:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return str(response.read().decode())


class ScrapingAlgorithm(FastAlgorithm):
    """Runs every task once, then scrapes ``url()`` while the run (and its store) is still live.

    With ``workers``, it first waits until that many runners have registered: one fast runner
    can finish every task before a slower process has started.
    """

    def __init__(self, url: Any, token: str | None = None, workers: int = 0) -> None:
        super().__init__()
        self.url = url
        self.token = token
        self.workers = workers
        self.scraped = ""

    async def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> None:
        await super().run(train_dataset, val_dataset)
        with anyio.fail_after(60):
            while (await self.get_store().query_workers()).total < self.workers:
                await anyio.sleep(0.05)
        self.scraped = await anyio.to_thread.run_sync(scrape, self.url(), self.token)


def check_no_ids_as_labels(samples: Samples) -> None:
    for _, labels in samples:
        for key, label in labels:
            assert not label.startswith(("ro-", "at-")), (key, label)


def test_store_server_metrics_during_a_client_server_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runner processes reach the store over HTTP; the algorithm scrapes the same server's /metrics."""
    monkeypatch.setenv("AGL_SERVER_TOKEN", "metrics-token")
    strategy = ClientServerExecutionStrategy()
    algorithm = ScrapingAlgorithm(lambda: f"{strategy.server_url}/metrics", token="metrics-token", workers=2)
    trainer = Trainer(
        algorithm=algorithm,
        strategy=strategy,
        n_runners=2,
        progress=False,
        store={"type": "memory", "watchdog_interval": None},
        runner={"type": "agent", "poll_interval": 0.02},
        initial_resources={"prompt_template": PromptTemplate("p")},
    )
    trainer.fit(double_agent, [1.0, 2.0, 3.0, 4.0], [5.0])
    samples = parse(algorithm.scraped)
    assert value(samples, "agl_rollouts_finished_total", status="succeeded", mode="train") == 4
    assert value(samples, "agl_rollouts_finished_total", status="succeeded", mode="val") == 1
    assert value(samples, "agl_rollouts", status="succeeded") == 5
    assert value(samples, "agl_attempts_finished_total", status="succeeded") == 5
    assert value(samples, "agl_rollout_retries_total") == 0
    assert value(samples, "agl_queue_depth") == 0
    assert total(samples, "agl_rollouts_active") == 0
    # Rewards by resources version: twice each task, all on the one initial snapshot.
    assert total(samples, "agl_rollout_reward_sum") == 2 * (1 + 2 + 3 + 4 + 5)
    assert total(samples, "agl_rollout_reward_count") == 5
    (version,) = {dict(ls)["resources_id"] for n, ls in samples if n == "agl_rollout_reward_count"}
    assert version != "none"
    # The runners' requests went through the server: dequeues, spans, heartbeats, final status.
    assert total(samples, "agl_store_operation_seconds_count", operation="update_attempt") >= 5
    assert total(samples, "agl_store_operation_seconds_count", operation="dequeue_rollout") >= 5
    # The algorithm shares the served store object: its own calls take no HTTP hop and are not timed.
    assert total(samples, "agl_store_operation_seconds_count", operation="enqueue_many_rollouts") == 0
    assert value(samples, "agl_spans_ingested_total") >= 5
    assert value(samples, "agl_runner_heartbeats_total", kind="worker") >= 2
    assert total(samples, "agl_workers") >= 2
    assert len([1 for n, _ in samples if n == "agl_worker_heartbeat_age_seconds"]) >= 2
    buckets = [
        v
        for (n, ls), v in samples.items()
        if n == "agl_store_operation_seconds_bucket" and ("operation", "update_attempt") in ls
    ]
    assert buckets == sorted(buckets) and buckets[-1] == total(
        samples, "agl_store_operation_seconds_count", operation="update_attempt"
    )
    check_no_ids_as_labels(samples)


_FAILED_ONCE: set[Any] = set()


@rollout
async def fail_first_attempt(task: int, rollout: AttemptedRollout) -> float:
    """Raises on the first attempt of each task; rewards the task on the second."""
    if rollout.attempt.sequence_id == 1:
        raise RuntimeError(f"first attempt of task {task} fails")
    return float(task)


def test_agl_train_style_metrics_of_a_shared_memory_run() -> None:
    """The instrumented store serves /metrics from a thread while the shm run goes on."""
    store = instrument_store(InMemoryLightningStore(watchdog_interval=None), serve=("127.0.0.1", 0))

    def url() -> str:
        server = instrumented_server(store)
        assert server is not None
        return server.url

    algorithm = ScrapingAlgorithm(url)
    trainer = Trainer(
        algorithm=algorithm,
        store=store,
        n_runners=2,
        progress=False,
        runner={"type": "agent", "poll_interval": 0.02},
        rollout_config=RolloutConfig(max_attempts=2, retry_condition=["failed"]),
    )
    trainer.fit(fail_first_attempt, [1, 2, 3])
    samples = parse(algorithm.scraped)
    assert value(samples, "agl_rollouts_finished_total", status="succeeded", mode="train") == 3
    assert value(samples, "agl_attempts_finished_total", status="failed") == 3
    assert value(samples, "agl_attempts_finished_total", status="succeeded") == 3
    assert value(samples, "agl_rollout_retries_total") == 3
    assert value(samples, "agl_rollout_reward_sum", resources_id="none") == 6
    assert total(samples, "agl_store_operation_seconds_count", operation="dequeue_rollout") >= 6
    assert instrumented_server(store) is None  # closed with the store
    check_no_ids_as_labels(samples)


def test_agl_train_metrics_port(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    module = tmp_path / "metrics_cfg_agent.py"
    module.write_text(
        "from agentlightning_core import rollout\n\n@rollout\ndef agent(task):\n    return 1.0\n"
    )
    config = tmp_path / "run.toml"
    config.write_text(
        'agent = "metrics_cfg_agent:agent"\ntrain_dataset = [1, 2]\ncommand = "dev"\n[trainer]\nprogress = false\n'
    )
    caplog.set_level("INFO", logger="agentlightning_core.metrics")
    assert main(["train", str(config), "--metrics-port", "0"]) == 0
    assert "Serving metrics on http://127.0.0.1:" in caplog.text
    assert main(["train", str(config), "--dry-run", "--metrics-port", "9464"]) == 0
    assert '"metrics_port": 9464' in capsys.readouterr().out


@pytest.mark.anyio
async def test_token_methods_and_metrics_off() -> None:
    store = InMemoryLightningStore(watchdog_interval=None)
    async with store, LightningStoreServer(store, port=0, token="tok") as server:
        url = f"{server.url}/metrics"
        with pytest.raises(urllib.error.HTTPError) as denied:
            await anyio.to_thread.run_sync(scrape, url)
        assert denied.value.code == 401
        text = await anyio.to_thread.run_sync(scrape, url, "tok")
        assert value(parse(text), "agl_rollouts", status="queuing") == 0
        request = urllib.request.Request(
            url, method="POST", data=b"", headers={"Authorization": "Bearer tok"}
        )
        with pytest.raises(urllib.error.HTTPError) as post:
            await anyio.to_thread.run_sync(urllib.request.urlopen, request)
        assert post.value.code == 405
    async with store, LightningStoreServer(store, port=0, metrics=False) as server:
        with pytest.raises(urllib.error.HTTPError) as off:
            await anyio.to_thread.run_sync(scrape, f"{server.url}/metrics")
        assert off.value.code == 404 and b"metrics off" in off.value.read()


@pytest.mark.anyio
async def test_errors_spans_heartbeats_and_bounded_labels(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "MAX_RESOURCE_VERSIONS", 2)
    monkeypatch.setattr(metrics_module, "MAX_WORKERS", 2)
    store = instrument_store(InMemoryLightningStore(watchdog_interval=None))
    found = instrumented_metrics(store)
    assert found is not None
    metrics, inner = found
    async with store:
        with pytest.raises(KeyError):
            await store.get_rollout_by_id("ro-missing")
        for version in range(4):
            resources = await store.add_resources({"p": PromptTemplate(f"v{version}")})
            rollout_ = await store.enqueue_rollout(version, resources_id=resources.resources_id)
            attempted = await store.dequeue_rollout(f"w{version}")
            assert attempted is not None and attempted.rollout_id == rollout_.rollout_id
            await store.update_worker(f"w{version}")
            await store.update_attempt(attempted.rollout_id, attempted.attempt_id, last_heartbeat_time=1.0)
            await store.update_attempt(
                attempted.rollout_id, attempted.attempt_id, status="succeeded", reward=version / 4
            )
            await metrics.refresh(inner)
        samples = parse(metrics.render().decode())
    assert (
        value(
            samples,
            "agl_store_operation_errors_total",
            operation="get_rollout_by_id",
            error="RolloutNotFoundError",
        )
        == 1
    )
    assert value(samples, "agl_runner_heartbeats_total", kind="worker") == 4
    assert value(samples, "agl_runner_heartbeats_total", kind="attempt") == 1 * 4
    versions = {dict(ls)["resources_id"] for n, ls in samples if n == "agl_rollout_reward_count"}
    assert len(versions) == 2  # the two newest only
    assert len([1 for n, _ in samples if n == "agl_worker_heartbeat_age_seconds"]) == 2
    assert value(samples, "agl_rollouts_finished_total", status="succeeded", mode="none") == 4
    check_no_ids_as_labels(samples)


@pytest.mark.anyio
async def test_rollouts_finished_before_the_metrics_are_not_counted() -> None:
    store = InMemoryLightningStore(watchdog_interval=None)
    async with store:
        await store.enqueue_rollout(1, mode="train")
        attempted = await store.dequeue_rollout("w")
        assert attempted is not None
        await store.update_attempt(attempted.rollout_id, attempted.attempt_id, status="succeeded")
        await store.enqueue_rollout(2, mode="val")
        metrics = StoreMetrics()
        await metrics.refresh(store)
        samples = parse(metrics.render().decode())
    assert total(samples, "agl_rollouts_finished_total") == 0
    assert value(samples, "agl_rollouts", status="succeeded") == 1
    assert value(samples, "agl_rollouts_active", status="queuing", mode="val") == 1
    assert value(samples, "agl_queue_depth") == 1


def test_instrumenting_twice_keeps_one_wrapper() -> None:
    store = instrument_store(InMemoryLightningStore())
    assert instrument_store(store) is store
    assert isinstance(store, LightningStore)
    assert store.span_budget_bytes == store.inner.span_budget_bytes  # type: ignore[attr-defined]


class TestInstrumentedStore(StoreConformance):
    """The instrumented store is still a store: the whole conformance suite, through the wrapper."""

    @pytest.fixture
    def store_factory(self) -> StoreFactory:
        return lambda **options: instrument_store(InMemoryLightningStore(**options))
