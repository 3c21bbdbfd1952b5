"""The runner actor: one Ray actor per runner, working the queue through an HTTP store client.

The actor is threaded (``max_concurrency=2``): :meth:`RunnerActor.run` holds one thread for
the whole run while :meth:`RunnerActor.stop` arrives on the other.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from agentlightning_core import LightningStore, LightningStoreClient

__all__ = ["RunnerActor"]

logger = logging.getLogger(__name__)

RunnerBundle = Callable[[LightningStore, str, Any], Awaitable[None]]


class RunnerActor:
    """Runs the trainer's runner bundle as store worker ``worker_id`` against ``url``."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def where(self) -> tuple[str, int]:
        """``(hostname, pid)`` of the actor's process; answering it also means the actor is up."""
        return socket.gethostname(), os.getpid()

    def run(self, runner: RunnerBundle, url: str, client_options: dict[str, Any], worker_id: str) -> None:
        """Work the queue until :meth:`stop` (or the runner's own ``max_rollouts``). A threaded
        actor may run :meth:`stop` first: the run then returns at once."""
        anyio.run(_work, runner, url, client_options, worker_id, self._stop, backend="asyncio")

    def stop(self) -> None:
        """Let the runner finish its current rollout and return."""
        self._stop.set()


async def _work(
    runner: RunnerBundle, url: str, client_options: dict[str, Any], worker_id: str, stop: threading.Event
) -> None:
    async with LightningStoreClient(url, **client_options) as store:
        logger.info("Runner actor %s working against %s", worker_id, url)
        await runner(store, worker_id, stop)
