"""``@rollout``, ``@llm_rollout`` and ``@prompt_rollout``: plain functions as agents.

The decorated function takes the task as its first parameter; every other parameter is
injected by name on each call:

- ``llm``: the resource named ``llm``, else the first LLM resource (a ``ProxyLLM`` is handed
  over as an ``LLM`` whose endpoint routes to the current rollout and attempt);
- ``prompt_template``: the resource named ``prompt_template``, else the first prompt template;
- ``rollout``: the :class:`AttemptedRollout` being run;
- ``resources``: all named resources;
- any other name: the resource of that name (a default value makes it optional).
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from agentlightning_core.litagent.base import LitAgent
from agentlightning_core.resources import LLM, NamedResources, PromptTemplate, ProxyLLM
from agentlightning_core.types import AttemptedRollout, RolloutMode

__all__ = ["FunctionalLitAgent", "llm_rollout", "prompt_rollout", "rollout"]

F = TypeVar("F", bound=Callable[..., Any])
Getter = Callable[[NamedResources, AttemptedRollout], Any]

_SPECIAL = ("llm", "prompt_template", "rollout", "resources")

_FORMS = """Accepted forms (sync `def` or `async def`; the task comes first, the rest is injected by name):
    def agent(task): ...
    def agent(task, llm): ...                  # an LLM resource
    def agent(task, prompt_template): ...      # a PromptTemplate resource
    def agent(task, llm, rollout): ...         # rollout: the AttemptedRollout being run
    def agent(task, resources): ...            # every named resource
    def agent(task, my_prompt, judge=None): ...  # resources by name (a default makes one optional)"""


def _first_of(kind: type, name: str) -> Getter:
    def get(resources: NamedResources, rollout: AttemptedRollout) -> Any:
        found = resources.get(name)
        if not isinstance(found, kind):
            found = next((r for r in resources.values() if isinstance(r, kind)), None)
        if found is None:
            raise LookupError(
                f"The agent asks for {name!r} but the rollout's resources have no {kind.__name__}: "
                f"{sorted(resources)}. Add one to Trainer(initial_resources=...) or let the algorithm publish it."
            )
        if isinstance(found, ProxyLLM):
            return found.for_attempt(rollout.rollout_id, rollout.attempt_id)
        return found

    return get


def _named(name: str, default: Any) -> Getter:
    def get(resources: NamedResources, rollout: AttemptedRollout) -> Any:
        found = resources.get(name, default)
        if found is inspect.Parameter.empty:
            raise LookupError(
                f"The agent asks for resource {name!r}, which the rollout's resources do not have: "
                f"{sorted(resources)}. Add it to Trainer(initial_resources=...) or give the parameter a default."
            )
        return found

    return get


def _getter(param: inspect.Parameter) -> Getter:
    if param.name == "llm":
        return _first_of(LLM, "llm")
    if param.name == "prompt_template":
        return _first_of(PromptTemplate, "prompt_template")
    if param.name == "rollout":
        return lambda resources, rollout: rollout
    if param.name == "resources":
        return lambda resources, rollout: resources
    return _named(param.name, param.default)


class FunctionalLitAgent(LitAgent[Any]):
    """An agent made from a function by :func:`rollout` and friends; calling it calls the function."""

    required_resources: ClassVar[tuple[str, ...]] = ()

    def __init__(self, func: Callable[..., Any], *, require: str | None = None, decorator: str = "rollout"):
        if not callable(func):
            raise TypeError(f"@{decorator} decorates a function, got {func!r}")
        self.func = func
        self._require = require
        self._decorator = decorator
        self._async = inspect.iscoroutinefunction(inspect.unwrap(func)) or inspect.iscoroutinefunction(func)
        params = _parameters(func, decorator)
        names = [p.name for p in params[1:]]
        if require is not None and require not in names:
            raise TypeError(
                f"@{decorator} needs a parameter named {require!r} on {_describe(func)}, which takes "
                f"({', '.join(p.name for p in params)}).\n{_FORMS}"
            )
        self._getters: tuple[tuple[str, Getter], ...] = tuple((p.name, _getter(p)) for p in params[1:])
        # An instance attribute shadows the class-level default.
        self.required_resources = tuple(  # type: ignore[misc]
            p.name for p in params[1:] if p.name not in ("rollout", "resources") and p.default is p.empty
        )
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {_describe(self.func)}>"

    def __reduce__(self) -> str | tuple[Any, ...]:
        # A module-level @rollout agent pickles by name, like the function it replaces, so it
        # reaches spawned runner processes; any other is rebuilt from its (picklable) function.
        qualname: str = getattr(self, "__qualname__", "")  # set by functools.update_wrapper
        if qualname and _lookup(self.__module__, qualname) is self:
            return qualname
        return (_rebuild, (type(self), self.func, self._require, self._decorator))

    def _kwargs(self, resources: NamedResources, rollout: AttemptedRollout) -> dict[str, Any]:
        return {name: get(resources, rollout) for name, get in self._getters}

    def rollout(self, task: Any, resources: NamedResources, rollout: AttemptedRollout) -> Any:
        return self.func(task, **self._kwargs(resources, rollout))

    async def rollout_async(self, task: Any, resources: NamedResources, rollout: AttemptedRollout) -> Any:
        return await self.func(task, **self._kwargs(resources, rollout))

    def implementation(self, mode: RolloutMode | None) -> tuple[Callable[..., Any], bool]:
        return (self.rollout_async, True) if self._async else (self.rollout, False)


def _lookup(module_name: str, qualname: str) -> Any:
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


def _rebuild(
    cls: type[FunctionalLitAgent], func: Callable[..., Any], require: str | None, decorator: str
) -> FunctionalLitAgent:
    return cls(func, require=require, decorator=decorator)


def _describe(func: Callable[..., Any]) -> str:
    return f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', repr(func))}"


def _parameters(func: Callable[..., Any], decorator: str) -> list[inspect.Parameter]:
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError) as exc:
        raise TypeError(f"@{decorator}: cannot read the signature of {func!r}: {exc}") from None
    problem = None
    if not params:
        problem = "takes no parameters; the first one receives the task"
    elif params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        problem = f"has {params[0]} first; the first parameter must be a positional one receiving the task"
    else:
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                problem = (
                    f"has {p}; injected parameters are matched by name, so *args/**kwargs are not allowed"
                )
                break
            if p is not params[0] and p.kind is p.POSITIONAL_ONLY:
                problem = f"has positional-only parameter {p.name!r}; injected parameters are passed by name"
                break
    if problem is not None:
        raise TypeError(f"@{decorator} cannot use {_describe(func)}: it {problem}.\n{_FORMS}")
    return params


def rollout(func: Callable[..., Any]) -> FunctionalLitAgent:
    """Turn ``func(task, ...)`` (sync or async) into an agent; see the module docs for injection."""
    return FunctionalLitAgent(func, decorator="rollout")


def llm_rollout(func: Callable[..., Any]) -> FunctionalLitAgent:
    """Like :func:`rollout` for a function that takes an ``llm`` parameter (required)."""
    return FunctionalLitAgent(func, require="llm", decorator="llm_rollout")


def prompt_rollout(func: Callable[..., Any]) -> FunctionalLitAgent:
    """Like :func:`rollout` for a function that takes a ``prompt_template`` parameter (required)."""
    return FunctionalLitAgent(func, require="prompt_template", decorator="prompt_rollout")
