"""Fast copies of the stores' slotted attrs records (rollouts, attempts, workers, spans).

Stores build a new record for every change instead of mutating one a caller may hold; these
copies skip validators (the store validated the changed values) and cost a fraction of
``attrs.evolve`` (~0.4 us for a span against ~4.6 us).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import attrs

__all__ = ["copier", "replace"]

T = TypeVar("T")

_COPIERS: dict[tuple[type, tuple[str, ...]], Callable[..., Any]] = {}


def copier(cls: type, changed: tuple[str, ...]) -> Callable[..., Any]:
    """A function ``copy(obj, *values)`` returning a copy of ``obj`` (a ``cls``) whose fields
    ``changed`` take ``values`` (also by keyword), the other fields being ``obj``'s.

    ``cls`` must be a slotted attrs class. The function is generated from the class's fields:
    the object is built as a private subclass with the same slot layout but plain attribute
    assignment (no attrs ``__setattr__`` hook), then relabelled ``cls``.
    """
    names = [f.name for f in attrs.fields(cls)]
    unknown = set(changed).difference(names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    raw = type(f"_Raw{cls.__name__}", (cls,), {"__slots__": (), "__setattr__": object.__setattr__})
    lines = [
        f"def copy(_obj, {', '.join(changed)}):" if changed else "def copy(_obj):",
        "    _o = _new(_raw)",
    ]
    lines += [f"    _o.{name} = {name if name in changed else f'_obj.{name}'}" for name in names]
    lines += ["    _o.__class__ = _cls", "    return _o"]
    scope: dict[str, Any] = {"_new": object.__new__, "_raw": raw, "_cls": cls}
    exec("\n".join(lines), scope)  # code built from the class's own field names
    copy: Callable[..., Any] = scope["copy"]
    return copy


def replace(obj: T, **changes: Any) -> T:
    """A copy of ``obj`` (a slotted attrs record) with ``changes``, skipping validators."""
    key = (type(obj), tuple(changes))
    copy = _COPIERS.get(key)
    if copy is None:
        copy = _COPIERS[key] = copier(*key)
    return copy(obj, **changes)  # type: ignore[no-any-return]
