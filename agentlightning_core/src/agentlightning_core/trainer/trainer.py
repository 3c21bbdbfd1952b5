""":class:`Trainer`: resolve components, check the inputs, run the execution strategy.

Every component argument accepts any spec form of
:func:`agentlightning_core.plugins.resolve_component`: an instance, a class, a factory, a
registered name (``"sqlite"``), a dict ``{"type": name, **kwargs}`` or ``"pkg.module:Class"``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import anyio
import attrs

from agentlightning_core._deprecation import warn_deprecated
from agentlightning_core.adapter.base import Adapter
from agentlightning_core.algorithm.base import Algorithm
from agentlightning_core.algorithm.fast import FastAlgorithm
from agentlightning_core.execution.base import ExecutionStrategy, StopSignal
from agentlightning_core.hooks import Hook
from agentlightning_core.litagent.base import LitAgent, missing_resources
from agentlightning_core.plugins import ComponentSpec, resolve_component
from agentlightning_core.resources import NamedResources, ResourcesUpdate
from agentlightning_core.runner.agent import reset_failure_log
from agentlightning_core.runner.base import Runner
from agentlightning_core.store.base import LightningStore
from agentlightning_core.tracer.base import Tracer
from agentlightning_core.trainer._defaults import DefaultConfigStore, settle_unfinished_rollouts
from agentlightning_core.trainer._interrupt import interrupt_message, sigterm_as_interrupt
from agentlightning_core.trainer._progress import ProgressDisplay
from agentlightning_core.types import RolloutConfig
from agentlightning_core.validation import check_positive_int

__all__ = ["Trainer"]

logger = logging.getLogger(__name__)

SYNC_ALGORITHM_JOIN_SECONDS = 10.0
"""How long a cancelled run waits for a sync algorithm's thread to return."""

DEFAULTS = {
    "store": "memory",
    "tracer": "otel",
    "execution_strategy": "shm",
    "runner": "agent",
}

UnfinishedPolicy = Literal["cancel", "keep"]


class Trainer:
    """Runs an algorithm and ``n_runners`` runners of an agent against one store.

    :param algorithm: what ``fit`` runs (e.g. ``"baseline"``); ``dev`` defaults to a
        :class:`FastAlgorithm`.
    :param runner: runner spec (default ``"agent"``: :class:`LitAgentRunner`); one runner is
        created per worker, so give a name, class or dict when ``n_runners > 1``.
    :param tracer: tracer spec (default ``"otel"``), shared by the runners of a process.
    :param adapter: adapter spec handed to the algorithm (default: ``"tracer_triplet"``, resolved when the
        algorithm first calls ``get_adapter``).
    :param store: store spec (default ``"memory"``).
    :param strategy: execution strategy spec (default ``"shm"``).
    :param n_runners: runners executing rollouts concurrently.
    :param max_rollouts: each runner stops after this many rollouts (None: no limit).
    :param initial_resources: resources published to the store before the algorithm starts.
    :param hooks: :class:`Hook` objects fired by every runner.
    :param progress: show a live progress line on stderr; None: only when stderr is a terminal.
    :param rollout_config: the :class:`RolloutConfig` of rollouts the algorithm enqueues
        without one (default: the store's, ``RolloutConfig()``).
    :param unfinished_rollouts: what a run does with rollouts a durable store still holds
        unfinished from an earlier run: ``"cancel"`` (default: marked ``cancelled``, kept,
        not run) or ``"keep"`` (left queued, so this run's runners execute them too).
    :param n_workers: deprecated name of ``n_runners``.
    """

    def __init__(
        self,
        *,
        algorithm: ComponentSpec[Algorithm] | None = None,
        runner: ComponentSpec[Runner[Any]] | None = None,
        tracer: ComponentSpec[Tracer] | None = None,
        adapter: ComponentSpec[Adapter[Any, Any]] | None = None,
        store: ComponentSpec[LightningStore] | None = None,
        strategy: ComponentSpec[ExecutionStrategy] | None = None,
        n_runners: int | None = None,
        max_rollouts: int | None = None,
        initial_resources: NamedResources | None = None,
        hooks: Sequence[Hook] | None = None,
        progress: bool | None = None,
        rollout_config: RolloutConfig | None = None,
        unfinished_rollouts: UnfinishedPolicy = "cancel",
        n_workers: int | None = None,
    ) -> None:
        if n_workers is not None:
            warn_deprecated(
                "trainer:n_workers",
                f"Trainer(n_workers={n_workers!r}) is the earlier name; write Trainer(n_runners={n_workers!r})",
            )
            n_runners = _one_count(n_runners, n_workers, "n_workers")
        if isinstance(strategy, Mapping) and "n_runners" in strategy:
            strategy = dict(strategy)
            in_strategy = strategy.pop("n_runners")
            warn_deprecated(
                "trainer:strategy.n_runners",
                f"strategy={{..., 'n_runners': {in_strategy!r}}} is the earlier form; write "
                f"Trainer(n_runners={in_strategy!r}, strategy={strategy!r})",
            )
            n_runners = _one_count(n_runners, in_strategy, "strategy['n_runners']")
        self.n_runners = check_positive_int("n_runners", 1 if n_runners is None else n_runners)
        if rollout_config is not None and not isinstance(rollout_config, RolloutConfig):
            raise TypeError(
                f"rollout_config must be an agentlightning_core.RolloutConfig, got {type(rollout_config).__name__} "
                f"{rollout_config!r:.80}; e.g. RolloutConfig(max_attempts=3, retry_condition=['failed'])"
            )
        self.rollout_config = rollout_config
        if unfinished_rollouts not in ("cancel", "keep"):
            raise ValueError(f"unfinished_rollouts must be 'cancel' or 'keep', got {unfinished_rollouts!r}")
        self.unfinished_rollouts: UnfinishedPolicy = unfinished_rollouts
        self.max_rollouts = check_positive_int("max_rollouts", max_rollouts, allow_none=True)
        self.store: LightningStore = resolve_component("store", _spec(store, "store"), base=LightningStore)
        self.tracer_spec: Any = _spec(tracer, "tracer")
        self.tracer: Tracer = resolve_component("tracer", self.tracer_spec, base=Tracer)
        # None: the algorithm resolves the default adapter ("tracer_triplet") when it first asks for one.
        self.adapter: Adapter[Any, Any] | None = (
            None if adapter is None else resolve_component("adapter", adapter, base=Adapter)
        )
        self.strategy: ExecutionStrategy = resolve_component(
            "execution_strategy", _spec(strategy, "execution_strategy"), base=ExecutionStrategy
        )
        self.algorithm: Algorithm | None = (
            None if algorithm is None else resolve_component("algorithm", algorithm, base=Algorithm)
        )
        self.runner_spec: Any = _spec(runner, "runner")
        if isinstance(self.runner_spec, Runner) and self.n_runners > 1:
            raise ValueError(
                f"runner={self.runner_spec!r} is one instance but n_runners={self.n_runners}; each runner needs its "
                f"own instance, so give a name, class or dict (e.g. runner='agent')"
            )
        self.initial_resources: NamedResources | None = (
            None if initial_resources is None else _check_resources(initial_resources)
        )
        self.hooks: tuple[Hook, ...] = tuple(hooks or ())
        for hook in self.hooks:
            if not isinstance(hook, Hook):
                raise TypeError(
                    f"hooks must be Hook instances (subclass agentlightning_core.Hook), got {hook!r}"
                )
        self.progress = progress

    @classmethod
    def from_config(
        cls, config: str | os.PathLike[str] | Mapping[str, Any], overrides: Sequence[str] = ()
    ) -> Trainer:
        """A trainer of the ``[trainer]`` table of a TOML/YAML file or dict (see
        :mod:`agentlightning_core.trainer.config`); ``overrides`` are ``"key=value"`` strings."""
        from agentlightning_core.trainer.config import load_config

        return load_config(config, overrides).build_trainer()

    # --- public doors -----------------------------------------------------------------

    def fit(
        self,
        agent: LitAgent[Any],
        train_dataset: Sequence[Any] | None = None,
        val_dataset: Sequence[Any] | None = None,
    ) -> Algorithm:
        """Train: run the algorithm and runners until the algorithm returns; returns the algorithm."""
        if self.algorithm is None:
            raise ValueError(
                "Trainer.fit needs an algorithm: give Trainer(algorithm='baseline') (or any Algorithm); "
                "for a quick dry run of the agent use trainer.dev(agent, dataset)"
            )
        return self._run(self.algorithm, agent, train_dataset, val_dataset)

    def dev(
        self,
        agent: LitAgent[Any],
        train_dataset: Sequence[Any] | None = None,
        val_dataset: Sequence[Any] | None = None,
    ) -> Algorithm:
        """A quick dry run: each task once with a :class:`FastAlgorithm` (or the trainer's, if fast)."""
        algorithm = self.algorithm if isinstance(self.algorithm, FastAlgorithm) else FastAlgorithm()
        if self.algorithm is not None and algorithm is not self.algorithm:
            logger.info(
                "Trainer.dev runs a FastAlgorithm instead of %s (not a FastAlgorithm)",
                type(self.algorithm).__name__,
            )
        return self._run(algorithm, agent, train_dataset, val_dataset)

    # --- internals ----------------------------------------------------------------------

    def _run(
        self,
        algorithm: Algorithm,
        agent: LitAgent[Any],
        train_dataset: Sequence[Any] | None,
        val_dataset: Sequence[Any] | None,
    ) -> Algorithm:
        self._check(agent, train_dataset, val_dataset)
        reset_failure_log()
        show = sys.stderr.isatty() if self.progress is None else self.progress
        display = ProgressDisplay() if show else None
        agent.set_trainer(self)
        algorithm.set_trainer(self)
        algorithm_bundle = _AlgorithmBundle(
            algorithm,
            self.adapter,
            self.initial_resources,
            train_dataset,
            val_dataset,
            display,
            self.rollout_config,
            self.unfinished_rollouts,
        )
        runner_bundle = _RunnerBundle(
            agent, self.runner_spec, self.tracer, self.hooks, self.max_rollouts, self.tracer_spec
        )
        self.tracer.init()
        try:
            with sigterm_as_interrupt() as signals:
                self.strategy.execute(algorithm_bundle, runner_bundle, self.store, n_runners=self.n_runners)
        except KeyboardInterrupt as exc:
            raise interrupt_message(exc, signals[0] if signals else "Ctrl+C (SIGINT)") from None
        finally:
            if display is not None:
                display.close()
            self.tracer.teardown()
        return algorithm

    def _check(
        self, agent: Any, train_dataset: Sequence[Any] | None, val_dataset: Sequence[Any] | None
    ) -> None:
        if not isinstance(agent, LitAgent):
            if isinstance(agent, type) and issubclass(agent, LitAgent):
                hint = f"instantiate it: trainer.fit({agent.__name__}(), ...)"
            elif callable(agent):
                hint = (
                    f"decorate {getattr(agent, '__name__', 'the function')} with @agentlightning_core.rollout"
                )
            else:
                hint = "subclass agentlightning_core.LitAgent or decorate a function with @rollout"
            raise TypeError(
                f"agent must be a LitAgent or a function decorated with @rollout, got {agent!r}; {hint}"
            )
        agent.check()
        for name, dataset in (("train_dataset", train_dataset), ("val_dataset", val_dataset)):
            if dataset is not None and (
                not isinstance(dataset, Sequence) or isinstance(dataset, (str, bytes))
            ):
                raise TypeError(
                    f"{name} must be a sequence of tasks (a list, tuple or anything with len() and indexing), "
                    f"got {type(dataset).__name__} {dataset!r:.80}; wrap it with list(...)"
                )
        resources = self.initial_resources or {}
        missing = missing_resources(agent, resources)
        if missing:
            have = f"only have {sorted(resources)}" if resources else "are empty"
            raise ValueError(
                f"The agent asks for resource(s) {missing} but the trainer's initial_resources {have}. "
                f"Add them to Trainer(initial_resources={{...}}) or give the agent's parameters defaults."
            )


def _one_count(n_runners: int | None, other: Any, other_name: str) -> Any:
    if n_runners is not None and n_runners != other:
        raise ValueError(f"n_runners={n_runners!r} contradicts {other_name}={other!r}; give n_runners only")
    return other


def _spec(spec: Any, kind: str) -> Any:
    return DEFAULTS[kind] if spec is None else spec


def _check_resources(resources: Any) -> NamedResources:
    # ResourcesUpdate's converter validates names and resource types with clear messages.
    return ResourcesUpdate(
        resources_id="initial", create_time=0.0, update_time=0.0, version=0, resources=resources
    ).resources


@attrs.define
class _AlgorithmBundle:
    """Wires the algorithm to the store, publishes initial resources, runs it (and the progress line)."""

    algorithm: Algorithm
    adapter: Adapter[Any, Any] | None
    initial_resources: NamedResources | None
    train_dataset: Sequence[Any] | None
    val_dataset: Sequence[Any] | None
    display: ProgressDisplay | None = None
    rollout_config: RolloutConfig | None = None
    unfinished_rollouts: UnfinishedPolicy = "cancel"

    async def __call__(self, store: LightningStore, stop: StopSignal) -> None:
        algorithm = self.algorithm
        await settle_unfinished_rollouts(store, self.unfinished_rollouts)
        if self.rollout_config is not None:
            store = DefaultConfigStore.wrap(store, self.rollout_config)
        algorithm.set_store(store)
        algorithm.set_adapter(self.adapter)
        algorithm.set_initial_resources(self.initial_resources)
        algorithm.set_stop_signal(stop)
        if self.initial_resources:
            await store.add_resources(self.initial_resources)
        async with anyio.create_task_group() as tg:
            if self.display is not None:
                tg.start_soon(self.display.run, store)
            if algorithm.is_async():
                await algorithm.run(self.train_dataset, self.val_dataset)  # type: ignore[misc]
            else:
                await _run_in_thread(algorithm, self.train_dataset, self.val_dataset, stop)
            if self.display is not None:
                await self.display.draw(store)
            tg.cancel_scope.cancel()


async def _run_in_thread(
    algorithm: Algorithm, train: Sequence[Any] | None, val: Sequence[Any] | None, stop: StopSignal
) -> None:
    """Run a sync algorithm in a worker thread; on cancellation ask it to stop and wait for it.

    The thread is not abandoned (it would keep running against a closed store): ``stop`` is
    set, its pending ``anyio.from_thread`` calls are cancelled (they raise in the thread),
    and it gets :data:`SYNC_ALGORITHM_JOIN_SECONDS` to notice ``stop_requested`` and return.
    """
    returned = threading.Event()

    def target() -> None:
        try:
            algorithm.run(train, val)
        finally:
            returned.set()

    try:
        await anyio.to_thread.run_sync(target, abandon_on_cancel=True)
    except anyio.get_cancelled_exc_class():
        stop.set()
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(returned.wait, SYNC_ALGORITHM_JOIN_SECONDS)
        if not returned.is_set():
            logger.warning(
                "The sync algorithm %s did not return within %.0f s of the stop request; the store "
                "closes under it. Check self.stop_requested in its loops.",
                type(algorithm).__name__,
                SYNC_ALGORITHM_JOIN_SECONDS,
            )
        raise


@attrs.define
class _RunnerBundle:
    """Creates one runner for a worker index and works the queue with it until stopped.

    Picklable when its parts are (for runner processes): the tracer travels as its spec and
    is created and initialised anew in the receiving process.
    """

    agent: LitAgent[Any]
    runner_spec: Any
    tracer: Tracer
    hooks: tuple[Hook, ...]
    max_rollouts: int | None
    tracer_spec: Any = None

    def __reduce__(self) -> tuple[Any, ...]:
        tracer = self.tracer if self.tracer_spec is None else self.tracer_spec
        return (_rebuild_runner_bundle, (self.agent, self.runner_spec, tracer, self.hooks, self.max_rollouts))

    def make_runner(self) -> Runner[Any]:
        runner: Runner[Any] = resolve_component(
            "runner", self.runner_spec, base=Runner, tracer=self.tracer, max_rollouts=self.max_rollouts
        )
        return runner

    async def __call__(self, store: LightningStore, worker_id: str, stop: StopSignal) -> None:
        runner = self.make_runner()
        runner.init(self.agent, hooks=self.hooks)
        runner.init_worker(worker_id, store)
        try:
            await runner.iter(stop=stop)
        finally:
            runner.teardown_worker(worker_id)
            runner.teardown()


def _rebuild_runner_bundle(
    agent: LitAgent[Any], runner_spec: Any, tracer: Any, hooks: tuple[Hook, ...], max_rollouts: int | None
) -> _RunnerBundle:
    """Unpickle a runner bundle in another process: resolve and initialise its tracer there."""
    spec = tracer
    if not isinstance(tracer, Tracer):
        tracer = resolve_component("tracer", spec, base=Tracer)
    tracer.init()
    return _RunnerBundle(agent, runner_spec, tracer, hooks, max_rollouts, None if spec is tracer else spec)
