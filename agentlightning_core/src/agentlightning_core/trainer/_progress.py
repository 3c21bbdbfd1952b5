"""Live progress line of a training run (rollouts done / failed / running, mean reward).

Everything comes from the store the algorithm sees, so the line is the same whichever
process or machine ran the rollouts: counts from ``store.statistics()``, the mean of the
final rewards of finished rollouts (the reward their latest attempt recorded, as algorithms
read them).
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, TextIO

import anyio

from agentlightning_core.errors import NotFoundError

if TYPE_CHECKING:
    from agentlightning_core.store.base import LightningStore

__all__ = ["ProgressDisplay"]

logger = logging.getLogger(__name__)

_FINISHED = ("succeeded", "failed")
_PAGE = 256


class ProgressDisplay:
    """Redraws one status line on ``stream`` every ``interval`` seconds from the store."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.5) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.reward_total = 0.0
        self.reward_count = 0
        self._counted: set[str] = set()
        self._width = 0

    @property
    def mean_reward(self) -> float | None:
        return self.reward_total / self.reward_count if self.reward_count else None

    async def run(self, store: LightningStore) -> None:
        """Redraw until cancelled."""
        while True:
            await self.draw(store)
            await anyio.sleep(self.interval)

    async def draw(self, store: LightningStore) -> None:
        by_status: dict[str, int] = (await store.statistics()).get("rollouts_by_status", {})
        await self._tally(store, sum(by_status.get(s, 0) for s in _FINISHED))
        mean = self.mean_reward
        line = (
            f"rollouts: {by_status.get('succeeded', 0)} done, {by_status.get('failed', 0)} failed, "
            f"{by_status.get('running', 0) + by_status.get('preparing', 0)} running, "
            f"{by_status.get('queuing', 0) + by_status.get('requeuing', 0)} queued | mean reward "
            + (f"{mean:.4f}" if mean is not None else "n/a")
        )
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    async def _tally(self, store: LightningStore, finished: int) -> None:
        """Add the final rewards of rollouts finished since the last call (newest first)."""
        offset = 0
        while len(self._counted) < finished:
            limit = max(_PAGE, finished - len(self._counted))
            page = await store.query_rollouts(
                status_in=_FINISHED, sort_by="end_time", sort_order="desc", limit=limit, offset=offset
            )
            for rollout in page.items:
                if rollout.rollout_id in self._counted:
                    continue
                self._counted.add(rollout.rollout_id)
                try:
                    attempt = await store.get_latest_attempt(rollout.rollout_id)
                except NotFoundError:  # deleted meanwhile (retention)
                    logger.debug("Rollout %s is gone; not in the mean reward", rollout.rollout_id)
                    continue
                if attempt is not None and attempt.reward is not None:
                    self.reward_total += attempt.reward
                    self.reward_count += 1
            if len(page.items) < limit:
                break
            offset += limit

    def close(self) -> None:
        """End the status line."""
        if self._width:
            self.stream.write("\n")
            self.stream.flush()
