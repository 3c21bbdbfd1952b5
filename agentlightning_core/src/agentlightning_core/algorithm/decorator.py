"""``@algo``: a plain (sync or async) function as an algorithm.

The function declares what it needs by parameter name, all optional: ``train_dataset``,
``val_dataset``, ``store``, ``adapter``, ``initial_resources``, ``trainer``, ``algorithm``
(the wrapping :class:`FunctionalAlgorithm`, e.g. for ``stop_requested``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from agentlightning_core.algorithm.base import Algorithm

__all__ = ["FunctionalAlgorithm", "algo"]

_INJECTABLE = (
    "train_dataset",
    "val_dataset",
    "store",
    "adapter",
    "initial_resources",
    "trainer",
    "algorithm",
)


class FunctionalAlgorithm(Algorithm):
    """An algorithm made from a function by :func:`algo`; calling it calls the function."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.func = func
        try:
            params = inspect.signature(func).parameters.values()
        except (TypeError, ValueError) as exc:
            raise TypeError(f"@algo: cannot read the signature of {func!r}: {exc}") from None
        unknown = [
            p.name
            for p in params
            if p.name not in _INJECTABLE or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY)
        ]
        if unknown:
            raise TypeError(
                f"@algo cannot use {getattr(func, '__qualname__', func)!r}: parameter(s) {unknown} are not injectable. "
                f"Declare any of {', '.join(_INJECTABLE)} by name, e.g. `async def my_algo(store, train_dataset): ...`"
            )
        self._params = tuple(p.name for p in params)
        self._async = inspect.iscoroutinefunction(func)
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def is_async(self) -> bool:
        return self._async

    def _kwargs(
        self, train_dataset: Sequence[Any] | None, val_dataset: Sequence[Any] | None
    ) -> dict[str, Any]:
        getters: dict[str, Callable[[], Any]] = {
            "train_dataset": lambda: train_dataset,
            "val_dataset": lambda: val_dataset,
            "store": self.get_store,
            "adapter": self.get_adapter,
            "initial_resources": self.get_initial_resources,
            "trainer": self.get_trainer,
            "algorithm": lambda: self,
        }
        return {name: getters[name]() for name in self._params}

    def run(
        self, train_dataset: Sequence[Any] | None = None, val_dataset: Sequence[Any] | None = None
    ) -> Awaitable[None] | None:
        return self.func(**self._kwargs(train_dataset, val_dataset))  # type: ignore[no-any-return]


def algo(func: Callable[..., Any]) -> FunctionalAlgorithm:
    """Turn ``func`` into an algorithm; see the module docs for the parameters it may declare."""
    return FunctionalAlgorithm(func)
