"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven by Playwright),
against a SQLite store filled by a real APO run: every page, its filters, its charts (their
screenshots must show drawn pixels), the token rule, and the run page updating live.

Playwright never downloads a browser here: it launches ``/usr/bin/chromium``
(``scripts/setup.sh`` installs it). Without it these tests fail with a message saying so.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import openai
import pytest

from agentlightning_apo import APO
from agentlightning_core import LLM, PromptTemplate, Trainer, rollout
from agentlightning_core.store.base import EnqueueRequest
from agentlightning_core.testing.openai_server import OpenAIServer, Reply
from agentlightning_sqlite import SqliteLightningStore

CHROMIUM = os.environ.get("AGL_CHROMIUM", "/usr/bin/chromium")
LAUNCH_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "dash-token"
SEED_PROMPT = "Answer the question {question}."
GOOD_PROMPT = "Answer the question {question}. MAGIC: always say yes."


@rollout
def yes_agent(task: dict[str, str], llm: LLM, prompt_template: PromptTemplate) -> float:
    client = openai.OpenAI(base_url=llm.get_base_url(), api_key="test", max_retries=0)
    reply = client.chat.completions.create(
        model=llm.model,
        messages=[
            {"role": "system", "content": prompt_template.format(question=task["question"])},
            {"role": "user", "content": task["question"]},
        ],
    )
    return 1.0 if reply.choices[0].message.content == "yes" else 0.0


def scripted(body: dict[str, Any]) -> Reply | str:
    """The agent hears "yes" only under a prompt holding MAGIC; the optimizer proposes it."""
    messages = body["messages"]
    if len(messages) == 1:  # APO's optimizer call: one user message
        return Reply(content=f"<prompt>{GOOD_PROMPT}</prompt>", prompt_tokens=50, completion_tokens=10)
    return "yes" if "MAGIC" in messages[0]["content"] else "no"


def tasks(split: str, n: int) -> list[dict[str, str]]:
    return [{"question": f"{split}-{i}"} for i in range(n)]


@pytest.fixture(scope="module")
def run_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store after a real APO run (2 rounds) of an agent on the real openai client."""
    path = tmp_path_factory.mktemp("dash") / "run.db"
    with OpenAIServer(scripted) as server:
        llm = LLM(endpoint=server.base_url, model="scripted")
        apo = APO(
            beam_width=1,
            branch_factor=1,
            beam_rounds=2,
            gradient_batch_size=2,
            val_batch_size=3,
            output_dir=path.parent / "out",
        )
        trainer = Trainer(
            algorithm=apo,
            adapter="messages",
            store={"type": "sqlite", "path": str(path)},
            n_runners=2,
            progress=False,
            initial_resources={"llm": llm, "prompt_template": PromptTemplate(SEED_PROMPT)},
        )
        trainer.fit(yes_agent, tasks("train", 4), tasks("val", 3))
    assert apo.get_best_prompt().template == GOOD_PROMPT
    return path


class Served:
    """An ``agl`` command serving pages, read from its announcement line; stopped with SIGTERM."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "agentlightning_core.cli", *args, "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        if not found:
            self.process.kill()
            raise AssertionError(
                f"agl {' '.join(args)} did not start: {line!r} {self.process.stderr.read()!r}"
            )  # type: ignore[union-attr]
        self.url = found.group(0)

    def stop(self) -> None:
        self.process.terminate()
        assert self.process.wait(timeout=20) == 0


def in_thread(fn: Any, *args: Any) -> None:
    """Run ``anyio.run(fn, *args)`` in a thread: Playwright's sync API holds this thread's loop."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            anyio.run(fn, *args)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "writing to the store took over 60 s"
    if errors:
        raise errors[0]


@pytest.fixture(scope="module")
def browser(run_db: Path) -> Iterator[Any]:
    """Chromium, started after the run (the run's event loop and Playwright's share no thread)."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} not found: run scripts/setup.sh (it installs Debian's chromium package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_FLAGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def dashboard(run_db: Path) -> Iterator[str]:
    served = Served("dashboard", "--store", "sqlite", "--path", str(run_db), "--token", TOKEN)
    yield served.url
    served.stop()


@pytest.fixture
def page(browser: Any, dashboard: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    response = page.goto(f"{dashboard}/?token={TOKEN}")  # the token once; a cookie from then on
    assert response is not None and response.status == 200
    yield page
    context.close()


def drawn_pixels(page: Any, png: bytes) -> tuple[int, int]:
    """(pixels that are not white, distinct colours) of a screenshot, decoded by the browser."""
    data = "data:image/png;base64," + base64.b64encode(png).decode()
    result = page.evaluate(
        """async (src) => {
            const img = new Image(); img.src = src; await img.decode();
            const c = document.createElement("canvas"); c.width = img.width; c.height = img.height;
            const ctx = c.getContext("2d"); ctx.drawImage(img, 0, 0);
            const d = ctx.getImageData(0, 0, c.width, c.height).data;
            let ink = 0; const colours = new Set();
            for (let i = 0; i < d.length; i += 4) {
                if (d[i] < 235 || d[i + 1] < 235 || d[i + 2] < 235) ink++;
                colours.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]);
            }
            return [ink, colours.size];
        }""",
        data,
    )
    return int(result[0]), int(result[1])


def test_run_page_draws_the_reward_curve_per_apo_round(page: Any, tmp_path: Path) -> None:
    chart = page.locator("#reward-chart svg.chart")
    assert int(chart.get_attribute("data-points")) >= 3  # rounds 0..2 of val at least
    assert page.locator("#reward-chart table tr").count() >= 4
    png = chart.screenshot(path=str(tmp_path / "run_chart.png"))
    ink, colours = drawn_pixels(page, png)
    assert ink > 2_000 and colours > 8, (ink, colours)
    # the curve climbs: the val mean of the last round beats round 0's
    rows = page.locator("#reward-chart table tr").all_inner_texts()
    val = [r.split("\t") for r in rows if r.startswith("val")]
    assert float(val[0][4]) == 0.0 and float(val[-1][4]) == 1.0


def test_rollouts_filter_page_and_open_one_with_its_trace_and_messages(page: Any, tmp_path: Path) -> None:
    page.click("text=Rollouts")
    total = int(page.locator("#count").inner_text().split()[0])
    assert total >= 8
    page.select_option("select[name=mode]", "val")
    page.fill("input[name=reward_min]", "0.5")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"mode=val"))
    rows = page.locator("#rollouts tr").all_inner_texts()[1:]
    assert rows and all("\tval\t" in r for r in rows)
    assert all(float(r.split("\t")[5]) >= 0.5 for r in rows)
    assert int(page.locator("#count").inner_text().split()[0]) < total
    page.locator("#rollouts tr td a").first.click()
    page.wait_for_url(re.compile(r"/dashboard/rollouts/"))
    assert page.locator("#reward").inner_text() == "1"
    messages = page.locator("#messages .msg").all_inner_texts()
    assert any("MAGIC" in m for m in messages) and any(
        m.startswith("assistant") and "yes" in m for m in messages
    )
    assert page.locator("#attempts tr").count() == 2  # header + one attempt
    assert page.locator("#tree li").count() >= 2  # the agent's span and its LLM call at least
    png = page.locator("#waterfall svg").screenshot(path=str(tmp_path / "waterfall.png"))
    ink, colours = drawn_pixels(page, png)
    assert ink > 500 and colours > 4, (ink, colours)


def test_resources_show_reward_per_version_and_the_prompt_diff(page: Any, tmp_path: Path) -> None:
    page.goto(page.url.split("/dashboard")[0].rstrip("/") + "/dashboard/resources")
    versions = page.locator("#versions tr").all_inner_texts()[1:]
    assert len(versions) >= 2
    png = page.locator("#reward-chart svg.chart").screenshot(path=str(tmp_path / "versions.png"))
    ink, _ = drawn_pixels(page, png)
    assert ink > 1_000
    # the version that holds the good prompt, compared with the seed
    for link in page.locator("#versions tr td:first-child a").all():
        href = link.get_attribute("href")
        page.goto(page.url.split("/dashboard")[0] + href)
        if GOOD_PROMPT in " ".join(page.locator("pre.resource-text").all_inner_texts()):
            break
        page.go_back()
    else:
        raise AssertionError("no resources version holds the good prompt")
    options = page.locator("select[name=diff] option").all()
    seed_option = next(o for o in options if o.get_attribute("value") != "apo:best")
    page.select_option("select[name=diff]", seed_option.get_attribute("value"))
    page.click("text=Diff >> nth=-1")
    added = page.locator("#diff .add").all_inner_texts()
    removed = page.locator("#diff .del").all_inner_texts()
    if added == [] and removed == []:  # compared with a version holding the same prompt
        assert "No difference" in page.locator("#diff").inner_text()
    else:
        assert any("MAGIC" in line for line in added + removed)


def test_workers_page_shows_heartbeats(page: Any) -> None:
    page.click("text=Workers")
    rows = page.locator("#workers tr").all_inner_texts()[1:]
    assert len(rows) >= 1 and all("ago" in r for r in rows)


def test_without_the_token_the_browser_gets_the_token_form(browser: Any, dashboard: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    response = page.goto(f"{dashboard}/dashboard/rollouts")
    assert response is not None and response.status == 401
    assert "needs the server's token" in page.content()
    page.fill("input[name=token]", "wrong")
    page.click("button[type=submit]")
    assert "not the server's" in page.content()
    page.fill("input[name=token]", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#rollouts")
    context.close()


def test_the_store_server_run_page_updates_live(browser: Any, tmp_path: Path) -> None:
    """``agl store serve`` serves the pages at /; rollouts finishing meanwhile appear on the chart."""
    path = tmp_path / "live.db"
    served = Served("store", "serve", "--store", "sqlite", "--path", str(path))
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(20_000)
        page.goto(served.url + "/")
        assert page.locator("#no-steps").count() == 1

        async def finish(step: int, reward: float) -> None:
            async with SqliteLightningStore(path, watchdog_interval=None) as store:
                (r,) = await store.enqueue_many_rollouts(
                    [EnqueueRequest(input={"i": step}, mode="train", metadata={"step": step})]
                )
                attempted = await store.dequeue_rollout(worker_id="live-worker")
                assert attempted is not None and attempted.rollout.rollout_id == r.rollout_id
                await store.update_attempt(
                    r.rollout_id, attempted.attempt.attempt_id, status="succeeded", reward=reward
                )

        in_thread(finish, 0, 0.25)
        page.wait_for_selector("#reward-chart svg.chart[data-points='1']")
        in_thread(finish, 1, 0.75)
        page.wait_for_selector("#reward-chart svg.chart[data-points='2']")
        assert page.locator("#total-rollouts").inner_text() == "2"
    finally:
        context.close()
        served.stop()
