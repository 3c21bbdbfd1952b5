"""Argument checks shared by every module: each returns the value or raises a clear error.

``name`` is how the value is called in the message (``"RolloutConfig.max_attempts"``,
``"n_runners"``); the message shows the offending value and what is accepted.
Use :func:`field` to turn a check into an attrs validator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, overload

import attrs

__all__ = [
    "MODES",
    "check_finite",
    "check_mode",
    "check_non_empty_str",
    "check_positive_int",
    "check_seconds",
    "field",
]

MODES = ("train", "val", "test")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@overload
def check_positive_int(
    name: str, value: Any, *, allow_none: Literal[False] = False, minimum: int = 1
) -> int: ...
@overload
def check_positive_int(
    name: str, value: Any, *, allow_none: Literal[True], minimum: int = 1
) -> int | None: ...
def check_positive_int(name: str, value: Any, *, allow_none: bool = False, minimum: int = 1) -> int | None:
    """An integer ``>= minimum`` (default 1); None too when ``allow_none``."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name} must be an integer >= {minimum}{extra}, got {value!r}")
    return value


@overload
def check_seconds(
    name: str, value: Any, *, allow_none: Literal[False], allow_zero: bool = False
) -> float: ...
@overload
def check_seconds(
    name: str, value: Any, *, allow_none: Literal[True] = True, allow_zero: bool = False
) -> float | None: ...
def check_seconds(
    name: str, value: Any, *, allow_none: bool = True, allow_zero: bool = False
) -> float | None:
    """A positive (``>= 0`` with ``allow_zero``), finite number of seconds; None too when ``allow_none``."""
    if value is None and allow_none:
        return None
    if not _is_number(value) or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        kind = "number of seconds >= 0" if allow_zero else "positive number of seconds"
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a {kind}{extra}, got {value!r}")
    return float(value)


@overload
def check_finite(name: str, value: Any, *, allow_none: Literal[False] = False) -> float: ...
@overload
def check_finite(name: str, value: Any, *, allow_none: Literal[True]) -> float | None: ...
def check_finite(name: str, value: Any, *, allow_none: bool = False) -> float | None:
    """A finite int or float (not a bool); None too when ``allow_none``. Keeps ints as they are."""
    if value is None and allow_none:
        return None
    if not _is_number(value) or not math.isfinite(value):
        extra = " or None" if allow_none else ""
        raise ValueError(f"{name} must be a finite number{extra}, got {value!r}")
    return value  # type: ignore[no-any-return]


def check_mode(name: str, value: Any) -> Any:
    """A rollout mode: ``"train"``, ``"val"``, ``"test"`` or None."""
    if value is not None and value not in MODES:
        raise ValueError(f"{name} must be one of train, val, test or None, got {value!r}")
    return value


def check_non_empty_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def field(check: Callable[..., Any], **options: Any) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    """An attrs validator running ``check("<Class>.<field>", value, **options)``."""

    def validate(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        check(f"{type(instance).__name__}.{attribute.name}", value, **options)

    return validate
