"""``GET /metrics``: real calls through the proxy, scraped over HTTP and parsed as Prometheus text."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentlightning_core import AttemptedRollout, InMemoryLightningStore
from agentlightning_core.testing.openai_server import OpenAIServer, Reply
from agentlightning_proxy import LLMProxy, Upstream, load_config
from agentlightning_proxy.cli import add_commands

pytestmark = pytest.mark.anyio

ASK = [{"role": "user", "content": "hi"}]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def get(proxy: LLMProxy, path: str, token: str | None = None) -> tuple[int, str]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(proxy.url + path, headers=headers) as response:
        return response.status, await response.text()


async def scrape(proxy: LLMProxy, token: str | None = None) -> Samples:
    status, text = await get(proxy, "/metrics", token)
    assert status == 200, text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_calls_retries_errors_drift_and_latency_are_counted(
    store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    replies = [
        Reply(status=503),  # retried, then
        Reply(content="a", prompt_token_ids=[1, 2, 3], token_ids=[4, 5]),
        Reply(content="b", prompt_token_ids=[1, 2, 9], token_ids=[7]),  # drifted: does not extend 1..5
        "unattributed",
        Reply(status=400, error="context length exceeded"),
        "a response",
    ]
    with OpenAIServer(replies) as server:
        upstream = Upstream("scripted", server.base_url, ["m"])
        async with LLMProxy(upstream, store, capture_tokens=True, backoff_seconds=0.01) as proxy:
            base = proxy.base_url_for(attempt.rollout_id, attempt.attempt.attempt_id)
            async with openai.AsyncOpenAI(base_url=base, api_key="k", max_retries=0) as client:
                await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
                stream = await client.chat.completions.create(model="m", messages=ASK, stream=True)  # type: ignore[arg-type]
                assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "b"
                async with openai.AsyncOpenAI(base_url=proxy.base_url, api_key="k", max_retries=0) as plain:
                    await plain.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
                with pytest.raises(openai.NotFoundError):
                    await client.chat.completions.create(model="nope", messages=ASK)  # type: ignore[arg-type]
                with pytest.raises(openai.BadRequestError, match="context length"):
                    await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]
                answer = await client.responses.create(model="m", input="hi")
                assert answer.output_text == "a response"
            async with (
                aiohttp.ClientSession() as session,
                session.post(base + "/chat/completions", data=b"{not json") as response,
            ):
                assert response.status == 400
            samples = await scrape(proxy)
            again = await scrape(proxy)

    calls = "agl_proxy_calls_total"
    chat = "chat.completions"
    assert value(samples, calls, surface=chat, upstream="scripted", status="200") == 3
    assert value(samples, calls, surface=chat, upstream="scripted", status="400") == 1
    assert value(samples, calls, surface=chat, upstream="none", status="404") == 1  # unknown model
    assert value(samples, calls, surface=chat, upstream="none", status="400") == 1  # bad JSON
    assert value(samples, calls, surface="responses", upstream="scripted", status="200") == 1
    assert sum(v for (name, _), v in samples.items() if name == calls) == 7
    assert value(samples, "agl_proxy_retries_total", upstream="scripted") == 1
    assert value(samples, "agl_proxy_unattributed_calls_total") == 1
    assert value(samples, "agl_proxy_token_drift_total") == 1
    assert value(samples, "agl_proxy_spans_recorded_total") == 6
    assert value(samples, "agl_proxy_upstream_errors_total") == 1
    assert value(samples, "agl_proxy_client_errors_total") == 2
    assert value(samples, "agl_proxy_inflight_calls") == 0 and value(samples, "agl_proxy_paused") == 0
    assert value(samples, "agl_proxy_call_seconds_count", surface=chat) == 6
    assert value(samples, "agl_proxy_call_seconds_count", surface="responses") == 1
    upstream_count = value(samples, "agl_proxy_upstream_seconds_count", surface=chat, upstream="scripted")
    assert upstream_count == 4  # the calls an upstream answered (not the 404 or the bad JSON)
    le_inf = value(samples, "agl_proxy_upstream_seconds_bucket", surface=chat, upstream="scripted", le="+Inf")
    assert (
        le_inf == 4
        and value(samples, "agl_proxy_upstream_seconds_sum", surface=chat, upstream="scripted") > 0
    )
    assert samples == again  # scraping is not a call
    labels = {label for name, pairs in samples for label, _ in pairs}
    assert labels <= {"surface", "upstream", "status", "le"}  # bounded: no rollout or attempt ids


async def test_inflight_calls_and_the_paused_state_are_gauges(
    store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    arrived, release = threading.Event(), threading.Event()

    def slow(body: dict[str, Any]) -> str:
        arrived.set()
        release.wait(30)
        return "slow"

    with OpenAIServer(slow) as server:
        async with LLMProxy(Upstream("s", server.base_url), store) as proxy:
            base = proxy.base_url_for(attempt.rollout_id, attempt.attempt.attempt_id)

            async def call() -> None:
                async with openai.AsyncOpenAI(base_url=base, api_key="k", max_retries=0) as client:
                    await client.chat.completions.create(model="m", messages=ASK)  # type: ignore[arg-type]

            async with anyio.create_task_group() as tg:
                tg.start_soon(call)
                await anyio.to_thread.run_sync(arrived.wait, 30)
                held = await scrape(proxy)
                tg.start_soon(proxy.pause)
                with anyio.fail_after(10):
                    while not proxy.paused:
                        await anyio.sleep(0.005)
                paused = await scrape(proxy)  # /metrics answers while paused
                release.set()
            proxy.resume()
            done = await scrape(proxy)
    assert value(held, "agl_proxy_inflight_calls") == 1 and value(held, "agl_proxy_paused") == 0
    assert value(paused, "agl_proxy_inflight_calls") == 1 and value(paused, "agl_proxy_paused") == 1
    assert value(done, "agl_proxy_inflight_calls") == 0 and value(done, "agl_proxy_paused") == 0
    assert value(done, "agl_proxy_calls_total", surface="chat.completions", upstream="s", status="200") == 1


async def test_metrics_need_the_token_and_can_be_turned_off(server: OpenAIServer) -> None:
    async with LLMProxy(Upstream("s", server.base_url), token="secret") as proxy:
        status, text = await get(proxy, "/metrics")
        assert status == 401 and "token" in text
        assert (await get(proxy, "/health"))[0] == 200
        samples = await scrape(proxy, "secret")
        assert value(samples, "agl_proxy_paused") == 0
        with pytest.raises(ValueError, match="already has a route GET /metrics"):
            proxy.add_route("GET", "/metrics", proxy.app)
    async with LLMProxy(Upstream("s", server.base_url), metrics=False) as proxy:
        status, text = await get(proxy, "/metrics")
        assert status == 404 and "No route GET /metrics" in text


def test_the_metrics_setting_of_the_config_file_and_the_command_line(tmp_path: Path) -> None:
    upstream = '[upstreams.a]\nbase_url = "http://127.0.0.1:8000/v1"\n'
    assert load_config(_write(tmp_path, "on.toml", upstream), {}).metrics is True
    assert load_config(_write(tmp_path, "off.toml", "metrics = false\n" + upstream), {}).metrics is False
    with pytest.raises(ValueError, match="metrics must be true or false, got 'no'"):
        load_config(_write(tmp_path, "bad.toml", 'metrics = "no"\n' + upstream), {})
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    assert parser.parse_args(["proxy", "serve", "--config", "p.toml"]).metrics is True
    assert parser.parse_args(["proxy", "serve", "--config", "p.toml", "--no-metrics"]).metrics is False


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path
