"""LangGraph example: a two-node graph (write SQL, then check it) trained by name with Baseline.

Each task is a question about a small schema. The ``write_sql`` node asks the model for a
query, the ``check_sql`` node asks it to check the query and emits the reward (1 when the
checker accepts it). The LangChain handler records every run; after training the script
prints the triplets of each node, selected by agent name (the LangGraph node).

By default the model is the scripted OpenAI-compatible server of the tests (no model needed);
point it at a real one with ``--base-url`` and ``--model``.

    python examples/langgraph/sql_agent.py [--tasks 4] [--base-url URL --model NAME]
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
from collections.abc import Iterator, Sequence
from typing import Any, TypedDict

from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph

from agentlightning_core import (
    LLM,
    AttemptedRollout,
    Hook,
    Span,
    TracerTraceToTriplet,
    Trainer,
    emit_reward,
    rollout,
)
from agentlightning_core.testing.openai_server import OpenAIServer
from agentlightning_langchain import LightningCallbackHandler

TABLES = ["users", "orders", "products", "invoices", "reviews", "shipments"]
NODES = ("write_sql", "check_sql")


class SqlState(TypedDict, total=False):
    question: str
    sql: str
    verdict: str


def build_graph(model: ChatOpenAI) -> Any:
    def write_sql(state: SqlState) -> SqlState:
        prompt = f"Write one SQL query answering: {state['question']} Reply with the query only."
        return {"sql": str(model.invoke(prompt).content).strip()}

    def check_sql(state: SqlState) -> SqlState:
        prompt = f"Does this SQL answer '{state['question']}'? Reply ok or wrong.\n{state['sql']}"
        verdict = str(model.invoke(prompt).content).strip().lower()
        emit_reward(1.0 if verdict.startswith("ok") else 0.0)
        return {"verdict": verdict}

    graph = StateGraph(SqlState)
    graph.add_node("write_sql", write_sql)
    graph.add_node("check_sql", check_sql)
    graph.add_edge(START, "write_sql")
    graph.add_edge("write_sql", "check_sql")
    graph.add_edge("check_sql", END)
    return graph.compile()


@rollout
def sql_agent(task: dict[str, Any], llm: LLM) -> None:
    model = ChatOpenAI(model=llm.model, base_url=llm.endpoint, api_key=llm.api_key or "none", max_retries=1)  # type: ignore[arg-type]
    config: Any = {"callbacks": [LightningCallbackHandler()], "configurable": {"thread_id": task["id"]}}
    build_graph(model).invoke({"question": task["question"]}, config=config)


def scripted_model(body: dict[str, Any]) -> str:
    """The scripted model: a count query for the table asked about; accepts queries on that table."""
    prompt = str(body["messages"][-1]["content"])
    table = next((t for t in TABLES if t in prompt.split("\n")[0]), "users")
    if prompt.startswith("Write"):
        return f"SELECT count(*) FROM {table}"
    return "ok" if re.search(rf"FROM {table}\b", prompt) else "wrong"


@contextlib.contextmanager
def endpoint(base_url: str | None, model: str) -> Iterator[LLM]:
    if base_url:
        yield LLM(endpoint=base_url, model=model, api_key=os.environ.get("OPENAI_API_KEY"))
        return
    with OpenAIServer(scripted_model) as server:
        yield LLM(endpoint=server.base_url, model=model)


class NodeTriplets(Hook):
    """Collects each finished rollout's triplets, per LangGraph node and task id."""

    def __init__(self) -> None:
        self.by_task: dict[str, dict[str, list[Any]]] = {node: {} for node in NODES}

    def on_rollout_end(self, *, rollout: AttemptedRollout, spans: Sequence[Span], **kwargs: Any) -> None:
        for node in NODES:
            adapter = TracerTraceToTriplet(agent_match=f"^{node}$", on_bad_data="drop")
            self.by_task[node][rollout.input["id"]] = adapter.adapt(spans)

    def in_task_order(self, node: str, tasks: list[dict[str, str]]) -> list[Any]:
        """The node's triplets in the order of ``tasks`` (runners finish them in any order)."""
        found = self.by_task[node]
        return [t for task in tasks for t in found.get(task["id"], [])]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=6)
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (default: the scripted server)")
    parser.add_argument("--model", default="scripted-sql")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    tasks = [
        {"id": f"task-{i}", "question": f"How many rows does the {TABLES[i % len(TABLES)]} table have?"}
        for i in range(args.tasks)
    ]
    collected = NodeTriplets()
    with endpoint(args.base_url, args.model) as llm:
        trainer = Trainer(
            algorithm={"type": "baseline", "n_epochs": 1},
            n_runners=2,
            initial_resources={"llm": llm},
            hooks=[collected],
        )
        baseline = trainer.fit(sql_agent, tasks)
    for stats in baseline.history:  # type: ignore[attr-defined]
        mean = "n/a" if stats.mean_reward is None else f"{stats.mean_reward:.3f}"
        print(
            f"epoch {stats.epoch} {stats.mode}: {stats.succeeded}/{stats.rollouts} succeeded, mean reward {mean}"
        )
    for node in NODES:
        triplets = collected.in_task_order(node, tasks)
        print(f"node {node}: {len(triplets)} triplets")
        for t in triplets[:2]:
            prompt = t.prompt["messages"][-1]["content"].split("\n")[0]
            print(
                f"  prompt: {prompt!r} -> response: {t.response['message']['content']!r} reward: {t.reward}"
            )


if __name__ == "__main__":
    main()
