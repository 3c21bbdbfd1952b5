"""The core's one fast path for records: slotted attrs objects built or copied without validators.

Spans, rollouts, attempts and workers are built from values already known to be valid (an
OpenTelemetry SDK span, a request body just checked, a stored record being changed); running
attrs' validators again would cost several times the construction itself. The functions here
are generated from the class's own fields, so a field added to a class cannot be forgotten.
Private: callers must hand over valid values.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

__all__ = ["builder", "copier", "replace"]

T = TypeVar("T")

_RAW: dict[type, type] = {}
_COPIERS: dict[tuple[type, tuple[str, ...]], Callable[..., Any]] = {}


def _raw(cls: type) -> type:
    """``cls``'s slot layout with plain attribute assignment (no attrs ``__setattr__`` hook)."""
    raw = _RAW.get(cls)
    if raw is None:
        if "__slots__" not in cls.__dict__:
            raise TypeError(f"{cls.__name__} is not a slotted attrs class")
        raw = _RAW[cls] = type(
            f"_Raw{cls.__name__}", (cls,), {"__slots__": (), "__setattr__": object.__setattr__}
        )
    return raw


def _names(cls: type) -> list[str]:
    return [f.name for f in attrs.fields(cls)]


def _generate(cls: type, signature: str, value: Callable[[str], str]) -> Callable[..., Any]:
    lines = [f"def make({signature}):", "    _o = _new(_raw)"]
    lines += [f"    _o.{name} = {value(name)}" for name in _names(cls)]
    lines += ["    _o.__class__ = _cls", "    return _o"]  # same slot layout, every slot set above
    scope: dict[str, Any] = {"_new": object.__new__, "_raw": _raw(cls), "_cls": cls}
    exec("\n".join(lines), scope)  # code built from the class's own field names
    make: Callable[..., Any] = scope["make"]
    return make


def builder(cls: type[T]) -> Callable[..., T]:
    """A function ``build(*values)`` returning a ``cls`` whose fields, in definition order,
    take ``values`` (also by keyword), without defaults or validators."""
    return _generate(cls, ", ".join(_names(cls)), lambda name: name)


def copier(cls: type, changed: tuple[str, ...]) -> Callable[..., Any]:
    """A function ``copy(obj, *values)`` returning a copy of ``obj`` (a ``cls``) whose fields
    ``changed`` take ``values`` (also by keyword), the other fields being ``obj``'s."""
    unknown = set(changed).difference(_names(cls))
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return _generate(cls, ", ".join(("_obj", *changed)), lambda n: n if n in changed else f"_obj.{n}")


def replace(obj: T, **changes: Any) -> T:
    """A copy of ``obj`` (a slotted attrs record) with ``changes``, skipping validators."""
    key = (type(obj), tuple(changes))
    copy = _COPIERS.get(key)
    if copy is None:
        copy = _COPIERS[key] = copier(*key)
    return copy(obj, **changes)  # type: ignore[no-any-return]
