"""One-time deprecation warnings for the argument forms of the earlier Agent Lightning API.

Each earlier form keeps working; the first use in a process warns once with a
:class:`DeprecationWarning` that names the form to write instead, attributed to the first
calling line outside this package (the user's own line).
"""

from __future__ import annotations

import os
import sys
import threading
import warnings

__all__ = ["reset_deprecation_warnings", "warn_deprecated"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_warned: set[str] = set()
_lock = threading.Lock()


def _outside_stacklevel() -> int:
    """The ``stacklevel`` of :func:`warnings.warn`, called from :func:`warn_deprecated`, that
    names the first frame outside this package."""
    frame = sys._getframe(2)  # the caller of warn_deprecated
    level = 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def warn_deprecated(key: str, message: str) -> None:
    """Warn ``message`` as a :class:`DeprecationWarning`, once per process per ``key``."""
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, DeprecationWarning, stacklevel=_outside_stacklevel())


def reset_deprecation_warnings() -> None:
    """Forget which forms warned (for tests)."""
    with _lock:
        _warned.clear()
