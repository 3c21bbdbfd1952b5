"""Answer a repeated request with the first answer, so clients can retry any call safely.

A client that lost the connection after sending ``dequeue_rollout`` cannot tell whether the
server ran it. It retries with the same ``Idempotency-Key``; :class:`IdempotencyCache` then
returns the answer of the first run (waiting for it when that run is still going) instead of
dequeuing a second rollout. Answers are kept for ``ttl_seconds``, within ``max_entries`` and
``max_bytes`` (oldest dropped first). Server errors (5xx) are not kept: a retry runs again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

import anyio
import attrs

from agentlightning_core.validation import check_positive_int, check_seconds

__all__ = ["Answer", "IdempotencyCache"]


@attrs.frozen
class Answer:
    """A finished HTTP answer: status and body bytes."""

    status: int
    body: bytes


@attrs.define
class _Pending:
    done: anyio.Event = attrs.field(factory=anyio.Event)
    answer: Answer | None = None


class IdempotencyCache:
    """Bounded memory of recent answers by idempotency key."""

    def __init__(
        self, *, ttl_seconds: float = 600.0, max_entries: int = 100_000, max_bytes: int = 64 * 1024 * 1024
    ) -> None:
        self.ttl_seconds = check_seconds("IdempotencyCache ttl_seconds", ttl_seconds, allow_none=False)
        self.max_entries = check_positive_int("IdempotencyCache max_entries", max_entries)
        self.max_bytes = check_positive_int("IdempotencyCache max_bytes", max_bytes)
        self._answers: OrderedDict[Hashable, tuple[float, Answer]] = OrderedDict()
        self._pending: dict[Hashable, _Pending] = {}
        self._bytes = 0
        self.replays = 0

    def __len__(self) -> int:
        return len(self._answers)

    async def run(self, key: Hashable, fn: Callable[[], Awaitable[Answer]]) -> tuple[Answer, bool]:
        """``(answer, replayed)``: the kept answer for ``key``, or ``fn()``'s, which is then kept."""
        now = time.monotonic()
        self._expire(now)
        while True:
            kept = self._answers.get(key)
            if kept is not None:
                self.replays += 1
                return kept[1], True
            pending = self._pending.get(key)
            if pending is None:
                break
            await pending.done.wait()
            if pending.answer is not None:
                self.replays += 1
                return pending.answer, True
            # That run was cancelled before answering. Look again: another waiter may
            # already be running it anew, and this one must then wait for that run.
        mine = self._pending[key] = _Pending()
        try:
            answer = await fn()
            mine.answer = answer
        finally:
            if self._pending.get(key) is mine:
                del self._pending[key]
            mine.done.set()
        if answer.status < 500:
            self._keep(key, answer, time.monotonic())
        return answer, False

    def _keep(self, key: Hashable, answer: Answer, now: float) -> None:
        self._answers[key] = (now, answer)
        self._bytes += len(answer.body)
        while self._answers and (len(self._answers) > self.max_entries or self._bytes > self.max_bytes):
            self._drop_oldest()

    def _expire(self, now: float) -> None:
        limit = now - self.ttl_seconds
        while self._answers:
            stamp, _ = next(iter(self._answers.values()))
            if stamp > limit:
                return
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, (_, answer) = self._answers.popitem(last=False)
        self._bytes -= len(answer.body)
