"""Example third-party plugin: an algorithm and an adapter registered by name."""

import random
from collections.abc import Sequence
from typing import Any

from agentlightning_core import Algorithm, PromptTemplate, Span, TraceAdapter, hookimpl


class RandomSearch(Algorithm):
    """Publishes one randomly chosen prompt template out of ``candidates``."""

    def __init__(self, candidates: Sequence[str] = ("Answer: {question}",), seed: int = 0) -> None:
        self.candidates = list(candidates)
        self.rng = random.Random(seed)

    def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> None:
        self.chosen = PromptTemplate(self.rng.choice(self.candidates))


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
