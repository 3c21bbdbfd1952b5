"""Example third-party plugin: an algorithm and an adapter registered by name."""

import random
from collections.abc import Sequence
from typing import Any

from agentlightning_core import Algorithm, EnqueueRequest, PromptTemplate, Span, TraceAdapter, hookimpl
from agentlightning_core.emitter import find_final_reward


class RandomSearch(Algorithm):
    """Tries ``n_trials`` prompt templates out of ``candidates`` (random order) on the train
    dataset, one resource version each, and publishes the one with the best mean reward."""

    def __init__(self, candidates: Sequence[str] = ("Answer: {question}",), n_trials: int = 3, seed: int = 0):
        self.candidates, self.n_trials, self.rng = list(candidates), n_trials, random.Random(seed)
        self.scores: dict[str, float] = {}

    async def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> None:
        store, tasks = self.get_store(), list(train_dataset or ())
        trials = self.rng.sample(self.candidates, min(self.n_trials, len(self.candidates)))
        for template in trials:  # publish a version, run every task with it, score it
            version = await store.add_resources({"prompt_template": PromptTemplate(template)})
            requests = [
                EnqueueRequest(input=t, mode="train", resources_id=version.resources_id) for t in tasks
            ]
            rollouts = await store.enqueue_many_rollouts(requests)
            await store.wait_for_rollouts([r.rollout_id for r in rollouts])
            rewards = [
                find_final_reward((await store.query_spans(r.rollout_id, "latest")).items) for r in rollouts
            ]
            self.scores[template] = sum(r or 0.0 for r in rewards) / max(len(rewards), 1)
            if self.stop_requested:
                break
        self.best = max(self.scores, key=self.scores.__getitem__)
        await store.add_resources({"prompt_template": PromptTemplate(self.best)})  # the latest: the best


class SpanNames(TraceAdapter[list[str]]):
    """Turns a trace into the list of its span names, in sequence order."""

    def adapt(self, source: Sequence[Span]) -> list[str]:
        return [span.name for span in sorted(source, key=lambda s: s.sequence_id)]


@hookimpl
def register_algorithms(register: Any) -> None:
    register("example-random-search", RandomSearch)


@hookimpl
def register_adapters(register: Any) -> None:
    register("example-span-names", SpanNames)
