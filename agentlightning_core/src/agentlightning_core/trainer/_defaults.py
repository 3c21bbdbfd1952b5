"""What the trainer applies to the store before its algorithm runs.

- :class:`DefaultConfigStore`: the algorithm's view of the store, filling in
  ``Trainer(rollout_config=...)`` for rollouts enqueued without a config;
- :func:`settle_unfinished_rollouts`: a durable store (a SQLite file) may still hold
  rollouts an earlier run left unfinished; a new run says so and cancels them unless asked
  to keep them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

import attrs

from agentlightning_core.types import RolloutConfig, RolloutStatus

if TYPE_CHECKING:
    from agentlightning_core.store.base import EnqueueRequest, LightningStore
    from agentlightning_core.types import AttemptedRollout, Rollout, RolloutMode

__all__ = ["UNFINISHED_STATUSES", "DefaultConfigStore", "settle_unfinished_rollouts"]

logger = logging.getLogger(__name__)

UNFINISHED_STATUSES = (
    RolloutStatus.QUEUING,
    RolloutStatus.REQUEUING,
    RolloutStatus.PREPARING,
    RolloutStatus.RUNNING,
)


class DefaultConfigStore:
    """Delegates everything to ``store``; enqueues without a config get ``config``."""

    def __init__(self, store: LightningStore, config: RolloutConfig) -> None:
        self._store = store
        self._config = config

    @classmethod
    def wrap(cls, store: LightningStore, config: RolloutConfig) -> LightningStore:
        return cast("LightningStore", cls(store, config))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _default(self) -> RolloutConfig:
        return attrs.evolve(self._config, retry_condition=list(self._config.retry_condition))

    async def enqueue_rollout(
        self,
        input: Any,
        mode: RolloutMode | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Rollout:
        return await self._store.enqueue_rollout(
            input, mode, resources_id, config or self._default(), metadata
        )

    async def start_rollout(
        self,
        input: Any,
        mode: RolloutMode | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | None = None,
        metadata: dict[str, Any] | None = None,
        worker_id: str | None = None,
    ) -> AttemptedRollout:
        return await self._store.start_rollout(
            input, mode, resources_id, config or self._default(), metadata, worker_id
        )

    async def enqueue_many_rollouts(self, requests: Sequence[EnqueueRequest]) -> list[Rollout]:
        filled = [r if r.config is not None else attrs.evolve(r, config=self._default()) for r in requests]
        return await self._store.enqueue_many_rollouts(filled)


async def settle_unfinished_rollouts(store: LightningStore, policy: str) -> list[str]:
    """Cancel (``policy="cancel"``) or keep the rollouts ``store`` holds unfinished; returns their ids.

    Either way one WARNING says how many there were and how to choose the other way.
    """
    unfinished = (await store.query_rollouts(status_in=UNFINISHED_STATUSES)).items
    ids = [r.rollout_id for r in unfinished]
    if not ids:
        return ids
    shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
    if policy == "keep":
        logger.warning(
            "The store holds %d unfinished rollout(s) of an earlier run (%s); keeping them queued, so this "
            "run's runners execute them too (Trainer(unfinished_rollouts='keep'))",
            len(ids),
            shown,
        )
        return ids
    for rollout_id in ids:
        await store.update_rollout(rollout_id, status=RolloutStatus.CANCELLED)
    logger.warning(
        "The store holds %d unfinished rollout(s) of an earlier run (%s); marked them cancelled (kept, not run). "
        "Give Trainer(unfinished_rollouts='keep') to let this run execute them instead.",
        len(ids),
        shown,
    )
    return ids
