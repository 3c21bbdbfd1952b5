"""APO finds and keeps the one edit that raises the reward (beam and Pareto), and reports it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import pytest
from apo_world import GOOD_PROMPT, SEED_PROMPT, agent_requests, is_optimizer_call, tasks, yes_agent

from agentlightning_apo import APO
from agentlightning_core import InMemoryLightningStore, PromptTemplate, Trainer

PROPOSALS = [
    "<prompt>Answer {question} politely.</prompt>",  # no gain: the gate rejects it
    f"Here is the improved template:\n<prompt>{GOOD_PROMPT}</prompt>",
    "<prompt>Please answer the question {question} carefully.</prompt>",
]


def fit(llm: Any, tmp_path: Path, store: Any = None, **kwargs: Any) -> APO:
    settings: dict[str, Any] = {
        "beam_width": 2,
        "branch_factor": 2,
        "beam_rounds": 2,
        "gradient_batch_size": 2,
        "val_batch_size": 3,
        "output_dir": tmp_path / "out",
    }
    apo = APO(**{**settings, **kwargs})
    trainer = Trainer(
        algorithm=apo,
        adapter="messages",
        store=store,
        n_runners=2,
        progress=False,
        initial_resources={"llm": llm, "prompt_template": PromptTemplate(SEED_PROMPT)},
    )
    trainer.fit(yes_agent, tasks("train", 4), tasks("val", 3))
    return apo


@pytest.mark.parametrize("selection", ["beam", "pareto"])
def test_finds_and_keeps_the_edit_that_raises_the_reward(
    make_world: Any, tmp_path: Path, selection: str
) -> None:
    world, server, llm = make_world(PROPOSALS)
    store = InMemoryLightningStore()
    apo = fit(llm, tmp_path, store=store, selection=selection)

    assert apo.get_best_prompt().template == GOOD_PROMPT
    assert apo.best is not None and apo.best.val_score == 1.0
    seed = apo.candidates[0]
    assert seed.val_score == 0.0 and len(seed.scores) == 3
    assert apo.stats.rejected_gate >= 1  # "politely" scores no better than its parent on the minibatch
    statuses = {c.prompt: c.status for c in apo.candidates}
    assert statuses[GOOD_PROMPT] == "evaluated"
    # once found, the good prompt stays the best: later rounds keep it in the beam/front
    assert all(r["best_score"] == 1.0 for r in apo.rounds[1:])
    # what a user can use: the file, the versioned resource, the JSON history
    assert (tmp_path / "out" / "best_prompt.txt").read_text().strip() == GOOD_PROMPT
    best = anyio.run(store.get_resources_by_id, "apo:best")
    assert best.resources["prompt_template"].template == GOOD_PROMPT  # type: ignore[union-attr]
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert history["best"]["prompt"] == GOOD_PROMPT
    good = next(c for c in history["candidates"] if c["prompt"] == GOOD_PROMPT)
    assert good["parent"] == "seed" and good["round"] == 1 and good["tokens"] == 120
    assert good["scores"] == {"0": 1.0, "1": 1.0, "2": 1.0}
    assert history["stats"]["rollouts"] == apo.stats.rollouts == len(agent_requests(server))
    # every evaluation ran once: the same prompt never ran the same task twice
    requests = agent_requests(server)
    assert len(requests) == len(set(requests))
    assert world.optimizer_calls == apo.stats.llm_calls
    # the good prompt scores 1 on all its minibatches: it never costs an optimizer call as a parent
    meta_prompts = [b["messages"][0]["content"] for b in server.requests if is_optimizer_call(b)]
    assert meta_prompts and not any(GOOD_PROMPT in p for p in meta_prompts)
    assert apo.stats.perfect_minibatches >= 1


def test_rejects_candidates_whose_placeholders_differ(make_world: Any, tmp_path: Path) -> None:
    bad = [
        "<prompt>Answer the question. MAGIC</prompt>",  # dropped {question}
        "<prompt>Answer {question} for {customer}. MAGIC</prompt>",  # invented {customer}
        "<prompt>Answer {question} about {billing, shipping}. MAGIC</prompt>",  # breaks formatting
        "<prompt>Answer {question} and {question}. MAGIC</prompt>",  # the placeholder twice
    ]
    _, server, llm = make_world(bad)
    apo = fit(llm, tmp_path)  # two rounds of two proposals from the seed
    assert (
        apo.stats.rejected_placeholders
        == 2 * 2
        == len([c for c in apo.candidates if c.status == "rejected_placeholders"])
    )
    assert apo.get_best_prompt().template == SEED_PROMPT
    assert not any("MAGIC" in system for system, _ in agent_requests(server))  # none was ever run


def test_progress_line_counts_rounds_forward(
    make_world: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Evaluating an earlier round's parent in round 2 still shows round 2 (it showed the parent's)."""
    _, _, llm = make_world(PROPOSALS)
    fit(llm, tmp_path, progress=True)
    shown = [int(n) for n in re.findall(r"APO round (\d+)/2 \| best ", capsys.readouterr().err)]
    assert shown[0] == 0 and shown[-1] == 2
    assert shown == sorted(shown), shown
