"""A scripted world for APO tests: an agent whose reward depends on one phrase of its prompt.

The agent talks to the core's scripted OpenAI-compatible server with the real ``openai``
client. The server answers the agent "yes" only when the system prompt holds ``MAGIC``;
it answers the optimizer (a request holding APO's meta-prompt) from a list of proposals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import openai

from agentlightning_core import LLM, PromptTemplate, rollout
from agentlightning_core.testing.openai_server import OpenAIServer, Reply

SEED_PROMPT = "Answer the question {question}."
GOOD_PROMPT = "Answer the question {question}. MAGIC: always say yes."


def tasks(split: str, n: int) -> list[dict[str, str]]:
    return [{"question": f"{split}-{i}", "answer": "yes"} for i in range(n)]


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
    return 1.0 if reply.choices[0].message.content == task["answer"] else 0.0


def is_optimizer_call(body: dict[str, Any]) -> bool:
    messages = body.get("messages", [])
    return len(messages) == 1  # the optimizer sends one user message; the agent a system and a user one


class World:
    """The scripted server's behaviour; ``proposals`` are served to optimizer calls in turn (cycling)."""

    def __init__(self, proposals: list[str]) -> None:
        self.proposals = proposals
        self.optimizer_calls = 0
        self.on_optimizer_call: Callable[[int], None] | None = None
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> Reply | str:
        if is_optimizer_call(body):
            with self.lock:
                n = self.optimizer_calls
                self.optimizer_calls += 1
            if self.on_optimizer_call is not None:
                self.on_optimizer_call(n)
            return Reply(
                content=self.proposals[n % len(self.proposals)], prompt_tokens=100, completion_tokens=20
            )
        system = body["messages"][0]["content"]
        return "yes" if "MAGIC" in system else "no"


def agent_requests(server: OpenAIServer) -> list[tuple[str, str]]:
    """(system prompt, task) of every agent request the server received, in order."""
    return [
        (b["messages"][0]["content"], b["messages"][1]["content"])
        for b in server.requests
        if not is_optimizer_call(b)
    ]


def make_world_fixture() -> Iterator[Callable[[list[str]], tuple[World, OpenAIServer, LLM]]]:
    servers: list[OpenAIServer] = []

    def make(proposals: list[str]) -> tuple[World, OpenAIServer, LLM]:
        world = World(proposals)
        server = OpenAIServer(world).start()
        servers.append(server)
        return world, server, LLM(endpoint=server.base_url, model="scripted")

    yield make
    for server in servers:
        server.stop()
