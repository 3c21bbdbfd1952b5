"""LangChain example: a tool-calling agent built with ``create_agent``, trained by name with Baseline.

The agent answers weather questions with a ``get_weather`` tool. The LangChain handler records
its runs; after training the script prints, per rollout, how many model calls reached the
handler (every call of the agent's model must: langchain #36477) and the triplets of each
LangGraph node of the agent, selected by agent name.

By default the model is the scripted OpenAI-compatible server of the tests (no model needed);
point it at a real one with ``--base-url`` and ``--model``.

    python examples/langchain/weather_agent.py [--tasks 4] [--base-url URL --model NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

from agentlightning_core import LLM, Hook, Span, TracerTraceToTriplet, Trainer, emit_reward, rollout, semconv
from agentlightning_core.testing.openai_server import OpenAIServer, Reply, ToolCall
from agentlightning_langchain import RUN_TYPE, LightningCallbackHandler

WEATHER = {"Paris": "sunny", "Oslo": "snowing", "Lima": "cloudy", "Cairo": "hot"}


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return WEATHER.get(city, "unknown")


@rollout
def weather_agent(task: dict[str, Any], llm: LLM) -> float:
    model = ChatOpenAI(model=llm.model, base_url=llm.endpoint, api_key=llm.api_key or "none", max_retries=1)  # type: ignore[arg-type]
    agent = create_agent(model, tools=[get_weather], system_prompt="Answer with the weather tool.")
    state = agent.invoke(
        {"messages": [{"role": "user", "content": f"What is the weather in {task['city']}?"}]},
        config={"callbacks": [LightningCallbackHandler()]},
    )
    answer = str(state["messages"][-1].content)
    reward = 1.0 if WEATHER[task["city"]] in answer.lower() else 0.0
    emit_reward(reward)
    return reward


def scripted_model(body: dict[str, Any]) -> Reply:
    """The scripted model: calls the tool for the city asked about, then answers with its result."""
    messages = body["messages"]
    if messages[-1]["role"] == "tool":
        return Reply(content=f"It is {messages[-1]['content']}.")
    city = next((c for c in WEATHER if c in str(messages[-1]["content"])), "Paris")
    return Reply(tool_calls=[ToolCall("get_weather", json.dumps({"city": city}))])


@contextlib.contextmanager
def endpoint(base_url: str | None, model: str) -> Iterator[LLM]:
    if base_url:
        yield LLM(endpoint=base_url, model=model, api_key=os.environ.get("OPENAI_API_KEY"))
        return
    with OpenAIServer(scripted_model) as server:
        yield LLM(endpoint=server.base_url, model=model)


class Report(Hook):
    """Per rollout: model calls the handler saw and calls the openai capture saw; triplets per node."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []
        self.by_node: dict[str, list[Any]] = {}

    def on_rollout_end(self, *, spans: Sequence[Span], **kwargs: Any) -> None:
        handler = sum(1 for s in spans if s.attributes.get(RUN_TYPE) == "chat_model")
        capture = sum(1 for s in spans if s.name.startswith("chat") and RUN_TYPE not in s.attributes)
        self.calls.append((handler, capture))
        nodes = Counter(
            s.attributes.get(semconv.AGENT_NAME) for s in spans if s.attributes.get(RUN_TYPE) == "chat_model"
        )
        for node in nodes:
            if isinstance(node, str):
                adapter = TracerTraceToTriplet(agent_match=f"^{node}$", on_bad_data="drop")
                self.by_node.setdefault(node, []).extend(adapter.adapt(spans))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (default: the scripted server)")
    parser.add_argument("--model", default="scripted-weather")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cities = list(WEATHER)
    tasks = [{"city": cities[i % len(cities)]} for i in range(args.tasks)]
    report = Report()
    with endpoint(args.base_url, args.model) as llm:
        trainer = Trainer(
            algorithm={"type": "baseline", "n_epochs": 1},
            n_runners=2,
            initial_resources={"llm": llm},
            hooks=[report],
        )
        baseline = trainer.fit(weather_agent, tasks)
    for stats in baseline.history:  # type: ignore[attr-defined]
        mean = "n/a" if stats.mean_reward is None else f"{stats.mean_reward:.3f}"
        print(
            f"epoch {stats.epoch} {stats.mode}: {stats.succeeded}/{stats.rollouts} succeeded, mean reward {mean}"
        )
    handler_calls = sum(h for h, _ in report.calls)
    capture_calls = sum(c for _, c in report.calls)
    print(f"model calls: {handler_calls} reached the handler, {capture_calls} seen by the openai capture")
    for node, triplets in sorted(report.by_node.items()):
        print(f"node {node}: {len(triplets)} triplets")
        for t in triplets[:2]:
            print(f"  response: {t.response['message']} token ids: {t.response['token_ids']}")


if __name__ == "__main__":
    main()
