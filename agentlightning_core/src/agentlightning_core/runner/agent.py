""":class:`LitAgentRunner`: executes a :class:`LitAgent` on rollouts from the store.

Per rollout: get its resources (the attempt's ``resources_id``; each id is fetched once and
cached), open the tracer's trace context, call the agent, record its result (a number
becomes a reward span, a list of spans is stored in one call, None leaves the tracer's
spans as the record), then store the attempt's final status and final reward. An exception
of the agent becomes an exception span and a ``failed`` attempt; it never stops the runner.
Errors of the store itself do stop it.

Idle runners poll the store with exponential back-off (1 ms doubling up to
``poll_interval``): the store contract has no blocking dequeue, and the back-off keeps an
idle runner at a few wake-ups per second while a busy one never sleeps.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import attrs

from agentlightning_core._deprecation import warn_deprecated
from agentlightning_core.hooks import HookCaller
from agentlightning_core.resources import NamedResources, ProxyLLM
from agentlightning_core.runner.base import Runner, StepResult
from agentlightning_core.spans import Span
from agentlightning_core.types import AttemptedRollout, AttemptStatus, RolloutMode
from agentlightning_core.validation import check_positive_int, check_seconds

if TYPE_CHECKING:
    from agentlightning_core.execution.base import StopSignal
    from agentlightning_core.hooks import Hook
    from agentlightning_core.litagent.base import LitAgent
    from agentlightning_core.store.base import LightningStore
    from agentlightning_core.tracer.base import Tracer

__all__ = ["AgentResultError", "LitAgentRunner", "reset_failure_log"]

logger = logging.getLogger(__name__)

T_task = TypeVar("T_task")

_FIRST_BACKOFF = 0.001
_CLEANUP_SECONDS = 5.0
_RESOURCES_CACHED = 8
"""Resources snapshots a runner keeps (oldest dropped first); algorithms use one or a few at a time."""


class LitAgentRunner(Runner[T_task]):
    """Runs a :class:`LitAgent` on rollouts dequeued from the store.

    :param tracer: the tracer recording each attempt (any tracer spec; default ``"otel"``).
    :param max_rollouts: stop after this many rollouts (None: until stopped).
    :param poll_interval: longest sleep between two dequeue tries of an idle runner.
    :param heartbeat_interval: seconds between worker heartbeats (``store.update_worker``)
        while :meth:`iter` runs. The current attempt's heartbeat is refreshed as often, or
        every third of its rollout's ``unresponsive_seconds`` when that is shorter.
    """

    def __init__(
        self,
        tracer: Any = None,
        *,
        max_rollouts: int | None = None,
        poll_interval: float = 0.05,
        heartbeat_interval: float = 10.0,
    ) -> None:
        check_positive_int("max_rollouts", max_rollouts, allow_none=True)
        check_seconds("poll_interval", poll_interval, allow_none=False)
        check_seconds("heartbeat_interval", heartbeat_interval, allow_none=False)
        from agentlightning_core.plugins import resolve_component
        from agentlightning_core.tracer.base import Tracer

        self.tracer: Tracer = resolve_component("tracer", "otel" if tracer is None else tracer, base=Tracer)
        self.max_rollouts = max_rollouts
        self.poll_interval = float(poll_interval)
        self.heartbeat_interval = float(heartbeat_interval)
        self.stats: dict[str, int] = {"rollouts": 0, "succeeded": 0, "failed": 0}
        self._hook_caller: HookCaller | None = None
        self._current: _Beat | None = None
        self._wake: anyio.Event | None = None
        self._limiter: anyio.CapacityLimiter | None = None
        self._tracer_worker: str | None = None
        self._resources_cache: dict[str, NamedResources] = {}

    # --- lifecycle ---------------------------------------------------------------------

    def init(self, agent: LitAgent[T_task], *, hooks: Sequence[Hook] = ()) -> None:
        agent.check()
        super().init(agent, hooks=hooks)
        self._hook_caller = HookCaller(self.hooks)

    def init_worker(self, worker_id: str, store: LightningStore) -> None:
        super().init_worker(worker_id, store)
        self.tracer.init_worker(worker_id, store)
        self._tracer_worker = worker_id

    def teardown_worker(self, worker_id: str) -> None:
        if self._tracer_worker is not None:
            self.tracer.teardown_worker(self._tracer_worker)
            self._tracer_worker = None
        super().teardown_worker(worker_id)

    # --- the queue loop ----------------------------------------------------------------

    async def iter(self, *, stop: StopSignal | None = None) -> None:
        _, store, worker_id = self._bound()
        stop = stop if stop is not None else threading.Event()
        done = 0
        await store.update_worker(worker_id, status="idle", heartbeat_stats=dict(self.stats))
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._heartbeat_loop, store, worker_id)
                backoff = _FIRST_BACKOFF
                while not stop.is_set() and (self.max_rollouts is None or done < self.max_rollouts):
                    attempted = await store.dequeue_rollout(worker_id=worker_id)
                    if attempted is None:
                        await anyio.sleep(backoff)
                        backoff = min(backoff * 2, self.poll_interval)
                        continue
                    backoff = _FIRST_BACKOFF
                    await self._execute(attempted)
                    done += 1
                tg.cancel_scope.cancel()
        finally:
            with anyio.move_on_after(_CLEANUP_SECONDS, shield=True):
                try:
                    await store.update_worker(worker_id, status="idle", heartbeat_stats=dict(self.stats))
                except Exception:  # don't mask the error that ended the loop
                    logger.warning("Could not mark worker %s idle", worker_id, exc_info=True)
        logger.debug("Runner %s stopped after %d rollouts", worker_id, done)

    async def _heartbeat_loop(self, store: LightningStore, worker_id: str) -> None:
        """Worker heartbeats every ``heartbeat_interval``; the current attempt's when it is due."""
        next_worker = anyio.current_time() + self.heartbeat_interval
        while True:
            self._wake = anyio.Event()
            current = self._current
            due = next_worker if current is None else min(next_worker, current.due)
            with anyio.move_on_after(due - anyio.current_time()):
                await self._wake.wait()  # set when an attempt needing quicker beats starts
            now = anyio.current_time()
            if now >= next_worker:
                next_worker = now + self.heartbeat_interval
                await store.update_worker(worker_id, heartbeat_stats=dict(self.stats))
            current = self._current
            if current is not None and now >= current.due:
                current.due = now + current.period
                attempted = current.attempted
                try:
                    await store.update_attempt(
                        attempted.rollout_id, attempted.attempt_id, last_heartbeat_time=time.time()
                    )
                except Exception:  # the attempt may have ended or been evicted meanwhile
                    logger.debug("Attempt heartbeat for %s failed", attempted.attempt_id, exc_info=True)

    def _start_beats(self, attempted: AttemptedRollout) -> None:
        """Make ``attempted`` the attempt the heartbeat loop refreshes.

        Its period is ``heartbeat_interval``, or a third of the rollout's
        ``unresponsive_seconds`` when that is shorter, so a live agent that records no span
        for a while is never taken for a dead one.
        """
        unresponsive = attempted.rollout.config.unresponsive_seconds
        period = (
            self.heartbeat_interval
            if unresponsive is None
            else min(self.heartbeat_interval, unresponsive / 3)
        )
        self._current = _Beat(attempted, period, anyio.current_time() + period)
        if period < self.heartbeat_interval and self._wake is not None:
            self._wake.set()  # the loop may be asleep until the next worker heartbeat

    # --- one task outside the queue ----------------------------------------------------

    async def step(
        self, task: T_task, *, resources: NamedResources | None = None, mode: RolloutMode | None = None
    ) -> StepResult:
        _, store, worker_id = self._bound()
        resources_id = (await store.add_resources(resources)).resources_id if resources is not None else None
        attempted = await store.start_rollout(task, mode=mode, resources_id=resources_id, worker_id=worker_id)
        result = await self._execute(attempted)
        result.rollout = await store.get_rollout_by_id(attempted.rollout_id)
        return result

    # --- one attempt -------------------------------------------------------------------

    async def _execute(self, attempted: AttemptedRollout) -> StepResult:
        agent, store, _ = self._bound()
        hooks = self._hook_caller or HookCaller(self.hooks)
        tracer = self.tracer
        rollout_id, attempt_id = attempted.rollout_id, attempted.attempt_id
        common = {"agent": agent, "runner": self, "tracer": tracer}
        self._start_beats(attempted)
        error: BaseException | None = None
        returned: list[Span] = []
        try:
            await hooks.fire("on_rollout_start", rollout=attempted, **common)
            async with tracer.trace_context(
                f"rollout {rollout_id}", rollout_id=rollout_id, attempt_id=attempt_id
            ) as trace:
                await hooks.fire("on_trace_start", rollout=attempted, **common)
                try:
                    resources = await self._resources(store, attempted)
                    result = await self._call(agent, attempted, resources)
                    returned = await self._record(store, attempted, result)
                except Exception as exc:
                    error = exc
                    _emit_exception(exc)
            traced = trace.spans
            await hooks.fire("on_trace_end", rollout=attempted, spans=traced, **common)
            spans = _merge(traced, returned)
            reward = _final_reward(spans)
            status = AttemptStatus.FAILED if error is not None else AttemptStatus.SUCCEEDED
            attempt = await store.update_attempt(rollout_id, attempt_id, status=status, reward=reward)
        except anyio.get_cancelled_exc_class():
            with anyio.move_on_after(_CLEANUP_SECONDS, shield=True):
                try:
                    await store.update_attempt(rollout_id, attempt_id, status=AttemptStatus.FAILED)
                except Exception:  # the cancellation must go on (e.g. the server is gone at SIGTERM)
                    logger.warning(
                        "Could not mark the cancelled attempt %s of rollout %s failed",
                        attempt_id,
                        rollout_id,
                        exc_info=True,
                    )
            raise
        finally:
            self._current = None
        if error is not None:
            _log_failure(error, rollout_id, attempt_id)
        self.stats["rollouts"] += 1
        self.stats["failed" if error is not None else "succeeded"] += 1
        finished = AttemptedRollout(rollout=attempted.rollout, attempt=attempt)
        await hooks.fire("on_rollout_end", rollout=finished, spans=spans, **common)
        return StepResult(rollout=attempted.rollout, attempt=attempt, spans=spans, reward=reward, error=error)

    async def _resources(self, store: LightningStore, attempted: AttemptedRollout) -> NamedResources:
        """The attempt's resources, fetched once per ``resources_id`` and cached (a new
        version of the resources is a new id: ``add_resources``)."""
        # Stores resolve "latest" when the attempt starts (store contract), so an attempt
        # without a resources id ran when there were none: no request needed.
        resources_id = attempted.attempt.resources_id
        if resources_id is None:
            return {}
        cached = self._resources_cache.get(resources_id)
        if cached is None:
            cached = (await store.get_resources_by_id(resources_id)).resources
            if len(self._resources_cache) >= _RESOURCES_CACHED:
                del self._resources_cache[next(iter(self._resources_cache))]
            self._resources_cache[resources_id] = cached
        return dict(cached)  # the agent may change its mapping; the cached one stays as fetched

    async def _call(
        self, agent: LitAgent[T_task], attempted: AttemptedRollout, resources: NamedResources
    ) -> Any:
        method, is_async = agent.implementation(attempted.mode)
        # each attempt gets its own LLM for every ProxyLLM: calls through the proxy are attributed to it
        resources = {
            name: r.for_attempt(attempted.rollout_id, attempted.attempt_id) if isinstance(r, ProxyLLM) else r
            for name, r in resources.items()
        }
        if is_async:
            return await method(attempted.input, resources, attempted)
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(
            functools.partial(method, attempted.input, resources, attempted),
            limiter=self._limiter,
            abandon_on_cancel=True,
        )

    async def _record(self, store: LightningStore, attempted: AttemptedRollout, result: Any) -> list[Span]:
        """Turn the agent's return value into the attempt's record; returns spans stored here."""
        if result is None:
            return []
        if isinstance(result, bool):
            warn_deprecated(
                "agent:bool",
                f"The agent returned {result!r}, which the earlier API read as reward {float(result)}; return "
                f"the number itself (return 1.0 if ... else 0.0)",
            )
            _emit_reward(1.0 if result else 0.0)
            return []
        if isinstance(result, (int, float)):
            _emit_reward(float(result))
            return []
        if isinstance(result, Sequence) and not isinstance(result, (str, bytes)):
            return await _store_spans(store, attempted, result)
        raise AgentResultError(
            f"The agent returned {type(result).__name__} {result!r:.80}; return None (the tracer's "
            f"spans are the record), a number (the final reward) or a list of spans"
        )


async def _store_spans(
    store: LightningStore, attempted: AttemptedRollout, items: Sequence[Any]
) -> list[Span]:
    """Store the spans an agent returned (``Span`` or OpenTelemetry ``ReadableSpan``) in one call."""
    rollout_id, attempt_id = attempted.rollout_id, attempted.attempt_id
    spans: list[Span] = []
    for item in items:
        if isinstance(item, Span):
            if item.rollout_id != rollout_id or item.attempt_id != attempt_id:
                item = attrs.evolve(item, rollout_id=rollout_id, attempt_id=attempt_id, sequence_id=0)
            spans.append(item)
        elif hasattr(item, "context") and hasattr(item, "get_span_context"):
            spans.append(
                Span.from_opentelemetry(item, rollout_id=rollout_id, attempt_id=attempt_id, sequence_id=0)
            )
        else:
            raise TypeError(
                f"The agent returned a list containing {type(item).__name__} {item!r:.80}; a returned list "
                f"must hold agentlightning_core.Span or OpenTelemetry ReadableSpan objects"
            )
    return await store.add_many_spans(spans) if spans else []


class AgentResultError(TypeError):
    """The agent returned something that is neither None, a number nor a list of spans."""


_failure_kinds_seen: set[str] = set()
_failure_lock = threading.Lock()


def reset_failure_log() -> None:
    """Log the next failure of every kind at WARNING again (the trainer calls this per run)."""
    with _failure_lock:
        _failure_kinds_seen.clear()


def _log_failure(error: BaseException, rollout_id: str, attempt_id: str) -> None:
    """The first failure of each kind (exception type) in a run at WARNING, the others at INFO."""
    kind = f"{type(error).__module__}.{type(error).__qualname__}"
    with _failure_lock:
        first = kind not in _failure_kinds_seen
        _failure_kinds_seen.add(kind)
    logger.log(
        logging.WARNING if first else logging.INFO,
        "Rollout %s attempt %s failed: %s: %s%s",
        rollout_id,
        attempt_id,
        type(error).__name__,
        error,
        " (later failures of this kind are logged at INFO; `agl traces show` prints a rollout's trace)"
        if first
        else "",
    )


@attrs.define(slots=True)
class _Beat:
    """The attempt the heartbeat loop refreshes, its period and when the next beat is due."""

    attempted: AttemptedRollout
    period: float
    due: float


def _merge(traced: list[Span], returned: list[Span]) -> list[Span]:
    if not returned:
        return traced
    if not traced:
        return returned
    return sorted([*traced, *returned], key=lambda s: s.sequence_id)


def _emit_reward(value: float) -> None:
    from agentlightning_core.emitter import emit_reward

    emit_reward(value)


def _emit_exception(exc: BaseException) -> None:
    from agentlightning_core.emitter import emit_exception

    try:
        emit_exception(exc)
    except Exception:
        logger.warning("Could not record the agent's exception as a span", exc_info=True)


def _final_reward(spans: Sequence[Span]) -> float | None:
    from agentlightning_core.emitter import find_final_reward

    return find_final_reward(spans)
