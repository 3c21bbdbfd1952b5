"""The runner contract: take rollouts from the store and execute the agent on them.

Lifecycle, driven by the trainer's runner bundle (or by hand for debugging)::

    runner.init(agent, hooks=hooks)          # once
    runner.init_worker(worker_id, store)     # once per worker
    await runner.iter(stop=stop)             # work the queue until stop.is_set()
    runner.teardown_worker(worker_id)
    runner.teardown()
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

import attrs

from agentlightning_core.resources import NamedResources
from agentlightning_core.spans import Span
from agentlightning_core.types import Attempt, Rollout, RolloutMode

if TYPE_CHECKING:
    from agentlightning_core.execution.base import StopSignal
    from agentlightning_core.hooks import Hook
    from agentlightning_core.litagent.base import LitAgent
    from agentlightning_core.store.base import LightningStore

__all__ = ["Runner", "StepResult"]

T_task = TypeVar("T_task")


@attrs.define(slots=True)
class StepResult:
    """What :meth:`Runner.step` returns: the finished rollout, its attempt and its record."""

    rollout: Rollout
    attempt: Attempt
    spans: list[Span]
    reward: float | None = None
    error: BaseException | None = None
    """The exception the agent raised, if it failed."""


class Runner(ABC, Generic[T_task]):
    """Base of runners: ``iter`` works the queue until stopped; ``step`` runs one task."""

    agent: LitAgent[T_task] | None = None
    hooks: tuple[Hook, ...] = ()
    worker_id: str | None = None
    store: LightningStore | None = None

    def init(self, agent: LitAgent[T_task], *, hooks: Sequence[Hook] = ()) -> None:
        """Attach the agent (and the trainer's hooks) this runner executes."""
        self.agent = agent
        self.hooks = tuple(hooks)
        agent.set_runner(self)

    def init_worker(self, worker_id: str, store: LightningStore) -> None:
        """Bind the runner to a worker id and the store it talks to."""
        self.worker_id = worker_id
        self.store = store

    def teardown_worker(self, worker_id: str) -> None:
        """Release what :meth:`init_worker` set up."""
        self.store = None

    def teardown(self) -> None:
        """Release what :meth:`init` set up."""
        self.agent = None

    @abstractmethod
    async def iter(self, *, stop: StopSignal | None = None) -> None:
        """Dequeue and execute rollouts until ``stop`` is set or ``max_rollouts`` is reached."""

    @abstractmethod
    async def step(
        self, task: T_task, *, resources: NamedResources | None = None, mode: RolloutMode | None = None
    ) -> StepResult:
        """Run the agent on one task outside the queue, for debugging; returns the finished rollout."""

    def _bound(self) -> tuple[LitAgent[T_task], LightningStore, str]:
        if self.agent is None:
            raise RuntimeError(f"{type(self).__name__} has no agent; call runner.init(agent) first")
        if self.store is None or self.worker_id is None:
            raise RuntimeError(
                f"{type(self).__name__} has no store; call runner.init_worker(worker_id, store) first"
            )
        return self.agent, self.store, self.worker_id
