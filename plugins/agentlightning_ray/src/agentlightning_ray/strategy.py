""":class:`RayExecutionStrategy` (``ray``): runners as Ray actors, the algorithm in the driver.

The driver (the process calling ``Trainer.fit``) serves the trainer's store with a
:class:`~agentlightning_core.LightningStoreServer`, as the ``cs`` strategy does, and runs the
algorithm against the store object itself. Each runner is a Ray actor holding a
:class:`~agentlightning_core.LightningStoreClient` to that server, so actors may live on any
node of the cluster. Ray is imported when a run starts, never by the core.

Cluster: ``address`` is handed to :func:`ray.init` (``None``: ``RAY_ADDRESS``, else the
cluster last started on this machine with ``ray start``, else a new local one; ``"auto"``: an
existing cluster or an error; ``"ray://host:10001"``: Ray Client). A cluster this strategy
started is shut down after the run; one that was already connected (``ray.init`` called
before) is reused and left running. Usage statistics are off (``RAY_USAGE_STATS_ENABLED=0``
unless set) and the dashboard is only started when ``include_dashboard=True``.

Dead actors: Ray reports an actor whose process or node died through the runner's pending
call; the strategy logs it, marks the attempt that runner was running ``unresponsive`` at once
(so its rollout is retried or failed per its ``RolloutConfig``, as with ``cs``), and starts a
fresh actor in the same slot (same worker id, same placement bundle) while ``max_restarts``
allows, else stops the run with :class:`RunnerActorError`.

Stopping: when the algorithm returns, every actor is told to stop and finishes its rollout
(``graceful_seconds``); actors still running then are killed and their attempts marked
``unresponsive``. Ctrl+C kills the actors at once, with the same marking.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import secrets
import socket
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

import anyio

from agentlightning_core import (
    AgentLightningError,
    ExecutionStrategy,
    LightningStore,
    LightningStoreServer,
)
from agentlightning_core.execution.base import (
    DEAD_RUNNER_STATUS,
    AlgorithmBundle,
    RunnerBundle,
    release_dead_runner_attempt,
    single_exception,
)
from agentlightning_core.validation import check_positive_int, check_seconds

if TYPE_CHECKING:
    from types import ModuleType

__all__ = ["DEAD_RUNNER_STATUS", "PLACEMENT_STRATEGIES", "RayExecutionStrategy", "RunnerActorError"]

logger = logging.getLogger(__name__)

Placement = Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"]
PLACEMENT_STRATEGIES: tuple[Placement, ...] = ("PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD")
"""Ray placement group strategies accepted by ``placement``."""

"""What the attempt of a runner actor that died becomes: the worker was lost, as with ``cs``."""

HOST_ENV = "AGL_SERVER_HOST"
TOKEN_ENV = "AGL_SERVER_TOKEN"
USAGE_STATS_ENV = "RAY_USAGE_STATS_ENABLED"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_ANY_HOST = frozenset({"0.0.0.0", "::", ""})
_MANAGED_OPTIONS = {
    "num_cpus": "num_cpus=",
    "num_gpus": "num_gpus=",
    "resources": "resources=",
    "max_restarts": "max_restarts= (the strategy restarts runner actors itself)",
    "max_concurrency": "nothing (the runner actor needs its two threads)",
}
_POLL_SECONDS = 0.05
_RELEASE_SECONDS = 5.0


class RunnerActorError(AgentLightningError, RuntimeError):
    """A runner actor failed, died and was not restarted, or could not be placed."""


class RayExecutionStrategy(ExecutionStrategy):
    """Run the runners as Ray actors and the algorithm in this process (see the module docs).

    :param address: cluster to connect to, as :func:`ray.init` takes it (``"auto"``,
        ``"ray://head:10001"``, ``"head:6379"``); None: ``RAY_ADDRESS`` or a local cluster.
    :param num_runners: number of runner actors; None: the trainer's ``n_runners``.
    :param num_cpus: CPUs Ray reserves for each runner actor (fractions allowed).
    :param num_gpus: GPUs Ray reserves for each runner actor.
    :param resources: custom Ray resources per runner actor, e.g. ``{"runner_host": 1}``.
    :param placement: None (Ray places actors where resources are free) or a placement group
        strategy for one bundle per runner: ``"PACK"``, ``"SPREAD"``, ``"STRICT_PACK"``,
        ``"STRICT_SPREAD"``.
    :param actor_options: further ``.options()`` of the actors (``runtime_env``, ``memory``, ...).
    :param init_options: further keyword arguments of :func:`ray.init` (e.g. ``num_cpus`` of a
        local cluster); ignored when Ray is already initialized.
    :param include_dashboard: start Ray's dashboard with a local cluster.
    :param server_host: interface the store server binds; None reads ``AGL_SERVER_HOST``, else
        this node's IP when joining an existing cluster (``address`` or ``RAY_ADDRESS`` given:
        hosts may join later) or when the cluster spans several hosts, else 127.0.0.1.
    :param server_port: port of the store server (0: any free one).
    :param server_url: the URL actors use to reach the store server, when it differs from
        ``http://<server_host>:<port>`` (a TLS-terminating proxy, a NAT); None: derived.
    :param token: bearer token of the store server; None reads ``AGL_SERVER_TOKEN``; when both
        are unset and the server binds a non-loopback interface, a random token is generated
        (``strategy.token``) and handed to the actors.
    :param max_restarts: how often each runner's actor is started again after dying
        (0: never, the run stops; -1: without limit).
    :param start_timeout: seconds an actor may take to be placed and start; past it the run
        stops with an error naming the resources asked for and those of the cluster.
    :param graceful_seconds: how long actors may take to finish their rollout once stopped.
    :param worker_id_prefix: prefix of the runners' store worker ids; None:
        ``runner-ray-<hostname>-<pid>`` (unique across drivers).
    :param client_options: keyword arguments of each actor's ``LightningStoreClient``.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        num_runners: int | None = None,
        num_cpus: float = 1.0,
        num_gpus: float = 0.0,
        resources: Mapping[str, float] | None = None,
        placement: Placement | None = None,
        actor_options: Mapping[str, Any] | None = None,
        init_options: Mapping[str, Any] | None = None,
        include_dashboard: bool = False,
        server_host: str | None = None,
        server_port: int = 0,
        server_url: str | None = None,
        token: str | None = None,
        max_restarts: int = 0,
        start_timeout: float = 120.0,
        graceful_seconds: float = 10.0,
        worker_id_prefix: str | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        if address is not None and (not isinstance(address, str) or not address):
            raise ValueError(
                f"address must be a Ray address such as 'auto' or 'ray://head:10001', got {address!r}"
            )
        self.address = address
        self.num_runners = check_positive_int("num_runners", num_runners, allow_none=True)
        self.num_cpus = _check_amount("num_cpus", num_cpus)
        self.num_gpus = _check_amount("num_gpus", num_gpus)
        self.resources = {str(k): _check_amount(f"resources[{k!r}]", v) for k, v in (resources or {}).items()}
        if placement is not None and placement not in PLACEMENT_STRATEGIES:
            raise ValueError(
                f"Unknown placement {placement!r}; expected None or one of: {', '.join(PLACEMENT_STRATEGIES)}"
            )
        if placement is not None and not (self.num_cpus or self.num_gpus or any(self.resources.values())):
            raise ValueError(
                f"placement={placement!r} needs each runner to ask for some resource (a placement group "
                "bundle cannot be empty); give num_cpus, num_gpus or resources a positive amount"
            )
        self.placement = placement
        self.actor_options = dict(actor_options or {})
        for key, instead in _MANAGED_OPTIONS.items():
            if key in self.actor_options:
                raise ValueError(
                    f"actor_options[{key!r}] is set by the strategy; give RayExecutionStrategy({instead}) instead"
                )
        if placement is not None and "scheduling_strategy" in self.actor_options:
            raise ValueError(
                f"actor_options['scheduling_strategy'] conflicts with placement={placement!r}; give one of them"
            )
        self.init_options = dict(init_options or {})
        self.include_dashboard = bool(include_dashboard)
        self.server_host = server_host
        self.server_port = check_positive_int("server_port", server_port, minimum=0)
        if self.server_port > 65535:
            raise ValueError(f"server_port must be in 0..65535 (0: any free one), got {server_port!r}")
        if server_url is not None and not server_url.startswith(("http://", "https://")):
            raise ValueError(f"server_url must start with http:// or https://, got {server_url!r}")
        self.server_url = server_url
        self.token = token
        if isinstance(max_restarts, bool) or not isinstance(max_restarts, int) or max_restarts < -1:
            raise ValueError(
                f"max_restarts must be an integer >= 0, or -1 for no limit, got {max_restarts!r}"
            )
        self.max_restarts = max_restarts
        self.start_timeout = check_seconds("start_timeout", start_timeout, allow_none=False)
        self.graceful_seconds = check_seconds("graceful_seconds", graceful_seconds, allow_none=False)
        if worker_id_prefix is None:
            worker_id_prefix = f"runner-ray-{socket.gethostname()}-{os.getpid()}"
        elif not isinstance(worker_id_prefix, str) or not worker_id_prefix:
            raise ValueError(f"worker_id_prefix must be a non-empty string or None, got {worker_id_prefix!r}")
        self.worker_id_prefix = worker_id_prefix
        self.client_options = dict(client_options or {})
        self.restarts = 0
        """Runner actors started again in the last run (for tests and monitoring)."""
        self.store_url: str | None = None
        """The URL the actors of the current run reach the store at, once it is served."""
        self._fleet: _Fleet | None = None

    def __repr__(self) -> str:
        return f"RayExecutionStrategy(address={self.address!r}, num_cpus={self.num_cpus}, num_gpus={self.num_gpus})"

    def worker_id(self, index: int) -> str:
        """The store worker id of the runner of ``index``."""
        return f"{self.worker_id_prefix}-{index}"

    def runner_actors(self) -> dict[int, Any]:
        """``{runner index: Ray actor handle}`` of the current run (a restarted runner: its new actor)."""
        return dict(self._fleet.actors) if self._fleet is not None else {}

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
        if self.num_runners is not None and n_runners not in (1, self.num_runners):
            raise ValueError(
                f"Trainer(n_runners={n_runners}) contradicts RayExecutionStrategy(num_runners={self.num_runners}); "
                "give one of them"
            )
        count = self.num_runners or n_runners
        from agentlightning_ray import _actor

        if _actor.loading_driver_script:
            raise RuntimeError(
                "A runner actor imported the driver's script to find the agent, and the script started "
                'training at import time. Put the code that starts training under `if __name__ == "__main__":` '
                "(keep the agent itself at module level)."
            )
        self.restarts = 0
        ray = _import_ray()
        started = self._connect(ray)
        fleet = _Fleet(self, ray, runner, count)
        self._fleet = fleet
        try:
            anyio.run(self._main, algorithm, store, fleet, backend="asyncio")
        except BaseExceptionGroup as group:
            raise single_exception(group) from None
        finally:
            fleet.kill_all()
            if started:
                ray.shutdown()

    def _connect(self, ray: ModuleType) -> bool:
        """Connect to (or start) the cluster; True when this call did, so the run shuts it down."""
        os.environ.setdefault(USAGE_STATS_ENV, "0")
        if ray.is_initialized():
            logger.info("Ray is already initialized: the run uses that cluster and leaves it running")
            return False
        options = {"include_dashboard": self.include_dashboard, **self.init_options}
        try:
            ray.init(address=self.address, **options)
        except ConnectionError as exc:
            raise ConnectionError(
                f"Cannot connect to the Ray cluster at address={self.address!r}: {exc}. Start it first "
                "(`ray start --head` on the head node), check the address, or give address=None to start "
                "a local cluster."
            ) from exc
        return True

    def _bind_host(self, ray: ModuleType) -> str:
        host = self.server_host or os.environ.get(HOST_ENV)
        if host:
            return host
        here = str(ray.util.get_node_ip_address())
        if self.address is not None or os.environ.get("RAY_ADDRESS"):
            # a cluster started elsewhere may gain hosts after this (late nodes, an autoscaler)
            logger.info("Joined an existing Ray cluster: serving the store on %s (this node)", here)
            return here
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        if all(node.get("NodeManagerAddress") == here for node in nodes):
            return "127.0.0.1"
        logger.info("The Ray cluster spans several hosts: serving the store on %s (this node)", here)
        return here

    async def _main(self, algorithm: AlgorithmBundle, store: LightningStore, fleet: _Fleet) -> None:
        host = self._bind_host(fleet.ray)
        token = self.token if self.token is not None else os.environ.get(TOKEN_ENV)
        if not token and host not in _LOOPBACK:
            token = secrets.token_urlsafe(24)
            logger.info("Store server on %s: generated a bearer token for the runner actors", host)
        self.token = token or None
        stop = threading.Event()
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(store)
            server = await stack.enter_async_context(
                LightningStoreServer(store, host, self.server_port, token=self.token)
            )
            self.store_url = self.server_url or _advertised_url(fleet.ray, server.host, server.port)
            fleet.store = store
            interrupted = True
            try:
                async with anyio.create_task_group() as tg:

                    async def run_algorithm() -> None:
                        await algorithm(store, stop)
                        tg.cancel_scope.cancel()

                    fleet.start(self.store_url)
                    tg.start_soon(run_algorithm, name="algorithm")
                    await fleet.supervise()
                    logger.warning(
                        "Every runner actor finished (max_rollouts reached) before the algorithm; stopping it"
                    )
                    tg.cancel_scope.cancel()
                interrupted = False
            finally:
                stop.set()
                with anyio.CancelScope(shield=True):
                    await fleet.shutdown(graceful=not interrupted)


class _Fleet:
    """The runner actors of one run: start, watch, restart, stop."""

    def __init__(
        self, strategy: RayExecutionStrategy, ray: ModuleType, runner: RunnerBundle, count: int
    ) -> None:
        self.strategy = strategy
        self.ray = ray
        self.runner = runner
        self.count = count
        self.url = ""
        self.store: LightningStore | None = None
        self.actors: dict[int, Any] = {}
        self.runs: dict[int, Any] = {}  # slot -> ObjectRef of the actor's run() call
        self.pending_start: dict[int, tuple[Any, float]] = {}  # slot -> (ref of where(), deadline)
        self.restarts: dict[int, int] = {}
        self.placement_group: Any = None
        self.runner_ref: Any = None
        self.driver_script: str | None = None
        self.worker_ids = {slot: strategy.worker_id(slot) for slot in range(count)}

    def client_options(self) -> dict[str, Any]:
        options = dict(self.strategy.client_options)
        options.setdefault("token", self.strategy.token or "")
        return options

    def start(self, url: str) -> None:
        from agentlightning_ray._actor import RunnerActor

        strategy, ray = self.strategy, self.ray
        self.url = url
        self.actor_class = ray.remote(RunnerActor)
        try:
            payload = ray.cloudpickle.dumps(self.runner, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"The 'ray' strategy sends the agent, runner, tracer and hooks to the runner actors by pickle, "
                f"and pickling failed: {type(exc).__name__}: {exc}. Define agents and hooks at module level "
                "and give the tracer as a name or dict (tracer='otel') rather than an instance."
            ) from exc
        main = sys.modules.get("__main__")
        self.driver_script = getattr(main, "__file__", None) if b"__main__" in payload else None
        self.runner_ref = ray.put(payload)
        if strategy.placement is not None:
            from ray.util.placement_group import placement_group

            bundle = _bundle(strategy)
            self.placement_group = placement_group(
                [dict(bundle) for _ in range(self.count)], strategy=strategy.placement
            )
        for slot in range(self.count):
            self._spawn(slot)
        logger.info("Started %d runner actor(s) against the store at %s", self.count, url)

    def _options(self, slot: int) -> dict[str, Any]:
        strategy = self.strategy
        options: dict[str, Any] = {
            **strategy.actor_options,
            "num_cpus": strategy.num_cpus,
            "num_gpus": strategy.num_gpus,
            "max_concurrency": 2,
        }
        if strategy.resources:
            options["resources"] = dict(strategy.resources)
        if self.placement_group is not None:
            from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

            options["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                self.placement_group, placement_group_bundle_index=slot
            )
        return options

    def _spawn(self, slot: int) -> None:
        actor = self.actor_class.options(**self._options(slot)).remote()
        self.actors[slot] = actor
        self.runs[slot] = actor.run.remote(
            self.runner_ref, self.driver_script, self.url, self.client_options(), self.worker_ids[slot]
        )
        self.pending_start[slot] = (actor.where.remote(), time.monotonic() + self.strategy.start_timeout)

    async def supervise(self) -> None:
        """Watch the actors; returns when every one has finished its work."""
        ray = self.ray
        while self.runs:
            await anyio.sleep(_POLL_SECONDS)
            self._check_started()
            slot_of = {ref: slot for slot, ref in self.runs.items()}
            done, _ = ray.wait(list(slot_of), num_returns=len(slot_of), timeout=0)
            for ref in done:
                slot = slot_of[ref]
                del self.runs[slot]
                try:
                    ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    await self._on_death(slot, exc)
                except ray.exceptions.RayError as exc:
                    raise RunnerActorError(f"Runner actor {self.worker_ids[slot]} failed:\n{exc}") from None

    def _check_started(self) -> None:
        if not self.pending_start:
            return
        ray = self.ray
        refs = {ref: slot for slot, (ref, _) in self.pending_start.items()}
        done, _ = ray.wait(list(refs), num_returns=len(refs), timeout=0)
        for ref in done:
            del self.pending_start[refs[ref]]
        now = time.monotonic()
        late = sorted(slot for slot, (_, deadline) in self.pending_start.items() if now >= deadline)
        if late:
            asked = _bundle(self.strategy)
            raise RunnerActorError(
                f"Runner actor(s) {', '.join(self.worker_ids[s] for s in late)} did not start within "
                f"start_timeout={self.strategy.start_timeout}s. Each runner asks for {asked}"
                + (f" in a {self.strategy.placement} placement group" if self.strategy.placement else "")
                + f"; the cluster has {_resources(ray.cluster_resources())} in all, "
                f"{_resources(ray.available_resources())} free. Ask for less per runner (e.g. num_cpus=0.5), "
                "run fewer runners, or add nodes."
            )

    async def _on_death(self, slot: int, exc: BaseException) -> None:
        strategy, worker_id = self.strategy, self.worker_ids[slot]
        cause = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        logger.warning("Runner actor %s died: %s", worker_id, cause)
        await self.release_attempt(slot)
        self.pending_start.pop(slot, None)
        with contextlib.suppress(Exception):
            self.ray.kill(self.actors[slot], no_restart=True)
        done = self.restarts.get(slot, 0)
        if strategy.max_restarts != -1 and done >= strategy.max_restarts:
            raise RunnerActorError(
                f"Runner actor {worker_id} died ({cause}); not restarted because max_restarts={strategy.max_restarts}"
                + (
                    " (give max_restarts=N or -1 to restart dead runners)"
                    if strategy.max_restarts == 0
                    else " reached"
                )
            )
        self.restarts[slot] = done + 1
        strategy.restarts += 1
        logger.warning("Restarting runner actor %s (restart %d of this runner)", worker_id, done + 1)
        self._spawn(slot)

    async def release_attempt(self, slot: int) -> None:
        """Mark the attempt the runner of ``slot`` was running :data:`DEAD_RUNNER_STATUS`
        (:func:`release_dead_runner_attempt`). Errors are logged, not raised."""
        if self.store is not None:
            await release_dead_runner_attempt(
                self.store, self.worker_ids[slot], cause="whose actor died", timeout=_RELEASE_SECONDS
            )

    async def shutdown(self, *, graceful: bool) -> None:
        """Tell every actor to stop, wait ``graceful_seconds`` (when graceful), kill the rest and
        mark their attempts."""
        ray = self.ray
        if graceful:
            for slot in self.runs:
                with contextlib.suppress(Exception):
                    self.actors[slot].stop.remote()
            deadline = time.monotonic() + self.strategy.graceful_seconds
            while self.runs and time.monotonic() < deadline:
                slot_of = {ref: slot for slot, ref in self.runs.items()}
                done, _ = ray.wait(list(slot_of), num_returns=len(slot_of), timeout=0)
                for ref in done:
                    del self.runs[slot_of[ref]]
                if self.runs:
                    await anyio.sleep(_POLL_SECONDS)
            if self.runs:
                logger.warning(
                    "Runner actor(s) %s still running %.1fs after the stop; killing them",
                    ", ".join(self.worker_ids[s] for s in sorted(self.runs)),
                    self.strategy.graceful_seconds,
                )
        left = sorted(self.runs)
        self.kill_all()
        for slot in left:
            await self.release_attempt(slot)

    def kill_all(self) -> None:
        """Kill every actor of the run and remove its placement group (idempotent)."""
        for actor in self.actors.values():
            with contextlib.suppress(Exception):
                self.ray.kill(actor, no_restart=True)
        self.runs.clear()
        self.pending_start.clear()
        if self.placement_group is not None:
            from ray.util.placement_group import remove_placement_group

            with contextlib.suppress(Exception):
                remove_placement_group(self.placement_group)
            self.placement_group = None


# --- helpers ---------------------------------------------------------------------------


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - ray is a dependency of this distribution
        raise ImportError(
            f"The 'ray' strategy needs Ray ({exc}); install it with: pip install agentlightning-ray"
        ) from exc
    return ray


def _check_amount(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def _bundle(strategy: RayExecutionStrategy) -> dict[str, float]:
    """The resources one runner asks for, as a placement group bundle."""
    bundle = {"CPU": strategy.num_cpus, "GPU": strategy.num_gpus, **strategy.resources}
    return {key: amount for key, amount in bundle.items() if amount}


def _resources(resources: Mapping[str, float]) -> str:
    shown = {
        k: v for k, v in sorted(resources.items()) if not k.startswith(("node:", "memory", "object_store"))
    }
    return "{" + ", ".join(f"{k}: {v:g}" for k, v in shown.items()) + "}"


def _advertised_url(ray: ModuleType, host: str, port: int) -> str:
    """``http://host:port`` for the actors; a wildcard bind is advertised as this node's IP."""
    if host in _ANY_HOST:
        host = str(ray.util.get_node_ip_address())
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"
