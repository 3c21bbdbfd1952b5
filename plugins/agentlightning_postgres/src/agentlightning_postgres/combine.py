"""Group commit: calls of one kind that arrive while an earlier one is in flight run together.

A store's ``enqueue_rollout``, ``dequeue_rollout`` and ``update_attempt`` each go through a
:class:`Combiner`. A call that finds nothing of its kind in flight runs at once, alone (no
delay); calls that arrive meanwhile wait, and the next of them runs them all as one batch (one
transaction), so the client's per-statement work, the wake-ups and the commits are shared.

Each call keeps its own meaning: a batch that fails (one bad call among them) is run again one
call at a time, so the bad call raises for its caller only. A waiting call can be cancelled
until a batch takes it; from then on its database work runs shielded and the call returns its
result (the cancellation reaches the caller at its next checkpoint), so a rollout dequeued for
it is never lost.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

import anyio
import anyio.lowlevel

__all__ = ["Combiner"]

logger = logging.getLogger(__name__)

Req = TypeVar("Req")
Res = TypeVar("Res")


class _Call(Generic[Req, Res]):
    __slots__ = ("done", "error", "key", "request", "result", "taken", "wake")

    def __init__(self, request: Req, key: Hashable) -> None:
        self.request = request
        self.key = key
        self.taken = False
        """A batch holds it: it runs to the end, whatever happens to its caller."""
        self.done = False
        self.result: Res | None = None
        self.error: BaseException | None = None
        self.wake = anyio.Event()

    def settle(self, result: Res | None = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.done = result, error, True


class Combiner(Generic[Req, Res]):
    """Runs concurrent calls in batches.

    :param run: runs a batch of requests as one unit (all or nothing), returning their
        results in order; a batch of one is a single call.
    :param key: calls with equal keys never share a batch (say, two changes to one rollout,
        each of which must see the other's result); the later waits for the next batch.
    :param max_batch: most calls per batch.
    :param max_running: batches of this combiner in flight at once.
    """

    def __init__(
        self,
        run: Callable[[list[Req]], Awaitable[list[Res]]],
        *,
        key: Callable[[Req], Hashable] | None = None,
        max_batch: int = 64,
        max_running: int = 1,
    ) -> None:
        self._run = run
        self._key = key
        self._max_batch = max_batch
        self._max_running = max_running
        self._pending: deque[_Call[Req, Res]] = deque()
        self._running = 0

    async def __call__(self, request: Req) -> Res:
        """Run ``request`` alone or with the calls waiting beside it; its result or its error."""
        key = self._key(request) if self._key is not None else object()
        hash(key)  # an unhashable key (bad input) fails its own caller, not a batch
        call: _Call[Req, Res] = _Call(request, key)
        self._pending.append(call)
        paused = False
        while not call.done:
            if call.taken or self._running >= self._max_running:
                await self._wait(call)
            elif not paused:  # one turn of the event loop (no delay), so calls ready to run join
                paused = True
                try:
                    await anyio.lowlevel.checkpoint()
                except anyio.get_cancelled_exc_class():
                    if not await self._finish_taken(call):
                        raise
            else:
                await self._lead(call)
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]  # Res may include None

    async def _lead(self, call: _Call[Req, Res]) -> None:
        """Run batches (the first holds ``call``, unless its key is taken) until ``call`` is done."""
        self._running += 1
        try:
            with anyio.CancelScope(shield=True):  # the batches hold other callers' work
                while not call.done:
                    await self._run_batch(self._take())
        finally:
            self._running -= 1
            self._wake_next()

    def _take(self) -> list[_Call[Req, Res]]:
        """The oldest waiting calls, at most one per key."""
        batch: list[_Call[Req, Res]] = []
        keys: set[Hashable] = set()
        skipped: list[_Call[Req, Res]] = []
        while self._pending and len(batch) < self._max_batch:
            call = self._pending.popleft()
            if call.key in keys:
                skipped.append(call)
                continue
            keys.add(call.key)
            call.taken = True
            batch.append(call)
        self._pending.extendleft(reversed(skipped))
        return batch

    async def _run_batch(self, batch: list[_Call[Req, Res]]) -> None:
        try:
            try:
                results = await self._run([c.request for c in batch])
            except Exception as exc:
                if len(batch) == 1:
                    batch[0].settle(error=exc)
                    return
                logger.debug("A batch of %d calls failed (%r); running them one by one", len(batch), exc)
                for c in batch:  # each raises for its own caller only
                    try:
                        c.settle((await self._run([c.request]))[0])
                    except Exception as one_exc:
                        c.settle(error=one_exc)
                return
            for c, result in zip(batch, results, strict=True):
                c.settle(result)
        except BaseException as exc:
            for c in batch:
                if not c.done:
                    c.settle(error=exc)
            raise
        finally:
            for c in batch:
                c.wake.set()

    async def _wait(self, call: _Call[Req, Res]) -> None:
        """Wait until ``call`` is done or may lead. Cancellable until a batch takes it."""
        call.wake = anyio.Event()
        if call.taken:
            with anyio.CancelScope(shield=True):
                await call.wake.wait()
            return
        try:
            await call.wake.wait()
        except anyio.get_cancelled_exc_class():
            if not await self._finish_taken(call):
                raise

    async def _finish_taken(self, call: _Call[Req, Res]) -> bool:
        """The caller of ``call`` was cancelled while it waited: if a batch took the call
        meanwhile, wait until it is done and return True (the call returns its result, so
        nothing done for it is lost); else withdraw it and return False (re-raise)."""
        if not call.taken:
            self._pending.remove(call)
            self._wake_next()  # it may have been the one woken to lead
            return False
        with anyio.CancelScope(shield=True):
            while not call.done:
                call.wake = anyio.Event()
                await call.wake.wait()
        return True

    def _wake_next(self) -> None:
        """Wake the oldest waiting call to lead, if a batch may start."""
        if self._pending and self._running < self._max_running:
            self._pending[0].wake.set()
