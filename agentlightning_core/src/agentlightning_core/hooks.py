"""Observer hooks of the runtime: :class:`Hook` objects and the plugin hooks, fired together.

A :class:`Hook` is handed to ``Trainer(hooks=[...])`` and sees the runs of that trainer;
a plugin's ``on_rollout_start`` etc. (see :mod:`agentlightning_core.hookspecs`) sees every
run of the process. Both receive the same keyword arguments and may be plain or ``async``.
A hook that raises is logged and does not stop the rollout: hooks observe, they do not steer.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentlightning_core.litagent.base import LitAgent
    from agentlightning_core.runner.base import Runner
    from agentlightning_core.spans import Span
    from agentlightning_core.tracer.base import Tracer
    from agentlightning_core.types import AttemptedRollout

__all__ = ["HOOK_NAMES", "Hook", "HookCaller"]

logger = logging.getLogger(__name__)

HOOK_NAMES = ("on_rollout_start", "on_trace_start", "on_trace_end", "on_rollout_end")


class Hook:
    """Base of trainer hooks; override any of the methods (plain or ``async``).

    Order for one attempt: ``on_rollout_start``, ``on_trace_start`` (trace context open),
    ``on_trace_end`` (context closed, with the spans it captured), ``on_rollout_end`` (final
    attempt status stored, with every span of the attempt).
    """

    def on_rollout_start(
        self, *, agent: LitAgent[Any], runner: Runner[Any], tracer: Tracer, rollout: AttemptedRollout
    ) -> Any:
        """Before the agent runs on ``rollout``."""

    def on_trace_start(
        self, *, agent: LitAgent[Any], runner: Runner[Any], tracer: Tracer, rollout: AttemptedRollout
    ) -> Any:
        """Right after the tracer's context for the attempt opened."""

    def on_trace_end(
        self,
        *,
        agent: LitAgent[Any],
        runner: Runner[Any],
        tracer: Tracer,
        rollout: AttemptedRollout,
        spans: Sequence[Span],
    ) -> Any:
        """Right after the tracer's context closed; ``spans`` are those it captured."""

    def on_rollout_end(
        self,
        *,
        agent: LitAgent[Any],
        runner: Runner[Any],
        tracer: Tracer,
        rollout: AttemptedRollout,
        spans: Sequence[Span],
    ) -> Any:
        """After the attempt's final status was stored; ``rollout.attempt`` carries it."""


class HookCaller:
    """Fires one runtime hook on the trainer's :class:`Hook` objects and the plugins."""

    def __init__(self, hooks: Sequence[Hook] = ()) -> None:
        for hook in hooks:
            if not isinstance(hook, Hook):
                raise TypeError(
                    f"hooks must be Hook instances (subclass agentlightning_core.Hook), got {hook!r}"
                )
        self.hooks = tuple(hooks)
        self._overridden = {
            name: tuple(
                getattr(h, name) for h in self.hooks if getattr(type(h), name) is not getattr(Hook, name)
            )
            for name in HOOK_NAMES
        }
        from agentlightning_core.plugins import get_plugin_manager

        self._plugin_hooks = get_plugin_manager().hook

    async def fire(self, name: str, **kwargs: Any) -> None:
        """Call hook ``name`` with ``kwargs`` on the plugins, then on the Hook objects."""
        caller = getattr(self._plugin_hooks, name)
        if caller.get_hookimpls():
            try:
                results = caller(**kwargs)
            except Exception:
                logger.exception("Plugin hook %s raised; continuing", name)
                results = []
            for result in results:  # an ``async def`` hookimpl returned its coroutine
                if inspect.isawaitable(result):
                    try:
                        await result
                    except Exception:
                        logger.exception("Plugin hook %s raised; continuing", name)
        for method in self._overridden[name]:
            try:
                result = method(**kwargs)
                if inspect.isawaitable(result):
                    await result
            except Exception:
                logger.exception("Hook %r.%s raised; continuing", method.__self__, name)
