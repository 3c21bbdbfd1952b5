"""``LightningStoreClient``: a :class:`LightningStore` that talks to a store server over HTTP.

- One pooled aiohttp session per client (created on first use, in that event loop).
- Retries with exponential backoff and jitter on connection errors, timeouts, 408, 429 and
  5xx (honouring ``Retry-After``); never on other 4xx, which raise the core's exception of
  the server's error name (``RolloutNotFoundError`` for an unknown rollout, ``ValueError`` for
  invalid values). Every write carries an ``Idempotency-Key`` that stays the same across its
  retries, so a retried ``dequeue_rollout`` is answered, not run twice.
- Span writes are batched: spans added while span requests are in flight wait in a buffer
  and go out together in the next ``add_span_groups`` request (up to ``max_span_batch``
  spans), one group per caller so one caller's refused span cannot fail another's. Every span call
  returns once its spans are stored; any other call first waits for buffered spans, and
  :meth:`aclose` sends whatever is left, so no span is lost or overtaken.
- ``wait_for_rollouts`` is sent as a series of bounded waits (``wait_poll_seconds``) so no
  request idles long enough to be cut by a proxy or the request timeout.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import attrs

from agentlightning_core._records import copier
from agentlightning_core.codec import to_json_value
from agentlightning_core.errors import StoreUnavailableError
from agentlightning_core.remote._config import DEFAULT_URL, token_from_env
from agentlightning_core.remote._jsonio import dumps, loads
from agentlightning_core.remote._protocol import (
    CLIENT_ID_HEADER,
    IDEMPOTENCY_HEADER,
    INT,
    INTS,
    OBJECT,
    OPERATIONS,
    STORE_PREFIX,
    ResultType,
    exception_for_error,
    list_of,
    model,
    optional,
    page,
)
from agentlightning_core.resources import NamedResources, ResourcesUpdate
from agentlightning_core.spans import Span
from agentlightning_core.store.base import (
    UNSET,
    EnqueueRequest,
    FilterLogic,
    LightningStore,
    PaginatedResult,
    RolloutSortKey,
    SortOrder,
    SpanSortKey,
    Unset,
    WorkerSortKey,
)
from agentlightning_core.types import (
    Attempt,
    AttemptedRollout,
    AttemptStatus,
    Rollout,
    RolloutConfig,
    RolloutMode,
    RolloutStatus,
    Worker,
    WorkerStatus,
)
from agentlightning_core.validation import check_positive_int, check_seconds

if TYPE_CHECKING:
    import aiohttp
    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["RETRY_STATUSES", "LightningStoreClient"]

logger = logging.getLogger(__name__)

#: ``copy(span, sequence_id)``: a stored span as the store numbered it (the server checked it).
_with_sequence_id = copier(Span, ("sequence_id",))

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})

R = TypeVar("R")
# The result types the client decodes, built once (each equals its operation's in the table).
_ROLLOUT = model(Rollout)
_ROLLOUTS = list_of(Rollout)
_ROLLOUT_PAGE = page(Rollout)
_ATTEMPTED = model(AttemptedRollout)
_ATTEMPTED_LIST = list_of(AttemptedRollout)
_MAYBE_ATTEMPTED = optional(AttemptedRollout)
_ATTEMPT = model(Attempt)
_MAYBE_ATTEMPT = optional(Attempt)
_ATTEMPT_PAGE = page(Attempt)
_SPAN_PAGE = page(Span)
_RESOURCES = model(ResourcesUpdate)
_MAYBE_RESOURCES = optional(ResourcesUpdate)
_RESOURCES_PAGE = page(ResourcesUpdate)
_WORKER = model(Worker)
_WORKER_PAGE = page(Worker)


class LightningStoreClient(LightningStore):
    """Store client of a :class:`~agentlightning_core.remote.server.LightningStoreServer`.

    :param url: the server's base URL.
    :param token: bearer token; None reads ``AGL_SERVER_TOKEN`` (unset: no token).
    :param timeout: seconds one HTTP request may take (waits add their own duration).
    :param max_retries: retries after the first try of a call, for retryable failures only.
    :param backoff_seconds: first retry delay; doubles per retry up to ``max_backoff_seconds``.
    :param max_span_batch: most spans per span request.
    :param span_requests_in_flight: most span requests sent at once (so encoding the next
        batch overlaps with the server storing the previous one).
    :param connection_limit: most simultaneous connections to the server.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        max_retries: int = 8,
        backoff_seconds: float = 0.1,
        max_backoff_seconds: float = 5.0,
        max_span_batch: int = 1000,
        span_requests_in_flight: int = 2,
        connection_limit: int = 100,
        wait_poll_seconds: float = 30.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"LightningStoreClient url must start with http:// or https://, got {url!r}")
        what = "LightningStoreClient"
        self.url = url.rstrip("/")
        self.token = token_from_env(token)
        self.timeout = check_seconds(f"{what} timeout", timeout, allow_none=False)
        self.max_retries = check_positive_int(f"{what} max_retries", max_retries, minimum=0)
        self.backoff_seconds = check_seconds(f"{what} backoff_seconds", backoff_seconds, allow_none=False)
        self.max_backoff_seconds = check_seconds(
            f"{what} max_backoff_seconds", max_backoff_seconds, allow_none=False
        )
        self.max_span_batch = check_positive_int(f"{what} max_span_batch", max_span_batch)
        self.span_requests_in_flight = check_positive_int(
            f"{what} span_requests_in_flight", span_requests_in_flight
        )
        self.connection_limit = check_positive_int(f"{what} connection_limit", connection_limit)
        self.wait_poll_seconds = check_seconds(
            f"{what} wait_poll_seconds", wait_poll_seconds, allow_none=False
        )
        self.retries = 0
        """How many retries this client made (for tests and monitoring)."""
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._span_buffer: list[tuple[list[Span], asyncio.Future[list[Span]]]] = []
        self._span_flushers: set[asyncio.Task[None]] = set()
        self._closed = False
        # New in every process (the runtime state is not pickled): the server keeps
        # idempotency keys per client id, so no two clients share their answers.
        self.client_id = secrets.token_hex(8)
        self._rng = random.Random()  # retry jitter, seeded from the OS: independent of `random.seed`

    def __getstate__(self) -> dict[str, Any]:
        """Pickle the configuration only (a client can be sent to a runner process before use)."""
        state = self.__dict__.copy()
        for name in ("_session", "_loop", "_span_buffer", "_span_flushers", "_closed", "client_id", "_rng"):
            state.pop(name, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_runtime()

    def __repr__(self) -> str:
        return f"LightningStoreClient({self.url!r})"

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        self._get_session()

    async def aclose(self) -> None:
        """Send buffered spans, then close the connections. Idempotent."""
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            session, self._session = self._session, None
            if session is not None:
                await session.close()

    def _get_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._closed:
            raise RuntimeError(f"{self!r} is closed; create a new client")
        if self._session is None:
            import aiohttp

            headers = {"Content-Type": "application/json", CLIENT_ID_HEADER: self.client_id}
            if self.token:
                headers["Authorization"] = f"Bearer {self.token}"
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connection_limit),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
            self._loop = loop
        elif self._loop is not loop:
            raise RuntimeError(
                f"{self!r} was first used in another event loop; create one client per event loop (thread)"
            )
        return self._session

    # --- requests -----------------------------------------------------------------------

    async def _call(
        self, name: str, body: dict[str, Any], result: ResultType[R], *, timeout: float | None = None
    ) -> R:
        """Run store operation ``name`` (after buffered spans are stored) and decode its result."""
        await self.flush()
        op = OPERATIONS[name]
        assert op.result == result, f"{name} answers {op.result}, not {result}"
        data = await self._request(name, body, idempotent=op.read_only, timeout=timeout)
        return result.decode(data)

    async def _request(
        self, name: str, body: dict[str, Any], *, idempotent: bool, timeout: float | None = None
    ) -> Any:
        import aiohttp

        session = self._get_session()
        payload = dumps(body)
        # A fresh key per call from the OS's randomness: the global ``random`` module is
        # seeded alike by training scripts in every process, so its keys would collide.
        headers = None if idempotent else {IDEMPOTENCY_HEADER: secrets.token_hex(16)}
        url = self.url + STORE_PREFIX + name
        request_timeout = aiohttp.ClientTimeout(total=self.timeout + timeout) if timeout is not None else None
        attempt = 0
        while True:
            retry_after: float | None = None
            try:
                async with session.post(url, data=payload, headers=headers, timeout=request_timeout) as resp:
                    status = resp.status
                    raw = await resp.read()
                    if status == 200:
                        return loads(raw)
                    failure = self._error(status, raw)
                    if status not in RETRY_STATUSES:
                        raise failure
                    retry_after = _retry_after(resp.headers.get("Retry-After"))
                    reason = f"HTTP {status}: {failure}"
            except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, TimeoutError) as exc:
                failure = exc
                reason = f"{type(exc).__name__}: {exc}"
            if attempt >= self.max_retries:
                raise StoreUnavailableError(
                    f"Store server {self.url} failed {name} after {attempt + 1} tries; last error: {reason}. "
                    "Check that the server is running and reachable."
                ) from failure
            delay = min(self.max_backoff_seconds, self.backoff_seconds * 2**attempt)
            delay = max(delay * (0.5 + self._rng.random() / 2), retry_after or 0.0)
            attempt += 1
            self.retries += 1
            logger.debug("Retrying %s in %.2fs (try %d): %s", name, delay, attempt + 1, reason)
            await asyncio.sleep(delay)

    def _error(self, status: int, raw: bytes) -> Exception:
        try:
            body = loads(raw)
            name, message = body.get("error"), body.get("message")
        except (ValueError, AttributeError):
            name, message = None, None
        if not isinstance(message, str):
            message = f"HTTP {status} from {self.url}: {raw[:200]!r}"
        return exception_for_error(status, name if isinstance(name, str) else None, message)

    # --- span batching ------------------------------------------------------------------

    async def _store_spans(self, spans: Sequence[Span]) -> list[Span]:
        """Buffer ``spans`` and return those newly stored.

        More than ``max_span_batch`` spans go in chunks, one after the other, so the store
        allocates their sequence ids in order; different callers' spans travel together.
        """
        if not spans:
            return []
        self._get_session()  # fail early when closed or in the wrong loop
        if len(spans) <= self.max_span_batch:
            return await self._store_span_group(list(spans))
        stored: list[Span] = []
        for i in range(0, len(spans), self.max_span_batch):
            stored += await self._store_span_group(list(spans[i : i + self.max_span_batch]))
        return stored

    async def _store_span_group(self, group: list[Span]) -> list[Span]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Span]] = loop.create_future()
        self._span_buffer.append((group, future))
        flushers = self._span_flushers
        if len(flushers) < self.span_requests_in_flight:
            task = loop.create_task(self._flush_spans())
            flushers.add(task)
            task.add_done_callback(flushers.discard)
        return await future

    def _next_span_request(self) -> list[tuple[list[Span], asyncio.Future[list[Span]]]]:
        taken = 0
        count = 0
        for group, _ in self._span_buffer:
            if count and taken + len(group) > self.max_span_batch:
                break
            taken += len(group)
            count += 1
        request = self._span_buffer[:count]
        del self._span_buffer[:count]
        return request

    async def _flush_spans(self) -> None:
        while self._span_buffer:
            request = self._next_span_request()
            groups = [[s.to_dict() for s in group] for group, _ in request]
            try:
                answers = await self._request("add_span_groups", {"groups": groups}, idempotent=False)
            except BaseException as exc:
                for _, future in request:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else asyncio.CancelledError())
                if not isinstance(exc, Exception):
                    raise
                continue
            for (group, future), answer in zip(request, answers, strict=True):
                if future.done():
                    continue
                if "sequence_ids" in answer:
                    # The stored spans, with the sequence ids the store allocated: copies
                    # where an id was allocated, so the caller's span objects stay as given.
                    stored = []
                    for span, seq in zip(group, answer["sequence_ids"], strict=True):
                        if seq is not None:
                            if span.sequence_id == seq:
                                stored.append(span)
                            elif type(span) is Span:
                                stored.append(_with_sequence_id(span, seq))  # ~10x cheaper than evolve
                            else:
                                stored.append(attrs.evolve(span, sequence_id=seq))
                    future.set_result(stored)
                else:
                    future.set_exception(
                        exception_for_error(answer["status"], answer["error"], answer["message"])
                    )

    async def flush(self) -> None:
        """Wait until every buffered span was sent."""
        while self._span_flushers:
            await asyncio.shield(asyncio.gather(*self._span_flushers))

    # --- rollouts -----------------------------------------------------------------------

    async def start_rollout(
        self,
        input: Any,
        mode: RolloutMode | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | None = None,
        metadata: dict[str, Any] | None = None,
        worker_id: str | None = None,
    ) -> AttemptedRollout:
        body = _body(
            input=input,
            mode=mode,
            resources_id=resources_id,
            config=config,
            metadata=metadata,
            worker_id=worker_id,
        )
        return await self._call("start_rollout", body, _ATTEMPTED)

    async def enqueue_rollout(
        self,
        input: Any,
        mode: RolloutMode | None = None,
        resources_id: str | None = None,
        config: RolloutConfig | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Rollout:
        body = _body(input=input, mode=mode, resources_id=resources_id, config=config, metadata=metadata)
        return await self._call("enqueue_rollout", body, _ROLLOUT)

    async def enqueue_many_rollouts(self, requests: Sequence[EnqueueRequest]) -> list[Rollout]:
        return await self._call(
            "enqueue_many_rollouts", {"requests": to_json_value(list(requests))}, _ROLLOUTS
        )

    async def dequeue_rollout(self, worker_id: str | None = None) -> AttemptedRollout | None:
        return await self._call("dequeue_rollout", _body(worker_id=worker_id), _MAYBE_ATTEMPTED)

    async def dequeue_many_rollouts(self, limit: int, worker_id: str | None = None) -> list[AttemptedRollout]:
        return await self._call(
            "dequeue_many_rollouts", _body(limit=limit, worker_id=worker_id), _ATTEMPTED_LIST
        )

    async def start_attempt(self, rollout_id: str, worker_id: str | None = None) -> AttemptedRollout:
        return await self._call(
            "start_attempt", _body(rollout_id=rollout_id, worker_id=worker_id), _ATTEMPTED
        )

    async def query_rollouts(
        self,
        *,
        status_in: Sequence[RolloutStatus | str] | None = None,
        rollout_id_in: Sequence[str] | None = None,
        rollout_id_contains: str | None = None,
        filter_logic: FilterLogic = "and",
        sort_by: RolloutSortKey | None = None,
        sort_order: SortOrder = "asc",
        limit: int = -1,
        offset: int = 0,
    ) -> PaginatedResult[Rollout]:
        body = _body(
            status_in=status_in,
            rollout_id_in=rollout_id_in,
            rollout_id_contains=rollout_id_contains,
            filter_logic=filter_logic,
            sort_by=sort_by,
            sort_order=sort_order,
            limit=limit,
            offset=offset,
        )
        return await self._call("query_rollouts", body, _ROLLOUT_PAGE)

    async def get_rollout_by_id(self, rollout_id: str) -> Rollout:
        return await self._call("get_rollout_by_id", _body(rollout_id=rollout_id), _ROLLOUT)

    async def update_rollout(
        self,
        rollout_id: str,
        *,
        input: Any = UNSET,
        mode: RolloutMode | Unset | None = UNSET,
        resources_id: str | Unset | None = UNSET,
        status: RolloutStatus | str | Unset = UNSET,
        config: RolloutConfig | Unset = UNSET,
        metadata: dict[str, Any] | Unset = UNSET,
    ) -> Rollout:
        body = _body(
            rollout_id=rollout_id,
            input=input,
            mode=mode,
            resources_id=resources_id,
            status=status,
            config=config,
            metadata=metadata,
        )
        return await self._call("update_rollout", body, _ROLLOUT)

    async def wait_for_rollouts(
        self, rollout_ids: Sequence[str], timeout: float | None = None
    ) -> list[Rollout]:
        ids = list(rollout_ids)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = self.wait_poll_seconds if deadline is None else max(0.0, deadline - time.monotonic())
            chunk = min(remaining, self.wait_poll_seconds)
            done = await self._call(
                "wait_for_rollouts", {"rollout_ids": ids, "timeout": chunk}, _ROLLOUTS, timeout=chunk
            )
            if len(done) >= len(ids) or (deadline is not None and time.monotonic() >= deadline):
                return done

    # --- attempts -----------------------------------------------------------------------

    async def query_attempts(
        self,
        rollout_id: str,
        *,
        sort_by: Literal["sequence_id", "start_time"] = "sequence_id",
        sort_order: SortOrder = "asc",
        limit: int = -1,
        offset: int = 0,
    ) -> PaginatedResult[Attempt]:
        body = _body(
            rollout_id=rollout_id, sort_by=sort_by, sort_order=sort_order, limit=limit, offset=offset
        )
        return await self._call("query_attempts", body, _ATTEMPT_PAGE)

    async def get_latest_attempt(self, rollout_id: str) -> Attempt | None:
        return await self._call("get_latest_attempt", _body(rollout_id=rollout_id), _MAYBE_ATTEMPT)

    async def update_attempt(
        self,
        rollout_id: str,
        attempt_id: str | Literal["latest"],
        *,
        status: AttemptStatus | str | Unset = UNSET,
        worker_id: str | Unset | None = UNSET,
        last_heartbeat_time: float | Unset = UNSET,
        metadata: dict[str, Any] | Unset = UNSET,
        reward: float | Unset | None = UNSET,
    ) -> Attempt:
        from agentlightning_core.store.policy import check_reward

        if not isinstance(reward, Unset):
            reward = check_reward(reward)  # checked here: JSON would turn NaN into null
        body = _body(
            rollout_id=rollout_id,
            attempt_id=attempt_id,
            status=status,
            worker_id=worker_id,
            last_heartbeat_time=last_heartbeat_time,
            metadata=metadata,
            reward=reward,
        )
        return await self._call("update_attempt", body, _ATTEMPT)

    # --- spans --------------------------------------------------------------------------

    async def add_span(self, span: Span) -> Span | None:
        stored = await self._store_spans([span])
        return stored[0] if stored else None

    async def add_many_spans(self, spans: Sequence[Span]) -> list[Span]:
        return await self._store_spans(spans)

    async def add_otel_span(
        self, rollout_id: str, attempt_id: str, readable_span: ReadableSpan, sequence_id: int | None = None
    ) -> Span | None:
        span = Span.from_opentelemetry(
            readable_span, rollout_id=rollout_id, attempt_id=attempt_id, sequence_id=sequence_id or 0
        )
        return await self.add_span(span)

    async def get_next_span_sequence_id(self, rollout_id: str, attempt_id: str) -> int:
        body = _body(rollout_id=rollout_id, attempt_id=attempt_id)
        return await self._call("get_next_span_sequence_id", body, INT)

    async def get_many_span_sequence_ids(self, rollout_attempt_ids: Sequence[tuple[str, str]]) -> list[int]:
        pairs = [[r, a] for r, a in rollout_attempt_ids]
        return await self._call("get_many_span_sequence_ids", {"rollout_attempt_ids": pairs}, INTS)

    async def query_spans(
        self,
        rollout_id: str,
        attempt_id: str | Literal["latest"] | None = None,
        *,
        name: str | None = None,
        name_contains: str | None = None,
        trace_id: str | None = None,
        trace_id_contains: str | None = None,
        span_id: str | None = None,
        span_id_contains: str | None = None,
        parent_id: str | None = None,
        parent_id_contains: str | None = None,
        filter_logic: FilterLogic = "and",
        sort_by: SpanSortKey = "sequence_id",
        sort_order: SortOrder = "asc",
        limit: int = -1,
        offset: int = 0,
    ) -> PaginatedResult[Span]:
        body = _body(
            rollout_id=rollout_id,
            attempt_id=attempt_id,
            name=name,
            name_contains=name_contains,
            trace_id=trace_id,
            trace_id_contains=trace_id_contains,
            span_id=span_id,
            span_id_contains=span_id_contains,
            parent_id=parent_id,
            parent_id_contains=parent_id_contains,
            filter_logic=filter_logic,
            sort_by=sort_by,
            sort_order=sort_order,
            limit=limit,
            offset=offset,
        )
        return await self._call("query_spans", body, _SPAN_PAGE)

    # --- resources ----------------------------------------------------------------------

    async def add_resources(self, resources: NamedResources) -> ResourcesUpdate:
        return await self._call("add_resources", {"resources": to_json_value(resources)}, _RESOURCES)

    async def update_resources(self, resources_id: str, resources: NamedResources) -> ResourcesUpdate:
        body = {"resources_id": resources_id, "resources": to_json_value(resources)}
        return await self._call("update_resources", body, _RESOURCES)

    async def get_resources_by_id(self, resources_id: str) -> ResourcesUpdate:
        return await self._call("get_resources_by_id", _body(resources_id=resources_id), _RESOURCES)

    async def get_latest_resources(self) -> ResourcesUpdate | None:
        return await self._call("get_latest_resources", {}, _MAYBE_RESOURCES)

    async def query_resources(
        self,
        *,
        resources_id: str | None = None,
        resources_id_contains: str | None = None,
        sort_by: Literal["create_time", "update_time", "resources_id"] = "update_time",
        sort_order: SortOrder = "asc",
        limit: int = -1,
        offset: int = 0,
    ) -> PaginatedResult[ResourcesUpdate]:
        body = _body(
            resources_id=resources_id,
            resources_id_contains=resources_id_contains,
            sort_by=sort_by,
            sort_order=sort_order,
            limit=limit,
            offset=offset,
        )
        return await self._call("query_resources", body, _RESOURCES_PAGE)

    # --- workers ------------------------------------------------------------------------

    async def query_workers(
        self,
        *,
        status_in: Sequence[WorkerStatus | str] | None = None,
        worker_id_contains: str | None = None,
        filter_logic: FilterLogic = "and",
        sort_by: WorkerSortKey | None = None,
        sort_order: SortOrder = "asc",
        limit: int = -1,
        offset: int = 0,
    ) -> PaginatedResult[Worker]:
        body = _body(
            status_in=status_in,
            worker_id_contains=worker_id_contains,
            filter_logic=filter_logic,
            sort_by=sort_by,
            sort_order=sort_order,
            limit=limit,
            offset=offset,
        )
        return await self._call("query_workers", body, _WORKER_PAGE)

    async def get_worker_by_id(self, worker_id: str) -> Worker:
        return await self._call("get_worker_by_id", _body(worker_id=worker_id), _WORKER)

    async def update_worker(
        self,
        worker_id: str,
        *,
        status: WorkerStatus | str | Unset = UNSET,
        heartbeat_stats: dict[str, Any] | Unset | None = UNSET,
    ) -> Worker:
        body = _body(worker_id=worker_id, status=status, heartbeat_stats=heartbeat_stats)
        return await self._call("update_worker", body, _WORKER)

    # --- introspection ------------------------------------------------------------------

    async def statistics(self) -> dict[str, Any]:
        return await self._call("statistics", {}, OBJECT)


def _body(**kwargs: Any) -> dict[str, Any]:
    """JSON body of keyword arguments; ``UNSET`` ones are left out (the server keeps them unset)."""
    return {k: to_json_value(v) for k, v in kwargs.items() if v is not UNSET}


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return min(max(float(value), 0.0), 60.0)
    except ValueError:
        return None
