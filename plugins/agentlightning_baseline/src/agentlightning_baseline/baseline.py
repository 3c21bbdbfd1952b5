""":class:`Baseline`: run the datasets for ``n_epochs`` with a bounded queue and report rewards."""

from __future__ import annotations

import logging
import statistics
from collections import deque
from collections.abc import Sequence
from typing import Any

import attrs

from agentlightning_core import EnqueueRequest, FastAlgorithm, LightningStore, Rollout
from agentlightning_core.types import RolloutMode
from agentlightning_core.validation import check_positive_int

__all__ = ["Baseline", "EpochStats"]

logger = logging.getLogger(__name__)


@attrs.define(slots=True)
class EpochStats:
    """Outcome of one pass over one dataset."""

    epoch: int
    mode: RolloutMode
    rollouts: int
    succeeded: int
    failed: int
    rewards: list[float]
    """Final rewards of the succeeded rollouts (those that recorded one)."""
    samples: int
    """Learning samples (e.g. triplets) the adapter produced from the succeeded rollouts' spans."""
    drop_counts: dict[str, int] = attrs.field(factory=dict)
    """What the adapter dropped, skipped or rejected in this epoch, by reason."""

    @property
    def dropped(self) -> int:
        return sum(self.drop_counts.values())

    @property
    def mean_reward(self) -> float | None:
        return statistics.fmean(self.rewards) if self.rewards else None

    @property
    def min_reward(self) -> float | None:
        return min(self.rewards) if self.rewards else None

    @property
    def max_reward(self) -> float | None:
        return max(self.rewards) if self.rewards else None


class Baseline(FastAlgorithm):
    """Enqueue the train (then val) dataset ``n_epochs`` times; never changes resources.

    Each rollout's metadata ``step`` is its epoch (the dashboard's reward curve per step).

    :param n_epochs: passes over the datasets.
    :param max_queue_length: most rollouts enqueued but not finished at any time, so a huge
        dataset does not flood the store and results stream in as they finish.
    :param val_every_epoch: run the validation dataset after every epoch (else after the last).

    After ``run``, :attr:`history` holds one :class:`EpochStats` per epoch and mode.
    """

    def __init__(
        self, *, n_epochs: int = 1, max_queue_length: int = 64, val_every_epoch: bool = True
    ) -> None:
        super().__init__()
        self.n_epochs = check_positive_int("Baseline n_epochs", n_epochs)
        self.max_queue_length = check_positive_int("Baseline max_queue_length", max_queue_length)
        self.val_every_epoch = val_every_epoch
        self.history: list[EpochStats] = []

    async def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> None:
        store = self.get_store()
        self.history = []
        self.drop_counts = {}
        for epoch in range(1, self.n_epochs + 1):
            if train_dataset:
                self._record_epoch(await self._epoch(store, epoch, "train", train_dataset))
            if val_dataset and (self.val_every_epoch or epoch == self.n_epochs):
                self._record_epoch(await self._epoch(store, epoch, "val", val_dataset))
            if self.stop_requested:
                break
        self.report_drops()

    async def _epoch(
        self, store: LightningStore, epoch: int, mode: RolloutMode, dataset: Sequence[Any]
    ) -> EpochStats:
        stats = EpochStats(epoch=epoch, mode=mode, rollouts=0, succeeded=0, failed=0, rewards=[], samples=0)
        drops_before = self._all_drops()
        outstanding: deque[str] = deque()
        tasks = iter(dataset)
        exhausted = False
        while outstanding or not exhausted:
            room = self.max_queue_length - len(outstanding)
            if room > 0 and not exhausted:
                # metadata "step": the epoch, for the dashboard's reward curve per step
                batch = [
                    EnqueueRequest(input=t, mode=mode, metadata={"step": epoch})
                    for _, t in zip(range(room), tasks, strict=False)
                ]
                exhausted = len(batch) < room
                if batch:
                    outstanding.extend(r.rollout_id for r in await store.enqueue_many_rollouts(batch))
                if not outstanding:
                    break
            # Rollouts are dequeued FIFO, so the oldest is the next one to wait for; harvest
            # whatever else finished meanwhile without waiting.
            await store.wait_for_rollouts([outstanding[0]])
            done = await store.wait_for_rollouts(list(outstanding), timeout=0)
            finished = {r.rollout_id for r in done}
            for rollout in done:
                await self._harvest(store, rollout, stats)
            outstanding = deque(rid for rid in outstanding if rid not in finished)
        stats.drop_counts = {
            reason: n - drops_before.get(reason, 0)
            for reason, n in self._all_drops().items()
            if n > drops_before.get(reason, 0)
        }
        return stats

    async def _harvest(self, store: LightningStore, rollout: Rollout, stats: EpochStats) -> None:
        stats.rollouts += 1
        if rollout.status != "succeeded":
            stats.failed += 1  # its spans are an unfinished record: nothing to learn from
            return
        stats.succeeded += 1
        attempt = await store.get_latest_attempt(rollout.rollout_id)
        if attempt is not None and attempt.reward is not None:
            stats.rewards.append(attempt.reward)
        spans = (await store.query_spans(rollout.rollout_id, "latest")).items
        stats.samples += self.adapt_spans(rollout.rollout_id, spans)

    def _all_drops(self) -> dict[str, int]:
        """What the adapter dropped (its own counts) plus the traces it rejected, by reason."""
        merged = dict(_drop_counts(self.get_adapter()))
        for reason, n in self.drop_counts.items():
            merged[reason] = merged.get(reason, 0) + n
        return merged

    def _record_epoch(self, stats: EpochStats) -> None:
        self.history.append(stats)
        mean = stats.mean_reward
        logger.info(
            "Baseline epoch %d %s: %d rollouts (%d succeeded, %d failed), reward mean %s min %s max %s, "
            "%d samples, %d dropped by the adapter",
            stats.epoch,
            stats.mode,
            stats.rollouts,
            stats.succeeded,
            stats.failed,
            "n/a" if mean is None else f"{mean:.4f}",
            stats.min_reward,
            stats.max_reward,
            stats.samples,
            stats.dropped,
        )


def _drop_counts(adapter: Any) -> dict[str, int]:
    stats = getattr(adapter, "stats", None)  # TraceAdapter's AdapterStats; other adapters may have none
    counts = getattr(stats, "drop_counts", None)
    return counts if isinstance(counts, dict) else {}
