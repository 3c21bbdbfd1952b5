"""Hook specifications of Agent Lightning plugins.

A plugin is a module (or object) with functions decorated by ``agentlightning_core.hookimpl``
and named after the hooks below. Distributions expose plugins through the ``agentlightning``
entry-point group. Hooks are always called with keyword arguments; they evolve by adding
arguments, never by renaming them. (Specs are not declared keyword-only: pluggy matches
arguments by the names of positional parameters.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import argparse

    from agentlightning_core.litagent.base import LitAgent
    from agentlightning_core.runner.base import Runner
    from agentlightning_core.spans import Span
    from agentlightning_core.tracer.base import Tracer
    from agentlightning_core.types import AttemptedRollout

__all__ = ["PROJECT_NAME", "Register", "hookimpl", "hookspec"]

PROJECT_NAME = "agentlightning"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

Register = Callable[[str, "Callable[..., Any] | str"], None]
"""``register(name, factory)``: ``factory`` is a class, a callable returning a component,
or a lazy ``"package.module:attribute"`` path imported on first use."""


# --- registration hooks: one per component kind -------------------------------------


@hookspec
def register_algorithms(register: Register) -> None:
    """Register algorithm components (subclasses of :class:`Algorithm`).

    :param register: Call ``register(name, factory)`` once per algorithm. ``name`` is what
        users write, e.g. ``Trainer(algorithm="apo")``; it must be unique across plugins.
    """


@hookspec
def register_adapters(register: Register) -> None:
    """Register adapter components (subclasses of :class:`Adapter`).

    :param register: Call ``register(name, factory)`` once per adapter.
    """


@hookspec
def register_tracers(register: Register) -> None:
    """Register tracer components (subclasses of :class:`Tracer`).

    :param register: Call ``register(name, factory)`` once per tracer.
    """


@hookspec
def register_stores(register: Register) -> None:
    """Register store components (subclasses of :class:`LightningStore`).

    :param register: Call ``register(name, factory)`` once per store, e.g.
        ``register("sqlite", "agentlightning_sqlite.store:SqliteLightningStore")``.
    """


@hookspec
def register_execution_strategies(register: Register) -> None:
    """Register execution strategies (subclasses of :class:`ExecutionStrategy`).

    :param register: Call ``register(name, factory)`` once per strategy.
    """


@hookspec
def register_runners(register: Register) -> None:
    """Register runner components (subclasses of :class:`Runner`).

    :param register: Call ``register(name, factory)`` once per runner.
    """


@hookspec
def register_integrations(register: Register) -> None:
    """Register agent-framework integrations: ``factory(tracer)`` returns what the framework
    needs to record into ``tracer``'s traces (``langchain``: a callback handler, see
    :meth:`Tracer.get_langchain_handler`).

    :param register: Call ``register(name, factory)`` once per integration.
    """


# --- command line -----------------------------------------------------------------------


@hookspec
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``agl`` subcommands: the core's command line never names a plugin.

    Each command is a parser added with ``subparsers.add_parser(name, help=...)``; its
    ``handler`` default (``parser.set_defaults(handler=fn)``) is called with the parsed
    ``argparse.Namespace`` and returns the exit code. Raise an exception with a clear message
    for a user error: ``agl`` prints it as one line and exits with code 1. Import heavy
    modules inside the handler, not here: every ``agl`` call builds every parser.

    :param subparsers: The ``agl`` parser's subparsers (from ``add_subparsers()``). A
        command name taken by the core or another plugin is an error naming the plugin.
    """


# --- runtime observer hooks ------------------------------------------------------------


@hookspec
def on_rollout_start(
    agent: LitAgent[Any], rollout: AttemptedRollout, runner: Runner[Any], tracer: Tracer
) -> None:
    """Called by a runner right before it runs the agent on a rollout.

    :param agent: The agent being run.
    :param rollout: The rollout with the attempt about to run.
    :param runner: The runner executing it.
    :param tracer: The tracer that will record the attempt.
    """


@hookspec
def on_rollout_end(
    agent: LitAgent[Any],
    rollout: AttemptedRollout,
    spans: Sequence[Span],
    runner: Runner[Any],
    tracer: Tracer,
) -> None:
    """Called by a runner after the agent returned (or raised) and its spans were stored.

    :param agent: The agent being run.
    :param rollout: The rollout whose attempt just ended; ``rollout.attempt`` has its final status.
    :param spans: Every span recorded for the attempt, in sequence order.
    :param runner: The runner that executed it.
    :param tracer: The tracer that recorded it.
    """


@hookspec
def on_trace_start(
    agent: LitAgent[Any], rollout: AttemptedRollout, runner: Runner[Any], tracer: Tracer
) -> None:
    """Called when the tracer's trace context for an attempt opens.

    :param agent: The agent being run.
    :param rollout: The rollout being traced.
    :param runner: The runner executing it.
    :param tracer: The tracer whose context just opened.
    """


@hookspec
def on_trace_end(
    agent: LitAgent[Any],
    rollout: AttemptedRollout,
    spans: Sequence[Span],
    runner: Runner[Any],
    tracer: Tracer,
) -> None:
    """Called when the tracer's trace context for an attempt closes.

    :param agent: The agent being run.
    :param rollout: The rollout being traced.
    :param spans: The spans the tracer captured inside the context.
    :param runner: The runner executing it.
    :param tracer: The tracer whose context just closed.
    """
