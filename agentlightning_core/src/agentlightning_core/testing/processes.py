"""Start Python processes for signal tests with a known SIGINT disposition.

A process inherits ignored signals across ``exec``, and a shell starts a background job of a
script (``pytest ... &``) with SIGINT ignored, as POSIX requires; Python then leaves SIGINT
ignored and Ctrl+C handling (asyncio's, hence a run's) is never installed. A test that sends
SIGINT to a child it started would hang whenever the test suite runs in the background. The
command of :func:`python_command` sets SIGINT first, then executes Python in place (same
process id), so the child behaves the same however the suite was started.
"""

from __future__ import annotations

import sys
from typing import Literal

__all__ = ["python_command"]

_LAUNCH = (
    "import os, signal, sys; "
    "signal.signal(signal.SIGINT, signal.SIG_IGN if sys.argv[1] == 'ignored' else signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


def python_command(*args: str, sigint: Literal["default", "ignored"] = "default") -> list[str]:
    """The command line of ``python *args`` whose SIGINT starts at its default action (a
    foreground job of a terminal, which Ctrl+C reaches) or ``"ignored"`` (a background job of
    a shell script), whatever this process inherited. For :class:`subprocess.Popen`; the
    process keeps its id, so signals sent to ``Popen.pid`` reach it."""
    if sigint not in ("default", "ignored"):
        raise ValueError(f"sigint must be 'default' or 'ignored', got {sigint!r}")
    return [sys.executable, "-c", _LAUNCH, sigint, *args]
