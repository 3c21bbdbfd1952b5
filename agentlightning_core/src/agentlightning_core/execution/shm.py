""":class:`SharedMemoryExecutionStrategy` (``shm``): algorithm and runners as tasks of one event loop.

Everything shares one process and one store object, so there is no serialization and no
network hop. The algorithm ends the run: when it returns, the stop signal is set and
runners return after their current rollout. If every runner returns first (each spent its
``max_rollouts``), nobody is left to execute rollouts, so the algorithm is cancelled.

An exception in the algorithm or a runner cancels the others and is re-raised to the
caller as itself (not wrapped in an exception group), with its traceback. Ctrl+C cancels
every task; runners mark their in-flight attempts failed before the KeyboardInterrupt
reaches the caller, and the store is closed.
"""

from __future__ import annotations

import logging
import threading

import anyio

from agentlightning_core.execution.base import (
    DEFAULT_WORKER_PREFIX,
    AlgorithmBundle,
    ExecutionStrategy,
    RunnerBundle,
    single_exception,
)
from agentlightning_core.store.base import LightningStore
from agentlightning_core.validation import check_positive_int

__all__ = ["SharedMemoryExecutionStrategy"]

logger = logging.getLogger(__name__)


class SharedMemoryExecutionStrategy(ExecutionStrategy):
    """Run the algorithm and ``n_runners`` runners concurrently in this process."""

    def execute(
        self,
        algorithm: AlgorithmBundle,
        runner: RunnerBundle,
        store: LightningStore,
        *,
        n_runners: int = 1,
    ) -> None:
        check_positive_int("n_runners", n_runners)
        try:
            anyio.run(self._main, algorithm, runner, store, n_runners)
        except BaseExceptionGroup as group:
            raise single_exception(group) from None

    async def _main(
        self, algorithm: AlgorithmBundle, runner: RunnerBundle, store: LightningStore, n_runners: int
    ) -> None:
        stop = threading.Event()
        algorithm_scope = anyio.CancelScope()
        remaining = n_runners

        async def run_algorithm() -> None:
            with algorithm_scope:
                await algorithm(store, stop)
            stop.set()

        async def run_runner(index: int) -> None:
            nonlocal remaining
            await runner(store, f"{DEFAULT_WORKER_PREFIX}-{index}", stop)
            remaining -= 1
            if remaining == 0 and not stop.is_set():
                logger.warning(
                    "Every runner finished (max_rollouts reached) before the algorithm; stopping it"
                )
                stop.set()
                algorithm_scope.cancel()

        async with store, anyio.create_task_group() as tg:
            for index in range(n_runners):
                tg.start_soon(run_runner, index, name=f"runner-{index}")
            tg.start_soon(run_algorithm, name="algorithm")
