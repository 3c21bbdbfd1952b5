"""Ctrl+C and SIGTERM end a run the same way, and an uncaught interrupt prints one line.

``docker stop``, ``timeout`` and systemd send SIGTERM, whose default action kills the
process on the spot: runner processes would be orphaned and in-flight attempts left
running. While a run executes, SIGTERM is turned into SIGINT, which the strategies
already handle (runners stop and mark their attempts, workers go idle, the store closes).
The :class:`KeyboardInterrupt` that ends :meth:`Trainer.fit` carries one line saying so;
left uncaught, it is printed as that line instead of a traceback (the process still exits
as interrupted, status 130).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType

__all__ = ["interrupt_message", "sigterm_as_interrupt"]

_ATTR = "agentlightning_message"


@contextmanager
def sigterm_as_interrupt() -> Iterator[list[str]]:
    """Within the block, SIGTERM acts as SIGINT (main thread, default SIGTERM handler only).

    Yields a list that receives the name of each signal turned into an interrupt.
    """
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) not in (
        signal.SIG_DFL,
        None,
    ):
        yield received
        return

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        received.append("SIGTERM")
        # What Ctrl+C would do: the SIGINT handler (asyncio's cancels the main task), or
        # KeyboardInterrupt where SIGINT is ignored (a background job of a shell).
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop runs: interrupt the code running now
            raise KeyboardInterrupt from None
        # Raised here, it would unwind whatever task is running (a runner's, skipping the
        # cancellation handler that marks its attempt failed). Raised by a callback, between
        # two task steps, it ends the loop, whose runner then cancels every task properly.
        loop.call_soon_threadsafe(_interrupt)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield received
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt() -> None:
    raise KeyboardInterrupt


def interrupt_message(exc: KeyboardInterrupt, what: str) -> KeyboardInterrupt:
    """Give ``exc`` its one-line description (``what`` ended the run) and make sure an uncaught
    interrupt prints that line only."""
    message = f"Interrupted by {what}: runners stopped, in-flight attempts marked failed, workers idle, store closed"
    setattr(exc, _ATTR, message)
    if not exc.args:
        exc.args = (message,)
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _one_line_interrupts
    return exc


def _one_line_interrupts(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    message = getattr(value, _ATTR, None)
    if isinstance(value, KeyboardInterrupt) and message is not None:
        print(message, file=sys.stderr)
        return
    sys.__excepthook__(kind, value, tb)
