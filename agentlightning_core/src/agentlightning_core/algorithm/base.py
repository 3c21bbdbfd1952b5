"""The algorithm contract: improve resources from what runners record.

The trainer wires an algorithm before running it: :meth:`Algorithm.set_store`,
:meth:`Algorithm.set_adapter`, :meth:`Algorithm.set_initial_resources` and
:meth:`Algorithm.set_trainer`; ``run`` then reads them through the getters.
"""

from __future__ import annotations

import inspect
import weakref
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentlightning_core.adapter.base import Adapter
    from agentlightning_core.execution.base import StopSignal
    from agentlightning_core.resources import NamedResources
    from agentlightning_core.store.base import LightningStore
    from agentlightning_core.trainer.trainer import Trainer

__all__ = ["DEFAULT_ADAPTER", "Algorithm"]

DEFAULT_ADAPTER = "tracer_triplet"


class Algorithm(ABC):
    """Base of algorithms. ``run`` may be a plain or an ``async`` method.

    An ``async`` run shares the event loop with the runners (the shared-memory strategy);
    a plain run executes in a worker thread and should check :attr:`stop_requested` in its
    loops so Ctrl+C can end it.
    """

    _trainer_ref: weakref.ReferenceType[Trainer] | None = None
    _store: LightningStore | None = None
    _adapter: Adapter[Any, Any] | None = None
    _initial_resources: NamedResources | None = None
    _stop: StopSignal | None = None

    @abstractmethod
    def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> Awaitable[None] | None:
        """Drive training: enqueue rollouts, read results, publish improved resources."""

    def is_async(self) -> bool:
        """Whether :meth:`run` is a coroutine function."""
        return inspect.iscoroutinefunction(self.run)

    # --- wiring (set by the trainer) ---------------------------------------------------

    def set_trainer(self, trainer: Trainer) -> None:
        self._trainer_ref = weakref.ref(trainer)

    def get_trainer(self) -> Trainer:
        trainer = self._trainer_ref() if self._trainer_ref is not None else None
        if trainer is None:
            raise RuntimeError(
                f"{type(self).__name__} is not attached to a Trainer; run it with trainer.fit(...)"
            )
        return trainer

    def set_store(self, store: LightningStore) -> None:
        self._store = store

    def get_store(self) -> LightningStore:
        if self._store is None:
            raise RuntimeError(
                f"{type(self).__name__} has no store; run it with trainer.fit(...) or call set_store(store) first"
            )
        return self._store

    def set_adapter(self, adapter: Adapter[Any, Any] | None) -> None:
        self._adapter = adapter

    def get_adapter(self) -> Adapter[Any, Any]:
        """The trainer's adapter; without one, the default adapter (``"tracer_triplet"``)."""
        if self._adapter is None:
            from agentlightning_core.adapter.base import Adapter
            from agentlightning_core.plugins import resolve_component

            self._adapter = resolve_component("adapter", DEFAULT_ADAPTER, base=Adapter)
        return self._adapter

    def set_initial_resources(self, resources: NamedResources | None) -> None:
        self._initial_resources = resources

    def get_initial_resources(self) -> NamedResources | None:
        return self._initial_resources

    def set_stop_signal(self, stop: StopSignal | None) -> None:
        self._stop = stop

    @property
    def stop_requested(self) -> bool:
        """True once the execution strategy asked everything to stop."""
        return self._stop is not None and self._stop.is_set()
