"""The dashboard over HTTP (real servers on 127.0.0.1, the in-memory store): its filters and
paging, its reward index, the token rule, read-only answers, bad input, its mount in the store
server, and ``agl dashboard``. The pages in a browser: tests/test_dashboard_browser.py."""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import anyio
import pytest

from agentlightning_core import LLM, InMemoryLightningStore, PromptTemplate
from agentlightning_core.dashboard import DashboardApp, DashboardServer
from agentlightning_core.dashboard._charts import bar_chart, line_chart
from agentlightning_core.dashboard._index import RewardIndex, RewardPoint, RolloutFilter
from agentlightning_core.remote.client import LightningStoreClient
from agentlightning_core.remote.server import LightningStoreServer
from agentlightning_core.store.base import EnqueueRequest, LightningStore
from agentlightning_core.testing.store import make_span

pytestmark = pytest.mark.anyio


async def finish(
    store: LightningStore, n: int, *, mode: str = "train", step: int | None = None, reward: Any = None
) -> list[str]:
    """Enqueue ``n`` rollouts and finish each with reward ``reward(i)`` (or ``i / n``)."""
    metadata = {"step": step} if step is not None else {}
    rollouts = await store.enqueue_many_rollouts(
        [EnqueueRequest(input={"i": i}, mode=mode, metadata=metadata) for i in range(n)]  # type: ignore[arg-type]
    )
    for i in range(n):
        attempted = await store.dequeue_rollout(worker_id="w1")
        assert attempted is not None
        value = reward(i) if reward is not None else i / n
        await store.update_attempt(
            attempted.rollout.rollout_id, attempted.attempt.attempt_id, status="succeeded", reward=value
        )
    return [r.rollout_id for r in rollouts]


@pytest.fixture
async def store() -> AsyncIterator[InMemoryLightningStore]:
    async with InMemoryLightningStore() as store:
        yield store


async def get(url: str, **kwargs: Any) -> tuple[int, str, aiohttp.ClientResponse]:
    async with aiohttp.ClientSession() as http, http.get(url, allow_redirects=False, **kwargs) as resp:
        return resp.status, html.unescape(await resp.text()), resp


def count(page: str) -> int:
    found = re.search(r'id="count">(\d+) rollout', page)
    assert found, page
    return int(found.group(1))


async def test_filters_and_pages_agree_with_the_store(store: InMemoryLightningStore) -> None:
    first = await store.add_resources({"prompt_template": PromptTemplate("a {x}")})
    await finish(store, 60, mode="train", step=0)
    await finish(store, 60, mode="val", step=1, reward=lambda i: 1.0 if i % 2 else 0.0)
    version = await store.add_resources({"prompt_template": PromptTemplate("b {x}")})
    await store.enqueue_rollout({"queued": True}, mode="train", resources_id=version.resources_id)
    async with DashboardServer(store, port=0) as server:
        base = server.url + "/dashboard/rollouts"
        status, page, _ = await get(base)
        assert status == 200 and count(page) == 121 and "page 1 of 3" in page and 'id="next"' in page
        status, page, _ = await get(base + "?page=3")
        assert page.count("/dashboard/rollouts/ro-") == 21 and 'id="next"' not in page
        assert count((await get(base + "?status=succeeded"))[1]) == 120
        assert count((await get(base + "?status=queuing"))[1]) == 1
        assert count((await get(base + "?mode=val"))[1]) == 60
        assert count((await get(base + "?mode=train"))[1]) == 61  # the queued one too
        assert count((await get(base + "?step=0"))[1]) == 60
        assert count((await get(base + "?mode=val&reward_min=0.5"))[1]) == 30
        assert count((await get(base + "?reward_min=0.1&reward_max=0.2&mode=train"))[1]) == 7  # 6/60..12/60
        assert count((await get(base + f"?resources_id={version.resources_id}"))[1]) == 1
        assert count((await get(base + f"?resources_id={first.resources_id}&status=succeeded"))[1]) == 120
        assert count((await get(base + "?mode=test"))[1]) == 0


async def test_bad_input_is_a_400_page_naming_the_value(store: InMemoryLightningStore) -> None:
    async with DashboardServer(store, port=0) as server:
        for query, words in [
            ("reward_min=high", "reward_min='high' is not a number"),
            ("step=1.5", "step='1.5' is not an integer"),
            ("page=0", "page=0 is not a page number"),
            ("status=done", "status='done' is not one of: queuing"),
            ("reward_max=nan", "is not a finite number"),
        ]:
            status, page, _ = await get(f"{server.url}/dashboard/rollouts?{query}")
            assert status == 400 and words in page, (query, page)
        status, page, _ = await get(server.url + "/dashboard/rollouts/ro-missing")
        assert status == 404 and "ro-missing" in page
        status, page, _ = await get(server.url + "/dashboard/nowhere")
        assert status == 404 and "start at /dashboard/" in page
        (rid,) = await finish(store, 1)
        status, page, _ = await get(f"{server.url}/dashboard/rollouts/{rid}?attempt=at-x")
        assert status == 404 and "has no attempt 'at-x'" in page


async def test_read_only_and_the_token_rule(store: InMemoryLightningStore) -> None:
    async with DashboardServer(store, port=0, token="s3cret") as server, aiohttp.ClientSession() as http:
        async with http.post(
            server.url + "/dashboard/rollouts", headers={"Authorization": "Bearer s3cret"}
        ) as r:
            assert r.status == 405 and "read-only" in await r.text()
        status, page, _ = await get(server.url + "/dashboard/workers")
        assert status == 401 and "needs the server's token" in page
        status, _, _ = await get(
            server.url + "/dashboard/workers", headers={"Authorization": "Bearer s3cret"}
        )
        assert status == 200
        status, _, resp = await get(server.url + "/dashboard/workers?token=s3cret&x=1")
        assert status == 303 and resp.headers["location"] == "/dashboard/workers?x=1"
        cookie = resp.headers["set-cookie"]
        assert cookie.startswith("agl_token=s3cret;") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
        status, _, _ = await get(server.url + "/dashboard/workers", headers={"Cookie": "agl_token=s3cret"})
        assert status == 200
        status, page, _ = await get(server.url + "/dashboard/workers", headers={"Cookie": "agl_token=nope"})
        assert status == 401 and "not the server" in page
        # the dashboard server has no store API: nothing can change the store through it
        async with http.post(server.url + "/v1/store/enqueue_rollout", json={"input": 1}) as r:
            assert r.status == 405


async def test_the_store_server_mounts_it_under_the_same_token(store: InMemoryLightningStore) -> None:
    async with LightningStoreServer(store, port=0, token="t", pages=DashboardApp) as server:
        assert (await get(server.url + "/"))[0] == 401
        status, page, _ = await get(server.url + "/", headers={"Authorization": "Bearer t"})
        assert status == 200 and "Reward per algorithm step" in page
        assert (await get(server.url + "/health"))[0] == 200
        async with LightningStoreClient(server.url, token="t") as client:
            await client.enqueue_rollout({"task": 1})
        status, page, _ = await get(server.url + "/dashboard/rollouts", headers={"Authorization": "Bearer t"})
        assert count(page) == 1
    async with LightningStoreServer(store, port=0) as server:  # no pages: / is not a route
        status, page, _ = await get(server.url + "/")
        assert status == 404 and "RouteNotFound" in page


async def test_rollout_page_shows_spans_messages_reward_and_resources_hide_api_keys(
    store: InMemoryLightningStore,
) -> None:
    seed = await store.add_resources(
        {
            "prompt_template": PromptTemplate("Say {x}."),
            "llm": LLM(endpoint="http://x/v1", model="m", api_key="sk-hidden"),
        }
    )
    better = await store.add_resources(
        {"prompt_template": PromptTemplate("Say {x} politely."), "llm": seed.resources["llm"]}
    )
    (rid,) = await finish(store, 1, reward=lambda i: 0.5)
    attempt = await store.get_latest_attempt(rid)
    assert attempt is not None
    await store.add_many_spans([make_span(rid, attempt.attempt_id, i, name=f"step-{i}") for i in range(3)])
    async with DashboardServer(store, port=0) as server:
        status, page, _ = await get(f"{server.url}/dashboard/rollouts/{rid}")
        assert status == 200 and 'id="reward">0.5<' in page
        assert all(f"step-{i}" in page for i in range(3)) and "<svg" in page
        status, page, _ = await get(f"{server.url}/dashboard/resources/{better.resources_id}")
        assert status == 200 and "sk-hidden" not in page and "***" in page
        assert (
            '<div class="add">+Say {x} politely.</div>' in page and '<div class="del">-Say {x}.</div>' in page
        )
        status, page, _ = await get(f"{server.url}/dashboard/resources/{seed.resources_id}")
        assert "nothing to compare with" in page
        status, page, _ = await get(
            f"{server.url}/dashboard/resources/{seed.resources_id}?diff={better.resources_id}"
        )
        assert '<div class="del">-Say {x} politely.</div>' in page


async def test_reward_index_catches_up_and_rebuilds_after_a_requeue(store: InMemoryLightningStore) -> None:
    index = RewardIndex(store, min_refresh_seconds=0)
    await finish(store, 5, step=0, reward=lambda i: 0.0)
    assert [(p.key, p.count, p.mean) for p in (await index.reward_by_step())["train"]] == [(0, 5, 0.0)]
    ids = await finish(store, 3, step=1, reward=lambda i: 1.0)
    assert [(p.key, p.mean) for p in (await index.reward_by_step())["train"]] == [(0, 0.0), (1, 1.0)]
    # a finished rollout run again: it leaves the index until it finishes again, with its new reward
    await store.update_rollout(ids[0], status="requeuing")
    rows, total = await index.rollouts(RolloutFilter(step=1), limit=10, offset=0)
    assert total == 3 and [r.status for r in rows if r.rollout_id == ids[0]] == ["requeuing"]
    attempted = await store.dequeue_rollout()
    assert attempted is not None and attempted.rollout.rollout_id == ids[0]
    await store.update_attempt(ids[0], attempted.attempt.attempt_id, status="succeeded", reward=0.5)
    await index.refresh(force=True)
    row = index.get(ids[0])
    assert row is not None and row.reward == 0.5
    (step1,) = [p for p in (await index.reward_by_step())["train"] if p.key == 1]
    assert step1.count == 3 and step1.mean == pytest.approx(2.5 / 3)


async def test_a_large_store_is_read_over_several_refreshes(store: InMemoryLightningStore) -> None:
    await finish(store, 30, step=0, reward=lambda i: 1.0)
    index = RewardIndex(store, min_refresh_seconds=3600, budget_seconds=0.0)
    await index.refresh()  # no time at all: reads nothing, but learns how much there is
    assert (index.read, index.finished_total, index.complete) == (0, 30, False)
    index.budget_seconds = None
    await index.refresh()  # not complete: min_refresh_seconds does not hold it back
    assert (index.read, index.complete) == (30, True)
    assert (await index.reward_by_step())["train"][0].count == 30


async def test_without_jinja2_the_page_says_what_to_install(
    store: InMemoryLightningStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)  # as if not installed
    async with DashboardServer(store, port=0) as server:
        status, page, _ = await get(server.url + "/")
    assert status == 503 and "pip install 'agentlightning-core[jinja]'" in page


def test_filter_matching_and_charts() -> None:
    assert RolloutFilter().store_only and RolloutFilter(status="failed").store_only
    assert not RolloutFilter(reward_min=0.0).store_only
    assert line_chart({}) == "" and bar_chart([], []) == ""
    points = [RewardPoint.of(s, []) for s in range(2)]
    assert line_chart({"train": points}) == ""  # no rewards yet: no chart, the page says so
    chart = line_chart(
        {"train": [RewardPoint(0, 4, 4, 0.25, 0.0, 1.0), RewardPoint(1, 4, 4, 0.75, 0.5, 1.0)]}
    )
    assert 'data-points="2"' in chart and chart.count("<circle") == 2
    bars = bar_chart([RewardPoint("rs-1", 2, 2, -0.5, -1.0, 0.0)], ["rs-1"])
    assert 'data-points="1"' in bars and '<rect class="point"' in bars


async def test_agl_dashboard_serves_until_sigterm() -> None:
    process = await anyio.open_process(
        [sys.executable, "-m", "agentlightning_core.cli", "dashboard", "--store", "memory", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "AGL_SERVER_TOKEN": "from-env"},
    )
    try:
        assert process.stdout is not None
        buffer = b""
        with anyio.fail_after(20):
            while b"\n" not in buffer:
                buffer += await process.stdout.receive()
        found = re.search(r"http://127\.0\.0\.1:\d+", buffer.decode())
        assert found and "/dashboard/" in buffer.decode(), buffer
        assert (await get(found.group(0) + "/"))[0] == 401  # the token of $AGL_SERVER_TOKEN applies
        status, page, _ = await get(found.group(0) + "/", headers={"Authorization": "Bearer from-env"})
        assert status == 200 and "Agent Lightning" in page
    finally:
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            code = await process.wait()
        assert process.stderr is not None
        errors = b"" if code == 0 else await process.stderr.receive()
        assert code == 0, errors


async def test_agl_dashboard_names_a_bad_store() -> None:
    done = await anyio.run_process(
        [sys.executable, "-m", "agentlightning_core.cli", "dashboard", "--store", "nosuchstore"], check=False
    )
    assert done.returncode == 1 and b"Unknown store 'nosuchstore'" in done.stderr
