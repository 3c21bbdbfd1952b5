"""``operation``: a span around a unit of the agent's work, as decorator or context manager."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, ParamSpec, TypeVar, overload

from agentlightning_core import semconv
from agentlightning_core.emitter._recorder import open_span
from agentlightning_core.emitter.events import to_attribute
from agentlightning_core.tracer.base import SpanHandle

__all__ = ["operation"]

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def _operation_span(name: str, attributes: Mapping[str, Any] | None) -> Iterator[SpanHandle]:
    attrs = {k: to_attribute(v) for k, v in (attributes or {}).items()}
    attrs[semconv.OPERATION_NAME] = name
    with open_span(name, attrs) as span:
        yield span


@overload
def operation(func: Callable[P, R], /) -> Callable[P, R]: ...
@overload
def operation(
    name: str | None = None, /, *, attributes: Mapping[str, Any] | None = None, record_io: bool = True
) -> _Operation: ...
def operation(
    arg: Callable[..., Any] | str | None = None,
    /,
    *,
    attributes: Mapping[str, Any] | None = None,
    record_io: bool = True,
) -> Any:
    """A span named after an operation of the agent.

    ``@operation`` / ``@operation("name")`` decorate a function (sync or async) and record its
    arguments and return value (``record_io=False`` to skip); ``with operation("name") as span:``
    wraps a block and yields the span to set attributes on.
    """
    if callable(arg):
        return _Operation(None, attributes, record_io)(arg)
    return _Operation(arg, attributes, record_io)


_OPEN: ContextVar[tuple[tuple[_Operation, AbstractContextManager[SpanHandle]], ...]] = ContextVar(
    "agentlightning_open_operations", default=()
)
"""Spans opened by ``with operation(...)`` in this context (task or thread), innermost last:
one ``operation`` object may be entered again while open, or by concurrent tasks."""


class _Operation:
    def __init__(self, name: str | None, attributes: Mapping[str, Any] | None, record_io: bool) -> None:
        self.name = name
        self.attributes = attributes
        self.record_io = record_io

    def __enter__(self) -> SpanHandle:
        if self.name is None:
            raise TypeError("`with operation(...)` needs a name, e.g. `with operation('retrieve'):`")
        cm = _operation_span(self.name, self.attributes)
        span = cm.__enter__()
        _OPEN.set((*_OPEN.get(), (self, cm)))
        return span

    def __exit__(self, *exc_info: Any) -> None:
        stack = _OPEN.get()
        # with-blocks of one context close innermost first, so this object's last entry is ours
        index = next(i for i in range(len(stack) - 1, -1, -1) if stack[i][0] is self)
        _OPEN.set(stack[:index] + stack[index + 1 :])
        stack[index][1].__exit__(*exc_info)

    def __call__(self, func: Callable[P, R]) -> Callable[P, R]:
        name = self.name or func.__qualname__
        record_io = self.record_io
        attributes = self.attributes

        def inputs(args: Any, kwargs: Any) -> dict[str, Any]:
            if not record_io:
                return {}
            try:
                bound = inspect.signature(func).bind_partial(*args, **kwargs)
                value: Any = dict(bound.arguments)
            except TypeError:
                value = {"args": list(args), "kwargs": kwargs}
            return {semconv.OPERATION_INPUT: to_attribute(value)}

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with _operation_span(name, {**(attributes or {}), **inputs(args, kwargs)}) as span:
                    result = await func(*args, **kwargs)
                    if record_io:
                        span.set_attribute(semconv.OPERATION_OUTPUT, to_attribute(result))
                    return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _operation_span(name, {**(attributes or {}), **inputs(args, kwargs)}) as span:
                result = func(*args, **kwargs)
                if record_io:
                    span.set_attribute(semconv.OPERATION_OUTPUT, to_attribute(result))
                return result

        return wrapper
