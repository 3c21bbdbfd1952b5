"""The agent contract: what a runner calls for each rollout."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeAlias, TypeVar

from agentlightning_core.resources import NamedResources
from agentlightning_core.spans import Span
from agentlightning_core.types import AttemptedRollout, RolloutMode

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

    from agentlightning_core.runner.base import Runner
    from agentlightning_core.tracer.base import Tracer
    from agentlightning_core.trainer.trainer import Trainer

__all__ = ["LitAgent", "RolloutRawResult", "missing_resources"]

T_task = TypeVar("T_task")

RolloutRawResult: TypeAlias = "float | int | Sequence[Span | ReadableSpan] | None"
"""What an agent may return: None (the tracer's spans are the record), a number (the final
reward, recorded as a reward span), or a list of spans to store as the record."""

_ROLLOUT_METHODS = ("rollout", "rollout_async")
_MODE_METHODS: dict[str | None, tuple[str, ...]] = {
    "train": ("training_rollout_async", "training_rollout", *_ROLLOUT_METHODS),
    "val": ("validation_rollout_async", "validation_rollout", *_ROLLOUT_METHODS),
    "test": ("validation_rollout_async", "validation_rollout", *_ROLLOUT_METHODS),
    None: ("rollout_async", "rollout"),
}


class LitAgent(Generic[T_task]):
    """Base of agents. Override ``rollout`` (sync) or ``rollout_async`` (async); optionally
    ``training_rollout[_async]`` / ``validation_rollout[_async]`` for mode-specific behaviour.

    Each receives ``(task, resources, rollout)``: the rollout's input, the named resources
    it runs with, and the :class:`AttemptedRollout` (ids, mode, attempt). Sync methods run in
    a worker thread so a blocking agent does not stall other runners of the process.

    ``required_resources`` names resources the agent needs; the trainer checks them against
    its initial resources before any runner starts.
    """

    required_resources: ClassVar[tuple[str, ...]] = ()

    _trainer_ref: weakref.ReferenceType[Trainer] | None = None
    _runner_ref: weakref.ReferenceType[Runner[Any]] | None = None

    # --- what subclasses override ------------------------------------------------------

    def rollout(self, task: T_task, resources: NamedResources, rollout: AttemptedRollout) -> Any:
        """Run the agent on ``task`` and return its result (see :data:`RolloutRawResult`)."""
        raise TypeError(_not_implemented_message(type(self)))

    async def rollout_async(self, task: T_task, resources: NamedResources, rollout: AttemptedRollout) -> Any:
        """Async variant of :meth:`rollout`."""
        raise TypeError(_not_implemented_message(type(self)))

    def training_rollout(self, task: T_task, resources: NamedResources, rollout: AttemptedRollout) -> Any:
        """Rollout of a ``train`` task; defaults to :meth:`rollout`."""
        return self.rollout(task, resources, rollout)

    async def training_rollout_async(
        self, task: T_task, resources: NamedResources, rollout: AttemptedRollout
    ) -> Any:
        """Async rollout of a ``train`` task; defaults to :meth:`rollout_async`."""
        return await self.rollout_async(task, resources, rollout)

    def validation_rollout(self, task: T_task, resources: NamedResources, rollout: AttemptedRollout) -> Any:
        """Rollout of a ``val``/``test`` task; defaults to :meth:`rollout`."""
        return self.rollout(task, resources, rollout)

    async def validation_rollout_async(
        self, task: T_task, resources: NamedResources, rollout: AttemptedRollout
    ) -> Any:
        """Async rollout of a ``val``/``test`` task; defaults to :meth:`rollout_async`."""
        return await self.rollout_async(task, resources, rollout)

    # --- wiring ------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the trainer and runner links (weak references, local to a process):
        an agent sent to a runner process is attached to that process's runner there."""
        state = dict(self.__dict__)
        state.pop("_trainer_ref", None)
        state.pop("_runner_ref", None)
        return state

    def set_trainer(self, trainer: Trainer) -> None:
        self._trainer_ref = weakref.ref(trainer)

    def get_trainer(self) -> Trainer:
        trainer = self._trainer_ref() if self._trainer_ref is not None else None
        if trainer is None:
            raise RuntimeError(
                f"{type(self).__name__} is not attached to a Trainer; call trainer.fit(agent, ...)"
            )
        return trainer

    def set_runner(self, runner: Runner[Any]) -> None:
        self._runner_ref = weakref.ref(runner)

    def get_runner(self) -> Runner[Any]:
        runner = self._runner_ref() if self._runner_ref is not None else None
        if runner is None:
            raise RuntimeError(f"{type(self).__name__} is not attached to a runner yet")
        return runner

    def get_tracer(self) -> Tracer:
        """The tracer of the runner executing this agent."""
        tracer: Tracer | None = getattr(self.get_runner(), "tracer", None)
        if tracer is None:
            raise RuntimeError(f"The runner of {type(self).__name__} has no tracer")
        return tracer

    # --- dispatch ----------------------------------------------------------------------

    def is_async(self) -> bool:
        """Whether the method used for un-moded rollouts is a coroutine function."""
        return self.implementation(None)[1]

    def implementation(self, mode: RolloutMode | None) -> tuple[Callable[..., Any], bool]:
        """``(bound method, is_async)`` the runner calls for a rollout of ``mode``.

        The most specific overridden method wins: ``training_rollout_async`` over
        ``training_rollout`` over ``rollout_async`` over ``rollout`` (same for validation).
        """
        cls = type(self)
        for name in _MODE_METHODS[mode]:
            if getattr(cls, name) is not getattr(LitAgent, name):
                return getattr(self, name), name.endswith("_async")
        raise TypeError(_not_implemented_message(cls))

    def check(self) -> None:
        """Raise ``TypeError`` unless the agent overrides a rollout method."""
        self.implementation(None)


def _not_implemented_message(cls: type) -> str:
    return (
        f"{cls.__module__}.{cls.__qualname__} implements no rollout method. Override "
        f"rollout(self, task, resources, rollout) or `async def rollout_async(...)`, or decorate a "
        f"function with @rollout."
    )


def missing_resources(agent: LitAgent[Any], resources: NamedResources) -> list[str]:
    """Names in ``agent.required_resources`` that ``resources`` cannot satisfy.

    ``llm`` and ``prompt_template`` are satisfied by any resource of that kind.
    """
    from agentlightning_core.resources import LLM, PromptTemplate

    kinds: dict[str, type] = {"llm": LLM, "prompt_template": PromptTemplate}
    missing = []
    for name in agent.required_resources:
        if name in resources:
            continue
        kind = kinds.get(name)
        if kind is not None and any(isinstance(r, kind) for r in resources.values()):
            continue
        missing.append(name)
    return missing
