"""The execution strategy contract: how the algorithm and its runners are run together.

The trainer hands a strategy two *bundles* — coroutine functions that already know their
agent, tracer, hooks and algorithm — plus the store and the number of runners. A strategy
only decides where each bundle runs (tasks of one event loop, other processes, other
machines) and how they are stopped:

- ``await algorithm(store, stop)`` runs the algorithm to completion;
- ``await runner(store, worker_id, stop)`` works the queue as store worker ``worker_id``
  until ``stop`` is set or its own ``max_rollouts`` budget is spent. The strategy names the
  workers: ``runner-<i>`` in one process, names unique across machines for ``cs``.

When the algorithm returns the strategy sets ``stop`` so runners finish their current
rollout and return. ``stop`` is anything with ``is_set()``/``set()``: a
:class:`threading.Event` in one process, a ``multiprocessing`` event across processes.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from agentlightning_core.store.base import LightningStore

__all__ = [
    "DEFAULT_WORKER_PREFIX",
    "AlgorithmBundle",
    "ExecutionStrategy",
    "RunnerBundle",
    "StopSignal",
    "single_exception",
]

DEFAULT_WORKER_PREFIX = "runner"


class StopSignal(Protocol):
    """A flag shared by the algorithm and runners (``threading.Event`` satisfies it)."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...


AlgorithmBundle = Callable[["LightningStore", StopSignal], Awaitable[None]]
"""``await algorithm(store, stop)``: run the algorithm until it is done."""

RunnerBundle = Callable[["LightningStore", str, StopSignal], Awaitable[None]]
"""``await runner(store, worker_id, stop)``: execute rollouts as store worker ``worker_id``
until ``stop`` is set. The strategy names its workers (``runner-<i>`` by default)."""


class ExecutionStrategy(ABC):
    """Runs an algorithm and its runners (in one process, across processes, ...)."""

    @abstractmethod
    def execute(
        self,
        algorithm: AlgorithmBundle,
        runner: RunnerBundle,
        store: LightningStore,
        *,
        n_runners: int = 1,
    ) -> None:
        """Run the algorithm and ``n_runners`` runners to completion; blocks until done.

        The strategy owns the store's lifecycle (``async with store``) where the store lives.
        An exception in the algorithm or any runner stops everything and is re-raised here;
        so is ``KeyboardInterrupt`` once runners have left the store consistent.
        """


def single_exception(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one meaningful exception of a task group, so a strategy re-raises it as itself:
    KeyboardInterrupt first, else the only exception that is not a cancellation, else ``group``."""
    leaves: list[BaseException] = []

    def walk(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                walk(inner)
        else:
            leaves.append(exc)

    walk(group)
    for exc in leaves:
        if isinstance(exc, KeyboardInterrupt):
            return exc
    real = [e for e in leaves if not isinstance(e, asyncio.CancelledError)]
    if len(real) == 1:
        return real[0]
    return group
