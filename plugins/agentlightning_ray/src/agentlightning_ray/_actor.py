"""The runner actor: one Ray actor per runner, working the queue through an HTTP store client.

The actor is threaded (``max_concurrency=2``): :meth:`RunnerActor.run` holds one thread for
the whole run while :meth:`RunnerActor.stop` arrives on the other.

The runner bundle arrives pickled (cloudpickle). What the driver's script defines at module
level (an ``@rollout`` agent pickles by name) is looked up in that script, loaded on first use
from the same path under another module name (:data:`DRIVER_MODULE`), as :mod:`multiprocessing`'s
spawn does for the ``cs`` strategy: the script's training must sit under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import os
import pickle
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio

from agentlightning_core import LightningStore, LightningStoreClient

__all__ = ["DRIVER_MODULE", "RunnerActor", "loading_driver_script"]

logger = logging.getLogger(__name__)

RunnerBundle = Callable[[LightningStore, str, Any], Awaitable[None]]
DRIVER_MODULE = "__agl_driver_main__"
loading_driver_script = False
"""True while an actor imports the driver's script (the strategy refuses to start a run then)."""


class RunnerActor:
    """Runs the trainer's runner bundle as store worker ``worker_id`` against ``url``."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def where(self) -> tuple[str, int]:
        """``(hostname, pid)`` of the actor's process; answering it also means the actor is up."""
        return socket.gethostname(), os.getpid()

    def run(
        self,
        payload: bytes,
        driver_script: str | None,
        url: str,
        client_options: dict[str, Any],
        worker_id: str,
    ) -> None:
        """Work the queue until :meth:`stop` (or the runner's own ``max_rollouts``). A threaded
        actor may run :meth:`stop` first: the run then returns at once."""
        runner: RunnerBundle = _Unpickler(io.BytesIO(payload), driver_script).load()
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


class _Unpickler(pickle.Unpickler):
    """Resolves the driver's ``__main__`` names in its script, loaded as :data:`DRIVER_MODULE`."""

    def __init__(self, file: io.BytesIO, driver_script: str | None) -> None:
        super().__init__(file)
        self.driver_script = driver_script

    def find_class(self, module: str, name: str) -> Any:
        if module == "__main__":
            _load_driver_script(self.driver_script, name)
            module = DRIVER_MODULE
        return super().find_class(module, name)


_load_lock = threading.Lock()


def _load_driver_script(path: str | None, name: str) -> None:
    global loading_driver_script
    with _load_lock:
        if DRIVER_MODULE in sys.modules:
            return
        if path is None or not os.path.isfile(path):
            where = (
                f"{path} is not on node {socket.gethostname()}" if path else "the driver has no script file"
            )
            raise RuntimeError(
                f"The runner needs {name!r} from the driver's main script, but {where}. Put the agent in an "
                "importable module installed on every node, or give every node the script at the same path."
            )
        spec = importlib.util.spec_from_file_location(DRIVER_MODULE, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[DRIVER_MODULE] = module
        sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
        loading_driver_script = True
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[DRIVER_MODULE]
            raise
        finally:
            loading_driver_script = False
