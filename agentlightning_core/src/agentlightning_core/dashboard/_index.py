"""What the dashboard reads from a store, in the shapes its pages show.

Everything goes through the public :class:`LightningStore` contract, so the dashboard works
on every backend (memory, SQLite, another server over HTTP). The one thing the contract
cannot answer quickly is "the reward of every rollout": it lives on each rollout's latest
attempt. :class:`RewardIndex` keeps it for finished rollouts, which never change again
(unless requeued), and catches up incrementally: a refresh reads only the rollouts that
finished since the last one, so after the first page the cost is proportional to the new
rollouts, not to the run.
"""

from __future__ import annotations

import logging
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

import anyio
import attrs

from agentlightning_core.store.base import LightningStore
from agentlightning_core.types import Rollout

__all__ = [
    "STEP_KEY",
    "TERMINAL",
    "RewardIndex",
    "RewardPoint",
    "RolloutFilter",
    "RolloutRow",
    "rollout_step",
]

logger = logging.getLogger(__name__)

STEP_KEY = "step"
"""Rollout metadata key naming the algorithm step (APO round, Baseline epoch) it belongs to."""

TERMINAL = ("succeeded", "failed", "cancelled")
_ACTIVE = ("queuing", "preparing", "running", "requeuing")
_CHUNK = 1000
_OVERLAP = 64
"""Finished rollouts re-read at each refresh, to catch one requeued and finished again."""
_ACTIVE_CAP = 10_000
"""Most unfinished rollouts a filtered listing reads (queues are normally far smaller)."""


def rollout_step(rollout: Rollout) -> int | None:
    """The algorithm step a rollout was tagged with (metadata ``step``), None when untagged."""
    value = (rollout.metadata or {}).get(STEP_KEY)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(value)


@attrs.define(slots=True)
class RolloutRow:
    """One line of the rollouts table."""

    rollout_id: str
    status: str
    mode: str | None
    resources_id: str | None
    start_time: float
    end_time: float | None
    step: int | None
    reward: float | None

    @classmethod
    def of(cls, rollout: Rollout, reward: float | None, resources_id: str | None = None) -> RolloutRow:
        return cls(
            rollout.rollout_id,
            str(rollout.status),
            rollout.mode,
            resources_id or rollout.resources_id,
            rollout.start_time,
            rollout.end_time,
            rollout_step(rollout),
            reward,
        )


@attrs.define(frozen=True)
class RolloutFilter:
    """The filters of the rollouts page; a field left None does not filter."""

    status: str | None = None
    mode: str | None = None
    resources_id: str | None = None
    step: int | None = None
    reward_min: float | None = None
    reward_max: float | None = None

    @property
    def store_only(self) -> bool:
        """True when the store can answer alone (status, or nothing, filters)."""
        return (
            self.mode is None
            and self.resources_id is None
            and self.step is None
            and self.reward_min is None
            and self.reward_max is None
        )

    def matches(self, row: RolloutRow) -> bool:
        if self.status is not None and row.status != self.status:
            return False
        if self.mode is not None and row.mode != self.mode:
            return False
        if self.resources_id is not None and row.resources_id != self.resources_id:
            return False
        if self.step is not None and row.step != self.step:
            return False
        if self.reward_min is not None and (row.reward is None or row.reward < self.reward_min):
            return False
        return not (self.reward_max is not None and (row.reward is None or row.reward > self.reward_max))


@attrs.define(frozen=True)
class RewardPoint:
    """Rewards of one group of finished rollouts (a step of one mode, or a resources version)."""

    key: Any
    count: int
    rewarded: int
    mean: float | None
    minimum: float | None
    maximum: float | None

    @classmethod
    def of(cls, key: Any, rows: Sequence[RolloutRow]) -> RewardPoint:
        rewards = [r.reward for r in rows if r.reward is not None]
        if not rewards:
            return cls(key, len(rows), 0, None, None, None)
        return cls(key, len(rows), len(rewards), statistics.fmean(rewards), min(rewards), max(rewards))


class RewardIndex:
    """Finished rollouts with their final reward, refreshed incrementally from ``store``.

    :param min_refresh_seconds: once caught up, a refresh within this many seconds of the
        last one reuses it, so a burst of page loads reads the store once.
    :param budget_seconds: most time one refresh spends reading (None: no limit); a large
        store is then read over several page loads, which show how far it got, so no page
        waits for the whole store.
    """

    def __init__(
        self, store: LightningStore, *, min_refresh_seconds: float = 1.0, budget_seconds: float | None = 0.15
    ) -> None:
        self.store = store
        self.min_refresh_seconds = min_refresh_seconds
        self.budget_seconds = budget_seconds
        self.finished_total = 0
        """Finished rollouts in the store at the last refresh."""
        self._rows: dict[str, RolloutRow] = {}
        self._seen = 0  # finished rollouts read so far, in end-time order
        self._refreshed = -math.inf
        self._lock = anyio.Lock()

    @property
    def read(self) -> int:
        """Finished rollouts read so far (``finished_total`` once caught up)."""
        return min(self._seen, self.finished_total)

    @property
    def complete(self) -> bool:
        return self._seen >= self.finished_total

    def get(self, rollout_id: str) -> RolloutRow | None:
        return self._rows.get(rollout_id)

    async def refresh(self, *, force: bool = False) -> None:
        """Read the rollouts that finished since the last refresh (within the time budget)."""
        async with self._lock:
            now = time.monotonic()
            if not force and self.complete and now - self._refreshed < self.min_refresh_seconds:
                return
            deadline = math.inf if self.budget_seconds is None else now + self.budget_seconds
            offset = max(0, self._seen - _OVERLAP) if self.complete else self._seen
            while True:  # one query at least: it tells how many rollouts finished
                page = await self.store.query_rollouts(
                    status_in=list(TERMINAL), sort_by="end_time", limit=_CHUNK, offset=offset
                )
                self.finished_total = page.total
                if page.total < offset:  # rollouts left the finished set (requeued): start over
                    logger.info(
                        "Finished rollouts went from %d to %d: rereading them", self._seen, page.total
                    )
                    self._rows.clear()
                    self._seen = offset = 0
                    continue
                for rollout in page.items:
                    if time.monotonic() >= deadline:
                        break
                    known = self._rows.get(rollout.rollout_id)
                    if known is None or known.end_time != rollout.end_time or known.status != rollout.status:
                        attempt = await self.store.get_latest_attempt(rollout.rollout_id)
                        self._rows[rollout.rollout_id] = RolloutRow.of(
                            rollout,
                            attempt.reward if attempt is not None else None,
                            attempt.resources_id if attempt is not None else None,
                        )
                    offset += 1
                self._seen = max(self._seen, offset)
                if len(page.items) < _CHUNK or offset >= page.total or time.monotonic() >= deadline:
                    break
            self._refreshed = time.monotonic()

    # --- the pages' questions ------------------------------------------------------------

    async def rollouts(self, flt: RolloutFilter, *, limit: int, offset: int) -> tuple[list[RolloutRow], int]:
        """A page of rollouts matching ``flt``, newest first, and how many match in all."""
        if flt.store_only:
            page = await self.store.query_rollouts(
                status_in=[flt.status] if flt.status else None,
                sort_by="start_time",
                sort_order="desc",
                limit=limit,
                offset=offset,
            )
            return [await self._row(r) for r in page.items], page.total
        await self.refresh()
        active = await self.store.query_rollouts(status_in=list(_ACTIVE), limit=_ACTIVE_CAP)
        running = {r.rollout_id for r in active.items}  # requeued ones are no longer finished
        rows = [r for r in self._rows.values() if r.rollout_id not in running and flt.matches(r)]
        rows += [row for r in active.items if flt.matches(row := RolloutRow.of(r, None))]
        rows.sort(key=lambda r: r.start_time, reverse=True)
        return rows[offset : offset + limit], len(rows)

    async def _row(self, rollout: Rollout) -> RolloutRow:
        known = self._rows.get(rollout.rollout_id)
        if known is not None and known.status == str(rollout.status) and known.end_time == rollout.end_time:
            return known
        attempt = await self.store.get_latest_attempt(rollout.rollout_id)
        return RolloutRow.of(
            rollout,
            attempt.reward if attempt is not None else None,
            attempt.resources_id if attempt is not None else None,
        )

    async def reward_by_step(self) -> dict[str, list[RewardPoint]]:
        """Per mode (``train``, ``val``, ...), the rewards of each tagged step, in step order."""
        await self.refresh()
        groups: dict[str, dict[int, list[RolloutRow]]] = {}
        for row in self._rows.values():
            if row.step is not None:
                groups.setdefault(row.mode or "none", {}).setdefault(row.step, []).append(row)
        return {
            mode: [RewardPoint.of(step, rows) for step, rows in sorted(steps.items())]
            for mode, steps in sorted(groups.items())
        }

    async def reward_by_resources(self) -> dict[str, RewardPoint]:
        """The rewards of the finished rollouts that ran on each resources version."""
        await self.refresh()
        groups: dict[str, list[RolloutRow]] = {}
        for row in self._rows.values():
            if row.resources_id is not None:
                groups.setdefault(row.resources_id, []).append(row)
        return {rid: RewardPoint.of(rid, rows) for rid, rows in groups.items()}
