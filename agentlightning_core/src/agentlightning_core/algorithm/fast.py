""":class:`FastAlgorithm`: run every task once and report the rewards (``Trainer.dev``'s default)."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from typing import Any

import attrs

from agentlightning_core.adapter.base import BadTraceError
from agentlightning_core.algorithm.base import Algorithm
from agentlightning_core.spans import Span
from agentlightning_core.store.base import EnqueueRequest
from agentlightning_core.types import Rollout, RolloutMode

__all__ = ["FastAlgorithm", "RolloutSummary"]

logger = logging.getLogger(__name__)


@attrs.define(slots=True)
class RolloutSummary:
    """A finished rollout, its final reward (None when it recorded none) and how many learning
    samples the adapter made of its spans (0 when it dropped them or the rollout failed)."""

    rollout: Rollout
    reward: float | None
    samples: int = 0


class FastAlgorithm(Algorithm):
    """Enqueue each train and val task once, wait for all, log success and mean reward.

    Meant for quick dry runs of an agent (``Trainer.dev``); algorithms that are cheap enough
    for such runs may subclass it. After ``run``, :attr:`results` holds one
    :class:`RolloutSummary` per task in dataset order.

    Evaluation only: the adapter runs on each succeeded rollout's spans to count the
    learning samples they would give, and what it rejects (a :class:`BadTraceError`, e.g.
    an agent that makes no LLM call) is counted in :attr:`drop_counts` by reason, logged
    at WARNING once per reason per run, never raised.

    :param timeout: seconds to wait for the rollouts (None: as long as it takes).
    """

    def __init__(self, *, timeout: float | None = None) -> None:
        self.timeout = timeout
        self.results: list[RolloutSummary] = []
        self.drop_counts: dict[str, int] = {}
        """Traces the adapter rejected in the last run, by reason."""

    async def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> None:
        store = self.get_store()
        self.drop_counts = {}
        requests = [EnqueueRequest(input=task, mode="train") for task in train_dataset or ()]
        requests += [EnqueueRequest(input=task, mode="val") for task in val_dataset or ()]
        if not requests:
            logger.warning("FastAlgorithm: the datasets are empty; nothing to run")
            return
        rollouts = await store.enqueue_many_rollouts(requests)
        ids = [r.rollout_id for r in rollouts]
        finished = {r.rollout_id: r for r in await store.wait_for_rollouts(ids, timeout=self.timeout)}
        self.results = []
        for r in rollouts:
            rollout = finished.get(r.rollout_id, r)
            attempt = await store.get_latest_attempt(r.rollout_id)
            samples = 0
            if rollout.status == "succeeded":
                spans = (await store.query_spans(r.rollout_id, "latest")).items
                samples = self.adapt_spans(rollout.rollout_id, spans)
            self.results.append(
                RolloutSummary(rollout, attempt.reward if attempt is not None else None, samples)
            )
        for mode in ("train", "val"):
            self._report(mode, [s for s in self.results if s.rollout.mode == mode])
        self.report_drops()

    def adapt_spans(self, rollout_id: str, spans: Sequence[Span]) -> int:
        """The number of learning samples the adapter makes of ``spans``; a trace it rejects
        counts in :attr:`drop_counts` (the first of each reason logged at WARNING) and gives 0."""
        try:
            samples = self.get_adapter()(spans)
        except BadTraceError as exc:
            count = self.drop_counts[exc.reason] = self.drop_counts.get(exc.reason, 0) + 1
            if count == 1:
                logger.warning(
                    "%s: the adapter rejected rollout %s (%s); counting such traces and going on "
                    "(an evaluation needs no learning data)",
                    type(self).__name__,
                    rollout_id,
                    exc,
                )
            return 0
        return len(samples) if isinstance(samples, Sequence) else 1

    def report_drops(self) -> None:
        """Log how many traces the adapter rejected in this run, by reason (nothing when none)."""
        if self.drop_counts:
            logger.info(
                "%s: the adapter rejected %d trace(s): %s",
                type(self).__name__,
                sum(self.drop_counts.values()),
                ", ".join(f"{reason}={n}" for reason, n in sorted(self.drop_counts.items())),
            )

    def _report(self, mode: RolloutMode, summaries: list[RolloutSummary]) -> None:
        if not summaries:
            return
        succeeded = sum(s.rollout.status == "succeeded" for s in summaries)
        rewards = [s.reward for s in summaries if s.reward is not None]
        mean = f"{statistics.fmean(rewards):.4f}" if rewards else "n/a"
        logger.info(
            "FastAlgorithm %s: %d/%d rollouts succeeded, mean reward %s over %d rewarded, %d samples",
            mode,
            succeeded,
            len(summaries),
            mean,
            len(rewards),
            sum(s.samples for s in summaries),
        )
