"""One small APO round with the real embedded model as agent and optimizer (structure, not quality)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from agentlightning_apo import APO
from agentlightning_core import LLM, PromptTemplate, Trainer, rollout
from agentlightning_local import LocalModel

SEED = "Reply with one word: the colour of {thing}."


@rollout
def colour_agent(task: dict[str, str], llm: LLM, prompt_template: PromptTemplate) -> float:
    client = openai.OpenAI(base_url=llm.get_base_url(), api_key="local")
    reply = client.chat.completions.create(
        model=llm.model,
        messages=[{"role": "user", "content": prompt_template.format(thing=task["thing"])}],
        max_tokens=8,
        temperature=0.0,
    )
    return 1.0 if task["colour"] in (reply.choices[0].message.content or "").lower() else 0.0


@pytest.mark.slow
def test_one_round_with_the_embedded_model(tmp_path: Path) -> None:
    train = [{"thing": "grass", "colour": "green"}, {"thing": "snow", "colour": "white"}]
    val = [
        {"thing": "the sky on a clear day", "colour": "blue"},
        {"thing": "a ripe banana", "colour": "yellow"},
    ]
    with LocalModel("qwen2.5-coder-0.5b", threads=1) as llm:
        apo = APO(
            beam_width=1,
            branch_factor=1,
            beam_rounds=1,
            gradient_batch_size=2,
            val_batch_size=2,
            minibatch_gate=False,
            max_edit_tokens=80,
            output_dir=tmp_path,
            progress=False,
        )
        trainer = Trainer(
            algorithm=apo,
            adapter="messages",
            n_runners=1,
            progress=False,
            initial_resources={"llm": llm, "prompt_template": PromptTemplate(SEED)},
        )
        trainer.fit(colour_agent, train, val)
    history: dict[str, Any] = json.loads((tmp_path / "history.json").read_text())
    assert history["stats"]["llm_calls"] == 1 and history["stats"]["llm_tokens"] > 0
    assert history["candidates"][0]["id"] == "seed" and set(history["candidates"][0]["scores"]) == {"0", "1"}
    assert (
        len(history["candidates"]) + history["stats"]["duplicates"] + history["stats"]["empty_critiques"] == 2
    )
    assert [r["round"] for r in history["rounds"]] == [0, 1]
    assert (tmp_path / "best_prompt.txt").read_text().strip() == apo.get_best_prompt().template
    assert "{thing}" in apo.get_best_prompt().template
