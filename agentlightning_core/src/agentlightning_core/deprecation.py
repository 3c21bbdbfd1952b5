"""One-time deprecation warnings for the argument forms of the earlier Agent Lightning API.

Each earlier form keeps working; the first use in a process warns once with a
:class:`DeprecationWarning` that names the form to write instead.
"""

from __future__ import annotations

import threading
import warnings

__all__ = ["warn_deprecated"]

_warned: set[str] = set()
_lock = threading.Lock()


def warn_deprecated(key: str, message: str, *, stacklevel: int = 3) -> None:
    """Warn ``message`` as a :class:`DeprecationWarning`, once per process per ``key``.

    ``stacklevel`` counts from the caller of this function (2 points at its caller).
    """
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, DeprecationWarning, stacklevel=stacklevel + 1)


def reset_deprecation_warnings() -> None:
    """Forget which forms warned (for tests)."""
    with _lock:
        _warned.clear()
