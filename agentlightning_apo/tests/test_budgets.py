"""Budgets stop the run exactly where they say; clear errors for bad setups."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import openai
import pytest
from apo_world import GOOD_PROMPT, SEED_PROMPT, agent_requests, is_optimizer_call, tasks, yes_agent

from agentlightning_apo import APO, APOError
from agentlightning_core import LLM, InMemoryLightningStore, PromptTemplate, Trainer, rollout
from agentlightning_core.testing.openai_server import OpenAIServer, Reply

PROPOSAL = f"<prompt>{GOOD_PROMPT}</prompt>"


def fit(llm: Any, store: Any = None, resources: Any = None, adapter: Any = "messages", **kwargs: Any) -> APO:
    settings: dict[str, Any] = {
        "beam_width": 2,
        "branch_factor": 2,
        "beam_rounds": 3,
        "gradient_batch_size": 2,
    }
    apo = APO(**{**settings, **kwargs})
    trainer = Trainer(
        algorithm=apo,
        adapter=adapter,
        store=store,
        n_runners=2,
        progress=False,
        initial_resources=resources or {"llm": llm, "prompt_template": PromptTemplate(SEED_PROMPT)},
    )
    trainer.fit(yes_agent, tasks("train", 4), tasks("val", 4))
    return apo


@pytest.mark.parametrize("limit", [5, 9, 13])
def test_max_rollouts_is_exact(make_world: Any, limit: int) -> None:
    _, server, llm = make_world([PROPOSAL])
    store = InMemoryLightningStore()
    apo = fit(llm, store=store, max_rollouts=limit)
    assert apo.stats.rollouts == limit == len(agent_requests(server))
    assert apo.stats.stopped_by == f"max_rollouts={limit} reached"


def test_warns_when_the_budget_cannot_buy_three_proposals(
    make_world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    _, _, llm = make_world([PROPOSAL])
    with caplog.at_level(logging.WARNING, logger="agentlightning_apo"):
        fit(llm, max_rollouts=10)
    assert "max_rollouts=10 cannot buy three proposals" in caplog.text


def test_max_llm_tokens_stops_before_the_next_call(make_world: Any) -> None:
    world, _, llm = make_world(["<prompt>Answer {question} now.</prompt>"])  # 120 tokens per call
    apo = fit(llm, max_llm_tokens=200)
    assert world.optimizer_calls == 2 and apo.stats.llm_tokens == 240
    assert apo.stats.stopped_by == "max_llm_tokens=200 reached (240 tokens)"


def test_max_wall_seconds_stops_the_run(make_world: Any) -> None:
    world, _, llm = make_world([PROPOSAL])
    apo = fit(llm, max_wall_seconds=0.001)
    assert apo.stats.stopped_by == "max_wall_seconds=0.001 reached"
    assert world.optimizer_calls == 0
    assert apo.best is not None and apo.best.prompt == SEED_PROMPT  # the seed was scored before the check


def test_samples_per_task_reports_the_variance(tmp_path: Path) -> None:
    flips = iter(["yes", "no"] * 100)

    def noisy(body: dict[str, Any]) -> Reply | str:
        return next(flips)

    with OpenAIServer(noisy) as server:
        apo = fit(
            LLM(endpoint=server.base_url, model="m"),
            beam_rounds=1,
            branch_factor=1,
            beam_width=1,
            samples_per_task=2,
            max_rollouts=8,
        )
    seed = apo.candidates[0]
    # 8 answers alternate yes/no; runners take them in any order, so only the totals are fixed:
    # 4 tasks x 2 samples, 4 right in all, and a task scores 0.5 exactly when its samples differ.
    assert len(seed.scores) == 4 and sum(seed.scores.values()) == 2.0
    assert all((seed.variances[t] == 0.25) == (score == 0.5) for t, score in seed.scores.items())


@rollout
def llm_only_agent(task: dict[str, str], llm: LLM) -> float:
    return 0.0


def test_errors_name_the_problem(make_world: Any) -> None:
    _, _, llm = make_world([PROPOSAL])
    no_template = Trainer(algorithm=APO(), progress=False, initial_resources={"llm": llm})
    with pytest.raises(ValueError, match="a PromptTemplate, but the initial resources have none"):
        no_template.fit(llm_only_agent, tasks("train", 2), tasks("val", 2))
    with pytest.raises(TypeError, match="Use Trainer\\(adapter='messages'\\)"):
        fit(llm, adapter="tracer_triplet")
    with pytest.raises(ValueError, match="edit_mode must be 'rewrite' or 'critique_then_edit'"):
        APO(edit_mode="gradient")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError, match=r"nowhere\.md"):
        APO(rewrite_prompts="nowhere.md")
    trainer = Trainer(
        algorithm=APO(),
        progress=False,
        initial_resources={"llm": llm, "prompt_template": PromptTemplate(SEED_PROMPT)},
    )
    with pytest.raises(ValueError, match="val_dataset"):
        trainer.fit(yes_agent, tasks("train", 2), [])


def test_unreachable_optimizer_names_the_url(make_world: Any) -> None:
    _, _, llm = make_world([PROPOSAL])
    dead = openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="x", max_retries=0)
    with pytest.raises(
        APOError, match=re.escape("Cannot reach the optimizer endpoint http://127.0.0.1:9/v1")
    ):
        fit(llm, client=dead)


def test_rate_limits_are_retried_then_reported(make_world: Any) -> None:
    world, _, _ = make_world([PROPOSAL])
    limited = [Reply(status=429, error="slow down")] * 2

    def flaky(body: dict[str, Any]) -> Reply | str:
        if is_optimizer_call(body) and limited:
            return limited.pop()
        return world(body)

    with OpenAIServer(flaky) as server:
        apo = fit(LLM(endpoint=server.base_url, model="m"), beam_rounds=1, branch_factor=1)
    apo_retries = apo.stats.rate_limit_retries
    assert apo_retries == 2 and apo.get_best_prompt().template == GOOD_PROMPT


def test_empty_critiques_are_skipped_and_counted(make_world: Any) -> None:
    world, _, llm = make_world(["", "ok", PROPOSAL])
    apo = fit(llm, edit_mode="critique_then_edit", beam_rounds=1, branch_factor=2, beam_width=1)
    # call 1: empty critique (skipped); call 2: "ok" (too short, skipped) -> no edit call at all
    assert apo.stats.empty_critiques == 2 and world.optimizer_calls == 2
