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
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

import anyio

from agentlightning_core.types import AttemptStatus

if TYPE_CHECKING:
    from agentlightning_core.store.base import LightningStore

__all__ = [
    "DEAD_RUNNER_STATUS",
    "DEFAULT_WORKER_PREFIX",
    "AlgorithmBundle",
    "ExecutionStrategy",
    "RunnerBundle",
    "StopSignal",
    "release_dead_runner_attempt",
    "single_exception",
]

logger = logging.getLogger(__name__)

DEFAULT_WORKER_PREFIX = "runner"

DEAD_RUNNER_STATUS = AttemptStatus.UNRESPONSIVE
"""What the attempt of a runner that died becomes, so its rollout is retried per its
``RolloutConfig``. Not ``failed`` (the agent failed) but ``unresponsive``, as when the store's
watchdog notices a lost worker: one ``retry_condition`` entry covers both."""


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


async def release_dead_runner_attempt(
    store: LightningStore, worker_id: str, *, cause: str = "which died", timeout: float = 5.0
) -> bool:
    """Mark the attempt that store worker ``worker_id`` (a runner that died) was running
    :data:`DEAD_RUNNER_STATUS`, so its rollout is requeued or failed per its config, without
    waiting for the store's watchdog. Returns whether an attempt was marked.

    Errors (the store unreachable too, ``timeout`` seconds passed) are logged, not raised; an
    attempt that already ended or was superseded is left alone. ``cause`` ends the log line's
    "(runner <id>, ...)".
    """
    try:
        with anyio.fail_after(timeout):
            worker = await store.get_worker_by_id(worker_id)
            rollout_id, attempt_id = worker.current_rollout_id, worker.current_attempt_id
            if rollout_id is None or attempt_id is None:
                return False
            latest = await store.get_latest_attempt(rollout_id)
            if latest is None or latest.attempt_id != attempt_id or latest.is_terminal:
                return False  # already ended (or superseded): nothing is left hanging
            await store.update_attempt(rollout_id, attempt_id, status=DEAD_RUNNER_STATUS)
    except LookupError:
        return False  # the runner died before it registered as a worker
    except Exception as exc:  # e.g. the server is gone too: the store's watchdog is left
        logger.warning(
            "Could not mark the attempt of dead runner %s %s: %r", worker_id, DEAD_RUNNER_STATUS, exc
        )
        return False
    logger.warning(
        "Attempt %s of rollout %s (runner %s, %s) marked %s",
        attempt_id,
        rollout_id,
        worker_id,
        cause,
        DEAD_RUNNER_STATUS,
    )
    return True
