"""An agent written with AgentOps' decorators and the ``openai`` client, trained by name.

``Trainer(tracer="agentops")`` records what AgentOps records (its ``@agent``/``@tool``/
``@operation`` spans and the ``openai`` calls its instrumentor captures) into the store,
on this machine only; the ``baseline`` algorithm runs the tasks and turns each trace into
prompt/response/reward triplets. The reward is returned the way the earlier generation's
AgentOps agents did: an ``@operation`` returning ``{"type": "reward", "value": x}``.

Without ``--base-url`` the example starts the core's scripted OpenAI-compatible server on
127.0.0.1 (answers from a small table, so it runs anywhere); with it, any OpenAI-compatible
endpoint serves the model::

    python examples/agentops/agentops_agent.py [--runners 2] [--epochs 1]
    python examples/agentops/agentops_agent.py --base-url http://127.0.0.1:8000/v1 --model qwen2.5
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import agentops
import openai

from agentlightning_core import LLM, PromptTemplate, Trainer, rollout

CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima", "Italy": "Rome"}
TASKS = [{"country": country, "capital": capital} for country, capital in CAPITALS.items()]

_clients: dict[str, openai.OpenAI] = {}


def client_for(llm: LLM) -> openai.OpenAI:
    url = llm.get_base_url()
    if url not in _clients:
        _clients[url] = openai.OpenAI(base_url=url, api_key=llm.api_key or "no-key", max_retries=2)
    return _clients[url]


@agentops.tool(name="normalise")
def normalise(text: str) -> str:
    return text.strip().rstrip(".").strip()


@agentops.operation(name="grade")
def grade(answer: str, expected: str) -> dict[str, Any]:
    return {"type": "reward", "value": 1.0 if answer.lower() == expected.lower() else 0.0}


@agentops.agent(name="capital-agent")
def ask(question: str, llm: LLM) -> str:
    reply = client_for(llm).chat.completions.create(
        model=llm.model,
        messages=[
            {"role": "system", "content": "Answer with the city name only."},
            {"role": "user", "content": question},
        ],
        **llm.sampling_parameters,
    )
    return normalise(reply.choices[0].message.content or "")


@rollout
def capital_agent(task: dict[str, str], llm: LLM, prompt_template: PromptTemplate) -> None:
    answer = ask(prompt_template.format(country=task["country"]), llm)
    grade(answer, task["capital"])  # the reward: read from the operation's output


def scripted_answer(body: dict[str, Any]) -> str:
    """The scripted model: knows every capital but Peru's."""
    question = body["messages"][-1]["content"]
    for country, capital in CAPITALS.items():
        if country in question and country != "Peru":
            return f"{capital}."
    return "I do not know."


@contextlib.contextmanager
def endpoint(base_url: str | None, model: str) -> Iterator[LLM]:
    if base_url is not None:
        yield LLM(endpoint=base_url, model=model)
        return
    from agentlightning_core.testing.openai_server import OpenAIServer

    with OpenAIServer(scripted_answer) as server:
        yield LLM(endpoint=server.base_url, model=model)


def train(llm: LLM, *, runners: int, epochs: int) -> Any:
    """Run the baseline algorithm over the tasks with the ``agentops`` tracer; returns it."""
    trainer = Trainer(
        algorithm={"type": "baseline", "n_epochs": epochs},
        tracer="agentops",
        n_runners=runners,
        initial_resources={
            "llm": llm,
            "prompt_template": PromptTemplate("What is the capital of {country}?"),
        },
    )
    return trainer.fit(capital_agent, TASKS)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runners", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--base-url", default=None, help="an OpenAI-compatible endpoint (default: scripted)")
    parser.add_argument("--model", default="test-model")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    with endpoint(args.base_url, args.model) as llm:
        baseline = train(llm, runners=args.runners, epochs=args.epochs)
    for stats in baseline.history:
        mean = "n/a" if stats.mean_reward is None else f"{stats.mean_reward:.3f}"
        print(
            f"epoch {stats.epoch} {stats.mode}: {stats.succeeded}/{stats.rollouts} succeeded, "
            f"mean reward {mean}, {stats.samples} triplets"
        )


if __name__ == "__main__":
    main()
