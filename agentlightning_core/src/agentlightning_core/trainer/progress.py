"""Live progress line of a training run (rollouts done / failed / running, mean reward)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

import anyio

from agentlightning_core.hooks import Hook
from agentlightning_core.spans import Span

__all__ = ["ProgressDisplay", "RewardTally"]


class RewardTally(Hook):
    """Counts final rewards of finished attempts in this process."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    def on_rollout_end(self, *, spans: Sequence[Span], **kwargs: Any) -> None:
        from agentlightning_core.emitter import find_final_reward

        reward = find_final_reward(spans)
        if reward is not None:
            self.total += reward
            self.count += 1

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


class ProgressDisplay:
    """Redraws one status line on ``stream`` every ``interval`` seconds from the store's counts."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.5) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.tally = RewardTally()
        self._width = 0

    async def run(self, store: Any) -> None:
        """Redraw until cancelled."""
        while True:
            await self.draw(store)
            await anyio.sleep(self.interval)

    async def draw(self, store: Any) -> None:
        by_status: dict[str, int] = (await store.statistics()).get("rollouts_by_status", {})
        mean = self.tally.mean
        line = (
            f"rollouts: {by_status.get('succeeded', 0)} done, {by_status.get('failed', 0)} failed, "
            f"{by_status.get('running', 0) + by_status.get('preparing', 0)} running, "
            f"{by_status.get('queuing', 0) + by_status.get('requeuing', 0)} queued | mean reward "
            + (f"{mean:.4f}" if mean is not None else "n/a")
        )
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        """End the status line."""
        if self._width:
            self.stream.write("\n")
            self.stream.flush()
