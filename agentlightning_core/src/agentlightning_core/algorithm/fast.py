""":class:`FastAlgorithm`: run every task once and report the rewards (``Trainer.dev``'s default)."""

from __future__ import annotations

import logging
import statistics
from collections.abc import Sequence
from typing import Any

import attrs

from agentlightning_core.algorithm.base import Algorithm
from agentlightning_core.emitter.reward import query_final_reward
from agentlightning_core.store.base import EnqueueRequest
from agentlightning_core.types import Rollout, RolloutMode

__all__ = ["FastAlgorithm", "RolloutSummary"]

logger = logging.getLogger(__name__)


@attrs.define(slots=True)
class RolloutSummary:
    """A finished rollout and its final reward (None when it recorded none)."""

    rollout: Rollout
    reward: float | None


class FastAlgorithm(Algorithm):
    """Enqueue each train and val task once, wait for all, log success and mean reward.

    Meant for quick dry runs of an agent (``Trainer.dev``); algorithms that are cheap enough
    for such runs may subclass it. After ``run``, :attr:`results` holds one
    :class:`RolloutSummary` per task in dataset order.

    :param timeout: seconds to wait for the rollouts (None: as long as it takes).
    """

    def __init__(self, *, timeout: float | None = None) -> None:
        self.timeout = timeout
        self.results: list[RolloutSummary] = []

    async def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> None:
        store = self.get_store()
        requests = [EnqueueRequest(input=task, mode="train") for task in train_dataset or ()]
        requests += [EnqueueRequest(input=task, mode="val") for task in val_dataset or ()]
        if not requests:
            logger.warning("FastAlgorithm: the datasets are empty; nothing to run")
            return
        rollouts = await store.enqueue_many_rollouts(requests)
        ids = [r.rollout_id for r in rollouts]
        finished = {r.rollout_id: r for r in await store.wait_for_rollouts(ids, timeout=self.timeout)}
        self.results = [
            RolloutSummary(finished.get(r.rollout_id, r), await query_final_reward(store, r.rollout_id))
            for r in rollouts
        ]
        for mode in ("train", "val"):
            self._report(mode, [s for s in self.results if s.rollout.mode == mode])

    def _report(self, mode: RolloutMode, summaries: list[RolloutSummary]) -> None:
        if not summaries:
            return
        succeeded = sum(s.rollout.status == "succeeded" for s in summaries)
        rewards = [s.reward for s in summaries if s.reward is not None]
        mean = f"{statistics.fmean(rewards):.4f}" if rewards else "n/a"
        logger.info(
            "FastAlgorithm %s: %d/%d rollouts succeeded, mean reward %s over %d rewarded",
            mode,
            succeeded,
            len(summaries),
            mean,
            len(rewards),
        )
