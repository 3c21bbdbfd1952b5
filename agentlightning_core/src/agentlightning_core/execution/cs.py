""":class:`ClientServerExecutionStrategy` (``cs``): runners in other processes, over HTTP.

The algorithm's process serves the trainer's store with a
:class:`~agentlightning_core.remote.server.LightningStoreServer` and runs the algorithm
against the store object itself (no HTTP hop for the algorithm). Runners live in processes
started with the ``spawn`` method (safe with threads, same behaviour on every OS); each
talks to the server through a :class:`~agentlightning_core.remote.client.LightningStoreClient`.

Roles, so one script serves every machine (argument, else environment, else default):

- ``both`` (default): serve, run the algorithm and ``n_runners`` local runner processes;
- ``algorithm``: serve and run the algorithm; runners come from elsewhere;
- ``runner``: run ``n_runners`` runner processes against ``http://AGL_SERVER_HOST:AGL_SERVER_PORT``
  until the server goes away, every runner is done (``max_rollouts``) or Ctrl+C.

What crosses to a runner process is pickled: the agent (so it must be importable, as with
:mod:`multiprocessing`: defined at module level, not under ``if __name__ == "__main__"``),
the runner spec, the tracer spec (a name, dict or class; a tracer *instance* must be
picklable) and the hooks.

Runner processes that die are logged with their exit code or signal; the attempt a dead
runner was running is marked ``unresponsive`` at once (the parent knows the process's
worker id and asks the store for its current attempt), so the rollout is requeued or
failed per its ``RolloutConfig`` instead of waiting for a watchdog that may not be
configured. With ``restart_runners`` the process is started again (up to
``max_restarts``), otherwise the run stops and :class:`RunnerProcessError` is raised.
Shutdown escalates: the stop event (runners finish their rollout), ``graceful_seconds``,
SIGTERM (runners mark their in-flight attempt failed), ``terminate_seconds``, SIGKILL
(their attempts are then marked ``unresponsive`` as above).

Worker ids are ``<worker_id_prefix>-<index>``, the prefix defaulting to
``runner-<hostname>-<pid of the launching process>``, so runners of different machines and
runs never share an id.
"""

from __future__ import annotations

import ast
import contextlib
import logging
import multiprocessing
import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, Literal

import anyio

from agentlightning_core.errors import AgentLightningError
from agentlightning_core.execution.base import (
    AlgorithmBundle,
    ExecutionStrategy,
    RunnerBundle,
    release_dead_runner_attempt,
    single_exception,
)
from agentlightning_core.remote._config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    base_url,
    event_loop_options,
    token_from_env,
)
from agentlightning_core.store.base import LightningStore
from agentlightning_core.validation import check_positive_int, check_seconds

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["ClientServerExecutionStrategy", "Role", "RunnerProcessError"]

logger = logging.getLogger(__name__)

Role = Literal["algorithm", "runner", "both"]
ROLES: tuple[Role, ...] = ("algorithm", "runner", "both")
ROLE_ENV = "AGL_ROLE"
HOST_ENV = "AGL_SERVER_HOST"
PORT_ENV = "AGL_SERVER_PORT"

_EXIT_LOAD_FAILED = 3  # a runner process could not unpickle its bundle: restarting cannot help
_POLL_SECONDS = 0.05
_RELEASE_SECONDS = 5.0  # most time spent marking a dead runner's attempt
_SERVER_GONE_SECONDS = 1.0  # how long runners get after SIGTERM once the store server is gone


class RunnerProcessError(AgentLightningError, RuntimeError):
    """A runner process failed (and was not, or could no longer be, restarted)."""


class ClientServerExecutionStrategy(ExecutionStrategy):
    """Serve the store over HTTP and run runners in separate processes (see the module docs).

    :param role: ``"both"``, ``"algorithm"`` or ``"runner"``; None reads ``AGL_ROLE`` (default both).
    :param server_host: interface to serve on (role algorithm/both) or server to reach (runner);
        None reads ``AGL_SERVER_HOST``, default 127.0.0.1. Serving on another interface without a
        token logs a warning: anyone who reaches the port can read and change the store.
    :param server_port: None reads ``AGL_SERVER_PORT``; default 4747, except role ``both``, which
        then picks a free port.
    :param token: bearer token of the server; None reads ``AGL_SERVER_TOKEN`` (unset: none).
    :param restart_runners: start a runner process again when it dies.
    :param max_restarts: most restarts in one run (None: unlimited when ``restart_runners``).
    :param graceful_seconds: how long runners may take to finish their rollout once stopped.
    :param terminate_seconds: how long runners may take after SIGTERM before SIGKILL.
    :param connect_timeout: role runner: how long to wait for the server to come up.
    :param server_lost_seconds: role runner: stop once the server has not answered this long.
    :param worker_index_offset: added to local runner indexes (``<worker_id_prefix>-<i>``).
    :param worker_id_prefix: prefix of the runners' worker ids; None: ``runner-<hostname>-<pid>``
        (unique across machines and runs).
    :param client_options: keyword arguments of each runner's ``LightningStoreClient``.
    """

    def __init__(
        self,
        role: Role | None = None,
        *,
        server_host: str | None = None,
        server_port: int | None = None,
        token: str | None = None,
        restart_runners: bool = False,
        max_restarts: int | None = None,
        graceful_seconds: float = 10.0,
        terminate_seconds: float = 5.0,
        connect_timeout: float = 60.0,
        server_lost_seconds: float = 10.0,
        worker_index_offset: int = 0,
        worker_id_prefix: str | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        role_value = role if role is not None else os.environ.get(ROLE_ENV, "both")
        if role_value not in ROLES:
            raise ValueError(
                f"Unknown role {role_value!r} (from {'the role argument' if role is not None else ROLE_ENV}); "
                f"expected one of: {', '.join(ROLES)}"
            )
        self.role: Role = role_value
        self.server_host = server_host or os.environ.get(HOST_ENV) or DEFAULT_HOST
        port: Any = server_port if server_port is not None else os.environ.get(PORT_ENV)
        if port is None:
            port = 0 if self.role == "both" else DEFAULT_PORT
        try:
            self.server_port = int(port)
        except ValueError:
            raise ValueError(f"Server port must be an integer, got {port!r} (from {PORT_ENV})") from None
        if not 0 <= self.server_port <= 65535 or (self.server_port == 0 and self.role == "runner"):
            raise ValueError(f"Server port must be in 1..65535 (0: any free one when serving), got {port!r}")
        self.token = token_from_env(token)
        self.restart_runners = restart_runners
        self.max_restarts = check_positive_int("max_restarts", max_restarts, minimum=0, allow_none=True)
        self.graceful_seconds = check_seconds("graceful_seconds", graceful_seconds, allow_none=False)
        self.terminate_seconds = check_seconds("terminate_seconds", terminate_seconds, allow_none=False)
        self.connect_timeout = check_seconds("connect_timeout", connect_timeout, allow_none=False)
        self.server_lost_seconds = check_seconds("server_lost_seconds", server_lost_seconds, allow_none=False)
        self.worker_index_offset = check_positive_int("worker_index_offset", worker_index_offset, minimum=0)
        if worker_id_prefix is None:
            worker_id_prefix = f"runner-{socket.gethostname()}-{os.getpid()}"
        elif not isinstance(worker_id_prefix, str) or not worker_id_prefix:
            raise ValueError(f"worker_id_prefix must be a non-empty string or None, got {worker_id_prefix!r}")
        self.worker_id_prefix = worker_id_prefix
        self.client_options = dict(client_options or {})
        self.restarts = 0
        """Runner processes restarted in the last run (for tests and monitoring)."""
        self.server_url: str | None = None
        """URL of the server of the current run, once it listens (role algorithm/both)."""
        self._fleet: _Fleet | None = None

    def worker_id(self, index: int) -> str:
        """The worker id this strategy gives the runner of ``index`` (offset included)."""
        return f"{self.worker_id_prefix}-{index}"

    def runner_pids(self) -> dict[int, int]:
        """``{worker index: process id}`` of the local runner processes running now.

        The store knows the runner of index ``i`` by the id in :meth:`runner_worker_ids`.
        """
        fleet = self._fleet
        if fleet is None:
            return {}
        offset = self.worker_index_offset
        return {
            slot + offset: p.pid
            for slot, p in list(fleet.processes.items())
            if p.pid is not None and p.exitcode is None
        }

    def runner_worker_ids(self) -> dict[int, str]:
        """``{worker index: store worker id}`` of the local runner processes of the current run."""
        fleet = self._fleet
        if fleet is None:
            return {}
        offset = self.worker_index_offset
        return {slot + offset: worker_id for slot, worker_id in fleet.worker_ids.items()}

    def __repr__(self) -> str:
        return f"ClientServerExecutionStrategy(role={self.role!r}, {self.server_host}:{self.server_port})"

    # --- entry point ---------------------------------------------------------------------

    def execute(
        self,
        algorithm: AlgorithmBundle,
        runner: RunnerBundle,
        store: LightningStore,
        *,
        n_runners: int = 1,
    ) -> None:
        check_positive_int("n_runners", n_runners)
        self.restarts = 0
        fleet = None
        if self.role != "algorithm":
            check_main_guard()
            fleet = _Fleet(self, runner, n_runners)
            self._fleet = fleet
        elif n_runners > 1:
            logger.info("Role 'algorithm' starts no runners; n_runners=%d is ignored", n_runners)
        try:
            anyio.run(
                self._main, algorithm, store, fleet, backend="asyncio", backend_options=event_loop_options()
            )
        except BaseExceptionGroup as group:
            raise single_exception(group) from None
        finally:
            if fleet is not None:
                fleet.kill_all()  # only matters when shutdown was cut short (e.g. a second Ctrl+C)

    async def _main(self, algorithm: AlgorithmBundle, store: LightningStore, fleet: _Fleet | None) -> None:
        if self.role == "runner":
            assert fleet is not None
            await self._run_runners_only(fleet)
        else:
            await self._serve(algorithm, store, fleet)

    async def _serve(self, algorithm: AlgorithmBundle, store: LightningStore, fleet: _Fleet | None) -> None:
        from agentlightning_core.remote.server import LightningStoreServer

        stop = fleet.stop if fleet is not None else threading.Event()
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(store)
            try:
                server = await stack.enter_async_context(
                    LightningStoreServer(store, self.server_host, self.server_port, token=self.token)
                )
            except OSError as exc:
                raise OSError(
                    exc.errno,
                    f"The 'cs' strategy cannot serve the store on {self.server_host}:{self.server_port}: "
                    f"{os.strerror(exc.errno) if exc.errno else exc}. Give it another port, e.g. strategy={{'type': 'cs', 'server_port': 0}} "
                    f"(0: any free one), or set {PORT_ENV}, or stop the process using the port.",
                ) from None
            self.server_url = server.url
            if fleet is None:
                logger.info("Store server for runners at %s (role 'algorithm')", server.url)
                await algorithm(store, stop)
                return
            fleet.store = store
            interrupted = True
            try:
                async with anyio.create_task_group() as tg:

                    async def run_algorithm() -> None:
                        await algorithm(store, stop)
                        tg.cancel_scope.cancel()

                    fleet.start(server.url)
                    tg.start_soon(run_algorithm, name="algorithm")
                    await fleet.supervise()
                    # Every runner finished its max_rollouts: nobody is left to execute rollouts.
                    logger.warning(
                        "Every runner process finished (max_rollouts reached) before the algorithm; stopping it"
                    )
                    tg.cancel_scope.cancel()
                interrupted = False
            finally:
                with anyio.CancelScope(shield=True):
                    await fleet.shutdown(graceful=not interrupted)

    async def _run_runners_only(self, fleet: _Fleet) -> None:
        from agentlightning_core.remote.client import LightningStoreClient

        url = base_url(self.server_host, self.server_port)
        if not await _wait_for_server(url, self.connect_timeout):
            raise RunnerProcessError(
                f"No store server answered at {url}/health within {self.connect_timeout}s; start the "
                f"algorithm (role 'algorithm') first or check {HOST_ENV}/{PORT_ENV}"
            )
        graceful = False  # Ctrl+C or a lost server: no rollout can be finished and reported
        server_gone = False  # the job is over: nothing is left to report to
        # The supervisor's own client: it marks the attempts of runner processes that die.
        # Best effort, so few retries: a server that is gone must not delay the shutdown.
        options = {**fleet.client_options(), "max_retries": 1}
        async with LightningStoreClient(url, **options) as client:
            fleet.store = client
            try:
                async with anyio.create_task_group() as tg:
                    fleet.start(url)

                    async def watch_server() -> None:
                        nonlocal server_gone
                        await _watch_server(url, self.server_lost_seconds)
                        server_gone = True
                        logger.info("Store server %s went away; stopping the runner processes", url)
                        tg.cancel_scope.cancel()

                    tg.start_soon(watch_server, name="server-watch")
                    try:
                        await fleet.supervise()
                        graceful = True  # every runner finished its max_rollouts
                    except RunnerProcessError:
                        if await _healthy(url):
                            raise
                        server_gone = True
                        logger.info("Runner process failed and store server %s is gone; stopping", url)
                    tg.cancel_scope.cancel()
            finally:
                with anyio.CancelScope(shield=True):
                    await fleet.shutdown(graceful=graceful, server_gone=server_gone)


class _Fleet:
    """The local runner processes of one run: start, watch, restart, stop.

    Each process gets one end of its own pipe: the parent sends the stop message through it,
    the process sends back the traceback that ended it, and the process sees the parent die
    as end-of-file. (A ``multiprocessing.Event`` would not do: a runner SIGKILLed while
    holding the event's internal lock would block every other process on it.)
    """

    def __init__(self, strategy: ClientServerExecutionStrategy, runner: RunnerBundle, n_runners: int) -> None:
        self.strategy = strategy
        self.payload = _pickle_runner(runner)
        self.n_runners = n_runners
        self.ctx = multiprocessing.get_context("spawn")
        self.stop = threading.Event()
        self.processes: dict[int, BaseProcess] = {}
        self.pipes: dict[int, Connection] = {}
        self.url = ""
        self.store: LightningStore | None = None
        """Where the attempts of dead runners are marked (the served store, or a client)."""
        offset = strategy.worker_index_offset
        self.worker_ids = {slot: strategy.worker_id(slot + offset) for slot in range(n_runners)}
        """The store worker id of each slot (a restarted process keeps its slot's id)."""

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of the runners' store clients."""
        options = dict(self.strategy.client_options)
        options.setdefault("token", self.strategy.token)
        return options

    def start(self, url: str) -> None:
        self.url = url
        for slot in range(self.n_runners):
            self._spawn(slot)
        logger.info("Started %d runner process(es) against %s", self.n_runners, url)

    def _spawn(self, slot: int) -> None:
        index = slot + self.strategy.worker_index_offset
        worker_id = self.worker_ids[slot]
        ours, theirs = self.ctx.Pipe(duplex=True)
        process = self.ctx.Process(
            target=_runner_process,
            args=(self.payload, self.url, self.client_options(), index, worker_id, theirs),
            name=f"agl-runner-{index}",
        )
        process.start()
        theirs.close()
        self.processes[slot] = process
        self.pipes[slot] = ours

    async def supervise(self) -> None:
        """Watch the processes; returns when every one has finished its work (exit code 0)."""
        strategy = self.strategy
        while True:
            await anyio.sleep(_POLL_SECONDS)
            running = 0
            for slot, process in list(self.processes.items()):
                code = process.exitcode
                if code is None:
                    running += 1
                    continue
                if code == 0:
                    continue
                how = _describe_exit(code)
                detail = self._error_of(slot)
                logger.warning("Runner process %s (pid %s) %s", process.name, process.pid, how)
                await self.release_attempt(slot)
                allowed = strategy.max_restarts is None or strategy.restarts < strategy.max_restarts
                if code == _EXIT_LOAD_FAILED or not strategy.restart_runners or not allowed:
                    reason = (
                        "it could not load the agent (agents must be importable: define them at module level)"
                        if code == _EXIT_LOAD_FAILED
                        else "restart_runners is off"
                        if not strategy.restart_runners
                        else f"max_restarts={strategy.max_restarts} reached"
                    )
                    raise RunnerProcessError(
                        f"Runner process {process.name} {how}; not restarted because {reason}"
                        + (f"\n{detail}" if detail else "; its output (stderr) may say why")
                    )
                strategy.restarts += 1
                logger.warning("Restarting runner process %s (restart %d)", process.name, strategy.restarts)
                del self.processes[slot]  # before close(): runner_pids() reads the others' pids
                process.close()
                self.pipes.pop(slot).close()
                self._spawn(slot)
                running += 1
            if running == 0:
                return

    async def release_attempt(self, slot: int) -> None:
        """Mark the attempt the dead process of ``slot`` was running ``DEAD_RUNNER_STATUS``
        (:func:`release_dead_runner_attempt`). Errors are logged, not raised."""
        if self.store is not None:
            await release_dead_runner_attempt(self.store, self.worker_ids[slot], timeout=_RELEASE_SECONDS)

    def _error_of(self, slot: int) -> str:
        """The traceback the process of ``slot`` sent before it exited ('' if none)."""
        pipe = self.pipes[slot]
        text = ""
        try:
            while pipe.poll():
                message = pipe.recv()
                if isinstance(message, str):
                    text = message
        except (EOFError, OSError):
            pass
        return text

    async def shutdown(self, *, graceful: bool, server_gone: bool = False) -> None:
        """Stop message, wait, SIGTERM, wait, SIGKILL; returns when every process has exited.

        ``server_gone``: the store server went away (the job is over), so runners can report
        nothing and their clients would only retry: they get a short while after SIGTERM,
        then SIGKILL, which is then the normal end and logged at INFO, not WARNING.
        """
        self.stop.set()
        for pipe in self.pipes.values():
            with contextlib.suppress(OSError):  # OSError: the process is gone
                pipe.send(None)
        strategy = self.strategy
        if graceful and await self._wait(strategy.graceful_seconds):
            self._close_pipes()
            return
        self._signal(signal.SIGTERM)
        if server_gone:
            if not await self._wait(min(strategy.terminate_seconds, _SERVER_GONE_SECONDS)):
                logger.info("Stopping the runner processes (the store server is gone, nothing to report to)")
                self.kill_all()
            self._close_pipes()
            return
        if not await self._wait(strategy.terminate_seconds):
            logger.warning(
                "Runner processes still running %.1fs after SIGTERM; killing them", strategy.terminate_seconds
            )
            killed = [slot for slot, p in self.processes.items() if p.exitcode is None]
            self.kill_all()
            for slot in killed:  # they could not mark their attempts themselves
                await self.release_attempt(slot)
        self._close_pipes()

    async def _wait(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while any(p.exitcode is None for p in self.processes.values()):
            if time.monotonic() >= deadline:
                return False
            await anyio.sleep(_POLL_SECONDS)
        return True

    def _signal(self, signum: int) -> None:
        for process in self.processes.values():
            if process.exitcode is None and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signum)

    def _close_pipes(self) -> None:
        for pipe in self.pipes.values():
            pipe.close()

    def kill_all(self) -> None:
        """SIGKILL every process still running and reap them all."""
        self._signal(signal.SIGKILL)
        for process in self.processes.values():
            process.join(5.0)


# --- the runner process ----------------------------------------------------------------


def _runner_process(
    payload: bytes,
    url: str,
    client_options: dict[str, Any],
    index: int,
    worker_id: str,
    pipe: Connection,
) -> None:
    """Entry point of a runner process (spawned): unpickle the bundle, work the queue."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the parent's to handle
    try:
        runner: RunnerBundle = pickle.loads(payload)
    except BaseException:
        _report(pipe, index, "could not load its runner bundle")
        sys.exit(_EXIT_LOAD_FAILED)
    try:
        anyio.run(
            _run_worker,
            runner,
            url,
            client_options,
            index,
            worker_id,
            pipe,
            backend="asyncio",
            backend_options=event_loop_options(),
        )
    except BaseException as exc:
        if isinstance(exc, SystemExit) and not exc.code:
            raise
        _report(pipe, index, "failed")
        sys.exit(1)


def _report(pipe: Connection, index: int, what: str) -> None:
    text = traceback.format_exc()
    logger.error("Runner process %d %s:\n%s", index, what, text)
    with contextlib.suppress(OSError):
        pipe.send(text[-32_000:])  # fits the pipe's buffer: never blocks on a busy parent


async def _run_worker(
    runner: RunnerBundle,
    url: str,
    client_options: dict[str, Any],
    index: int,
    worker_id: str,
    pipe: Connection,
) -> None:
    from agentlightning_core.remote.client import LightningStoreClient

    stop = threading.Event()
    threading.Thread(target=_watch_parent, args=(pipe, stop), name="agl-stop-watch", daemon=True).start()
    async with LightningStoreClient(url, **client_options) as store, anyio.create_task_group() as tg:

        async def on_sigterm() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM) as signals:
                async for _ in signals:
                    logger.info("Runner process %d got SIGTERM: abandoning its rollout", index)
                    tg.cancel_scope.cancel()

        tg.start_soon(on_sigterm)
        await runner(store, worker_id, stop)
        tg.cancel_scope.cancel()


def _watch_parent(pipe: Connection, stop: threading.Event) -> None:
    """Set ``stop`` when the parent sends the stop message or dies (end of file)."""
    with contextlib.suppress(EOFError, OSError):
        pipe.recv()
    stop.set()


# --- helpers ---------------------------------------------------------------------------


def check_main_guard() -> None:
    """Raise when the running script starts a run at import time (not under
    ``if __name__ == "__main__":``): each spawned runner process re-imports the script as
    ``__mp_main__`` and would start the run again instead of working the queue."""
    frame = sys._getframe(1)
    main_frame = None
    while frame is not None:
        if frame.f_code.co_name == "<module>" and frame.f_globals.get("__name__") == "__main__":
            main_frame = frame
        frame = frame.f_back  # type: ignore[assignment]
    if main_frame is None:
        return
    filename, line = main_frame.f_code.co_filename, main_frame.f_lineno
    try:
        with open(filename, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), filename)
    except (OSError, SyntaxError, ValueError):
        return  # no source to read (-c, a notebook, a frozen app): spawn does not re-run it
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_main_test(node.test) and node.body:
            end = node.body[-1].end_lineno or node.body[-1].lineno
            if node.body[0].lineno <= line <= end:
                return
    raise RuntimeError(
        f"The 'cs' strategy starts runner processes with the 'spawn' method, and each one imports "
        f"{filename}; line {line} starts training at import time, so every runner process would start "
        f'training again. Put the code that starts training under `if __name__ == "__main__":` '
        f"(keep the agent itself at module level)."
    )


def _is_main_test(test: ast.expr) -> bool:
    if not (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq)):
        return False
    sides = [test.left, test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    values = [s.value for s in sides if isinstance(s, ast.Constant)]
    return names == ["__name__"] and values == ["__main__"]


def _pickle_runner(runner: RunnerBundle) -> bytes:
    try:
        return pickle.dumps(runner, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:
        raise TypeError(
            f"The 'cs' strategy sends the agent, runner, tracer and hooks to runner processes by pickle, "
            f"and pickling failed: {type(exc).__name__}: {exc}. Define agents and hooks at module level "
            f"(importable, not inside a function or under `if __name__ == '__main__'`) and give the tracer "
            f"as a name or dict (tracer='otel') rather than an instance."
        ) from exc


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


async def _healthy(url: str, timeout: float = 2.0) -> bool:
    import aiohttp

    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as session,
            session.get(url + "/health") as resp,
        ):
            return resp.status == 200
    except (aiohttp.ClientError, TimeoutError, OSError):
        return False


async def _wait_for_server(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.1
    while not await _healthy(url):
        if time.monotonic() >= deadline:
            return False
        await anyio.sleep(delay)
        delay = min(delay * 2, 2.0)
    return True


async def _watch_server(url: str, lost_seconds: float) -> None:
    """Return once ``url`` has not answered its health check for ``lost_seconds``."""
    last_ok = time.monotonic()
    while True:
        await anyio.sleep(min(1.0, max(lost_seconds / 4, 0.05)))
        if await _healthy(url):
            last_ok = time.monotonic()
        elif time.monotonic() - last_ok >= lost_seconds:
            return
