"""End to end: spans forwarded over OTLP reach a real MLflow tracking server (``mlflow server``
on 127.0.0.1, OTLP at ``/v1/traces``) and are read back through MLflow's own client."""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import anyio
import openai
import pytest

from agentlightning_core import semconv
from agentlightning_core.emitter.reward import emit_reward
from agentlightning_core.remote.client import LightningStoreClient
from agentlightning_core.remote.server import LightningStoreServer
from agentlightning_core.spans import Span
from agentlightning_core.store.memory import InMemoryLightningStore
from agentlightning_core.testing.openai_server import OpenAIServer, Reply
from agentlightning_core.tracer.otel import OtelTracer

pytestmark = [pytest.mark.slow, pytest.mark.anyio]

READY = "Uvicorn running on"


def _die_with_parent() -> None:
    """In the child: SIGTERM it when the test process dies, even killed (Linux ``prctl``)."""
    if sys.platform == "linux":
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``mlflow server`` (SQLite backend) on a free port of 127.0.0.1."""
    root = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",  # nothing leaves 127.0.0.1
        "DO_NOT_TRACK": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", "1", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    cmd += ["--default-artifact-root", str(root / "artifacts")]
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=_die_with_parent,
    )
    ready = threading.Event()
    output: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if READY in line:
                ready.set()
        ready.set()  # the server exited

    threading.Thread(target=read, daemon=True).start()
    try:
        ready.wait(600)  # several minutes when the machine is busy
        if proc.poll() is not None or not any(READY in line for line in output):
            pytest.fail(f"mlflow server did not start: {''.join(output[-30:])}")
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def mlflow_spans(url: str, experiment_id: str) -> dict[str, Any]:
    """MLflow's spans of the experiment's traces, by name."""
    import mlflow  # a test dependency (requirements-dev.txt); heavy, so imported when used

    client = mlflow.MlflowClient(url)
    traces = client.search_traces(locations=[experiment_id])
    return {s.name: s for trace in traces for s in trace.data.spans}


def new_experiment(url: str, name: str) -> str:
    import mlflow

    return str(mlflow.MlflowClient(url).create_experiment(name))


async def test_a_traced_llm_call_and_its_reward_appear_in_mlflow(mlflow_url: str) -> None:
    experiment = await anyio.to_thread.run_sync(new_experiment, mlflow_url, "agl-tracer")
    otlp = {"endpoint": f"{mlflow_url}/v1/traces", "headers": {"x-mlflow-experiment-id": experiment}}
    tracer = OtelTracer(otlp={**otlp, "metrics": False})  # MLflow takes traces only
    tracer.init()
    store = InMemoryLightningStore()
    try:
        async with store:
            ar = await store.start_rollout("What is 2+2?")
            with OpenAIServer([Reply(content="4", prompt_tokens=5, completion_tokens=1)]) as server:
                client = openai.AsyncOpenAI(base_url=server.base_url, api_key="k", max_retries=0)
                async with tracer.trace_context(
                    "agent", store=store, rollout_id=ar.rollout_id, attempt_id=ar.attempt_id
                ):
                    await client.chat.completions.create(
                        model="small", messages=[{"role": "user", "content": "What is 2+2?"}]
                    )
                    emit_reward(1.0)
                await client.close()
            assert tracer.otlp is not None
            assert await anyio.to_thread.run_sync(tracer.otlp.flush, 120.0)
            assert tracer.otlp.stats.spans_failed == 0
    finally:
        tracer.teardown()
    spans = await anyio.to_thread.run_sync(mlflow_spans, mlflow_url, experiment)
    assert set(spans) == {"agent", "chat small", semconv.REWARD_SPAN}
    for s in spans.values():
        assert s.attributes[semconv.ROLLOUT_ID] == ar.rollout_id
        assert s.attributes[semconv.ATTEMPT_ID] == ar.attempt_id
    root = spans["agent"]
    assert root.parent_id is None and root.attributes[semconv.REWARD_VALUE] == 1.0
    assert spans[semconv.REWARD_SPAN].attributes[semconv.REWARD_VALUE] == 1.0
    assert spans["chat small"].attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS] == 5
    assert spans["chat small"].parent_id == root.span_id


async def test_spans_sent_to_the_store_server_are_forwarded_to_mlflow(mlflow_url: str) -> None:
    experiment = await anyio.to_thread.run_sync(new_experiment, mlflow_url, "agl-server")
    otlp = {"endpoint": mlflow_url, "headers": {"x-mlflow-experiment-id": experiment}, "metrics": False}
    store = InMemoryLightningStore()
    async with store, LightningStoreServer(store, port=0, otlp=otlp) as server:
        async with LightningStoreClient(server.url) as client:
            ar = await client.start_rollout("task")
            common: dict[str, Any] = {
                "rollout_id": ar.rollout_id,
                "attempt_id": ar.attempt_id,
                "sequence_id": 0,
                "trace_id": "cd" * 16,
                "start_time": 1.7e9,
                "end_time": 1.7e9 + 1,
            }
            await client.add_many_spans(
                [
                    Span(
                        span_id="1" * 16,
                        parent_id="2" * 16,
                        name=semconv.REWARD_SPAN,
                        attributes={semconv.REWARD_VALUE: 0.5},
                        **common,
                    ),
                    Span(span_id="2" * 16, parent_id=None, name="runner-root", **common),
                ]
            )
        assert server.otlp is not None
        assert await anyio.to_thread.run_sync(server.otlp.flush, 120.0)
        assert server.otlp.stats.spans_exported == 2
    spans = await anyio.to_thread.run_sync(mlflow_spans, mlflow_url, experiment)
    assert set(spans) == {"runner-root", semconv.REWARD_SPAN}
    assert spans["runner-root"].attributes[semconv.REWARD_VALUE] == 0.5
    assert spans["runner-root"].attributes[semconv.ROLLOUT_ID] == ar.rollout_id
