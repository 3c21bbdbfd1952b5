"""State-transition rules shared by every store backend: pure functions, no I/O.

A backend keeps its own data structures but asks these functions what a change means, so
the in-memory store, the SQLite store and anything else agree on every transition:

- ids: :func:`new_rollout_id` (``ro-<16 hex>``), :func:`new_attempt_id` (``at-<16 hex>``),
  :func:`new_resources_id` (``rs-<16 hex>``), unique across forked processes too;
- status values given by callers are parsed by the types' own converters
  (:func:`~agentlightning_core.types.parse_rollout_status` and its siblings);
- which rollouts may get a new attempt: :func:`check_can_start_attempt` (not terminal ones);
- what the rollout becomes when its latest attempt changes: :func:`rollout_status_for_attempt`;
- heartbeats: :func:`attempt_status_after_heartbeat`, applied alike to a stored span and to
  ``update_attempt(last_heartbeat_time=...)`` given without a status;
- the watchdog: :func:`watchdog_verdict`;
- ``end_time`` of terminal statuses: :func:`end_time_for`;
- an attempt's final reward: :func:`check_reward`;
- queries: :func:`rollout_predicate`, :func:`span_predicate`, :func:`worker_predicate`,
  :func:`check_filter_logic`, :func:`check_sort`, :func:`sort_items`, :func:`check_paging`,
  :func:`paginate`, :func:`check_wait_timeout`;
- ``statistics()``: :func:`with_earlier_statistics` adds the earlier API's keys.

Span sequence ids of a rollout start at :data:`FIRST_SEQUENCE_ID` and only grow; a span added
with ``sequence_id == 0`` asks the store to allocate one (:func:`next_sequence_id`).
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from agentlightning_core.store.base import FilterLogic, PaginatedResult
from agentlightning_core.types import (
    TERMINAL_ATTEMPT_STATUSES,
    TERMINAL_ROLLOUT_STATUSES,
    Attempt,
    AttemptStatus,
    Rollout,
    RolloutConfig,
    RolloutStatus,
    parse_rollout_status,
    parse_worker_status,
)
from agentlightning_core.validation import check_positive_int, check_seconds

__all__ = [
    "ACTIVE_ATTEMPT_STATUSES",
    "ATTEMPT_ID_PREFIX",
    "FIRST_SEQUENCE_ID",
    "QUEUED_ROLLOUT_STATUSES",
    "RESOURCES_ID_PREFIX",
    "ROLLOUT_ID_PREFIX",
    "attempt_status_after_heartbeat",
    "check_can_start_attempt",
    "check_filter_logic",
    "check_id_list",
    "check_paging",
    "check_reward",
    "check_sort",
    "check_wait_timeout",
    "end_time_for",
    "new_attempt_id",
    "new_resources_id",
    "new_rollout_id",
    "next_sequence_id",
    "paginate",
    "rollout_predicate",
    "rollout_status_for_attempt",
    "should_retry",
    "sort_items",
    "span_predicate",
    "watchdog_verdict",
    "with_earlier_statistics",
    "worker_predicate",
]

T = TypeVar("T")

ROLLOUT_ID_PREFIX = "ro-"
ATTEMPT_ID_PREFIX = "at-"
RESOURCES_ID_PREFIX = "rs-"
FIRST_SEQUENCE_ID = 1

QUEUED_ROLLOUT_STATUSES = frozenset({RolloutStatus.QUEUING, RolloutStatus.REQUEUING})
"""Rollouts in these statuses wait in the queue, FIFO by the time they entered it."""

ACTIVE_ATTEMPT_STATUSES = frozenset({AttemptStatus.PREPARING, AttemptStatus.RUNNING})
"""Attempts in these statuses are watched for time-outs and missing heartbeats."""

_RETRYABLE = frozenset({AttemptStatus.FAILED, AttemptStatus.TIMEOUT, AttemptStatus.UNRESPONSIVE})

# Ids need uniqueness, not secrecy: a PRNG seeded from the OS is ~4x cheaper than uuid4. A
# forked child would otherwise continue its parent's sequence (same ids in both processes, and
# processes share an SQLite file or a server), so the child reseeds from the OS at fork.
_rng = random.Random(os.urandom(16))


def _reseed() -> None:
    _rng.seed(os.urandom(16))


os.register_at_fork(after_in_child=_reseed)


def _new_id(prefix: str) -> str:
    return f"{prefix}{_rng.getrandbits(64):016x}"


def new_rollout_id() -> str:
    """A fresh rollout id, ``ro-`` and 16 hex digits."""
    return _new_id(ROLLOUT_ID_PREFIX)


def new_attempt_id() -> str:
    """A fresh attempt id, ``at-`` and 16 hex digits."""
    return _new_id(ATTEMPT_ID_PREFIX)


def new_resources_id() -> str:
    """A fresh resources id, ``rs-`` and 16 hex digits."""
    return _new_id(RESOURCES_ID_PREFIX)


# --- transitions -------------------------------------------------------------------


def check_can_start_attempt(rollout: Rollout) -> None:
    """Refuse a new attempt (``start_attempt``) for a terminal rollout.

    A terminal rollout changes only through ``update_rollout``: requeue it there to run it again.
    """
    if rollout.status in TERMINAL_ROLLOUT_STATUSES:
        rid = rollout.rollout_id
        raise ValueError(
            f"Cannot start an attempt of rollout {rid!r}: it is {rollout.status.value}, and a finished "
            "rollout changes only through update_rollout. start_attempt needs a rollout that is "
            "queuing, requeuing, preparing or running; to run this one again, requeue it first with "
            f"update_rollout({rid!r}, status='requeuing')"
        )


def should_retry(config: RolloutConfig, attempt: Attempt) -> bool:
    """Whether an ended attempt earns its rollout another try under ``config``."""
    return (
        attempt.status in _RETRYABLE
        and attempt.status in config.retry_condition
        and attempt.sequence_id < config.max_attempts
    )


def rollout_status_for_attempt(rollout: Rollout, attempt: Attempt) -> RolloutStatus | None:
    """What ``rollout`` becomes now that its *latest* ``attempt`` has ``attempt.status``.

    None means "unchanged": a terminal rollout stays as it is (only ``update_rollout`` changes
    it), and callers must not ask about an attempt that is not the latest one.
    """
    if rollout.status in TERMINAL_ROLLOUT_STATUSES:
        return None
    status = attempt.status
    if status is AttemptStatus.PREPARING:
        new = RolloutStatus.PREPARING
    elif status is AttemptStatus.RUNNING:
        new = RolloutStatus.RUNNING
    elif status is AttemptStatus.SUCCEEDED:
        new = RolloutStatus.SUCCEEDED
    else:
        new = RolloutStatus.REQUEUING if should_retry(rollout.config, attempt) else RolloutStatus.FAILED
    return None if new is rollout.status else new


def attempt_status_after_heartbeat(status: AttemptStatus) -> AttemptStatus:
    """A heartbeat moves preparing/unresponsive to running; other statuses stay.

    A heartbeat is a stored span, or ``update_attempt(last_heartbeat_time=...)`` without a status.
    """
    if status is AttemptStatus.PREPARING or status is AttemptStatus.UNRESPONSIVE:
        return AttemptStatus.RUNNING
    return status


def watchdog_verdict(attempt: Attempt, config: RolloutConfig, now: float) -> AttemptStatus | None:
    """``timeout`` / ``unresponsive`` if an active attempt has run out of time, else None.

    Timeout counts from the attempt's start; unresponsiveness from its last heartbeat (or
    its start when it never sent one). Timeout wins when both apply.
    """
    if attempt.status not in ACTIVE_ATTEMPT_STATUSES:
        return None
    if config.timeout_seconds is not None and now - attempt.start_time >= config.timeout_seconds:
        return AttemptStatus.TIMEOUT
    if config.unresponsive_seconds is not None:
        last = attempt.last_heartbeat_time if attempt.last_heartbeat_time is not None else attempt.start_time
        if now - last >= config.unresponsive_seconds:
            return AttemptStatus.UNRESPONSIVE
    return None


def end_time_for(status: RolloutStatus | AttemptStatus, current: float | None, now: float) -> float | None:
    """``end_time`` after a status change: set (once) on terminal statuses, cleared otherwise."""
    if status in TERMINAL_ROLLOUT_STATUSES or status in TERMINAL_ATTEMPT_STATUSES:
        return current if current is not None else now
    return None


def check_reward(reward: object) -> float | None:
    """An attempt's final reward as stored: a finite number, or None for no reward."""
    if reward is None:
        return None
    if isinstance(reward, bool) or not isinstance(reward, (int, float)) or not math.isfinite(reward):
        raise ValueError(
            f"reward must be a finite number or None, got {reward!r}; pass the trace's final reward"
        )
    return float(reward)


def next_sequence_id(current_next: int, given: int) -> tuple[int, int]:
    """``(sequence id to store, new next id)`` for a span given with ``given``.

    ``given == 0`` allocates ``current_next``; an explicit id is kept and the counter moves
    past it, so allocated ids are never reused.
    """
    if given == 0:
        return current_next, current_next + 1
    return given, max(current_next, given + 1)


# --- queries -----------------------------------------------------------------------


def check_wait_timeout(timeout: float | None) -> float | None:
    """The ``timeout`` of ``wait_for_rollouts``: seconds >= 0 (0 checks without waiting) or None."""
    return check_seconds("timeout", timeout, allow_zero=True)


def check_paging(limit: int, offset: int) -> None:
    """Reject paging arguments no backend can honour."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < -1:
        raise ValueError(f"limit must be an integer >= 0, or -1 for no limit; got {limit!r}")
    check_positive_int("offset", offset, minimum=0)


def paginate(items: Sequence[T], limit: int, offset: int) -> PaginatedResult[T]:
    """One page of ``items`` (already filtered and sorted) with the total count."""
    total = len(items)
    if offset == 0 and (limit == -1 or limit >= total):
        page = list(items)
    else:
        page = list(items[offset:] if limit == -1 else items[offset : offset + limit])
    return PaginatedResult(items=page, total=total, limit=limit, offset=offset)


def check_sort(sort_by: str | None, sort_order: str, allowed: Sequence[str]) -> bool:
    """Reject an unknown sort field or order; returns whether the order is descending."""
    if sort_order not in ("asc", "desc"):
        raise ValueError(f"sort_order must be 'asc' or 'desc', got {sort_order!r}")
    if sort_by is not None and sort_by not in allowed:
        raise ValueError(f"Cannot sort by {sort_by!r}; expected one of: {', '.join(allowed)}")
    return sort_order == "desc"


def sort_items(items: Iterable[T], sort_by: str | None, sort_order: str, allowed: Sequence[str]) -> list[T]:
    """Sort by attribute ``sort_by`` (stable); items whose value is None come last in both orders.

    ``sort_by=None`` keeps the given order (reversed for ``"desc"``).
    """
    descending = check_sort(sort_by, sort_order, allowed)
    result = list(items)
    if sort_by is None:
        if descending:
            result.reverse()
        return result
    present = [x for x in result if getattr(x, sort_by) is not None]
    missing = [x for x in result if getattr(x, sort_by) is None] if len(present) < len(result) else []
    present.sort(key=lambda x: getattr(x, sort_by), reverse=descending)
    return present + missing if missing else present


def check_filter_logic(filter_logic: str) -> None:
    """Reject a ``filter_logic`` other than ``"and"`` / ``"or"``."""
    if filter_logic not in ("and", "or"):
        raise ValueError(f"filter_logic must be 'and' or 'or', got {filter_logic!r}")


def check_id_list(name: str, ids: Sequence[str] | None) -> None:
    """An ``*_in`` filter must be a list of ids, not one id (a string is a sequence too)."""
    if isinstance(ids, str):
        raise TypeError(f"{name} must be a list of ids, got the string {ids!r}")


def _combine(tests: list[Callable[[Any], bool]], filter_logic: FilterLogic) -> Callable[[Any], bool] | None:
    check_filter_logic(filter_logic)
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0]
    if filter_logic == "and":
        return lambda x: all(t(x) for t in tests)
    return lambda x: any(t(x) for t in tests)


def _equals(attr: str, value: str) -> Callable[[Any], bool]:
    return lambda x: getattr(x, attr) == value


def _contains(attr: str, part: str) -> Callable[[Any], bool]:
    return lambda x: (v := getattr(x, attr)) is not None and part in v


def _field_tests(fields: Iterable[tuple[str, str | None, str | None]]) -> list[Callable[[Any], bool]]:
    """Tests for ``(attribute, exact, substring)`` filters; a None value is no filter."""
    tests: list[Callable[[Any], bool]] = []
    for attr, exact, part in fields:
        if exact is not None:
            tests.append(_equals(attr, exact))
        if part is not None:
            tests.append(_contains(attr, part))
    return tests


def rollout_predicate(
    status_in: Sequence[RolloutStatus | str] | None,
    rollout_id_in: Sequence[str] | None,
    rollout_id_contains: str | None,
    filter_logic: FilterLogic,
) -> Callable[[Rollout], bool] | None:
    """The ``query_rollouts`` filter as a predicate; None when no filter is given."""
    check_id_list("rollout_id_in", rollout_id_in)
    tests: list[Callable[[Any], bool]] = []
    if status_in is not None:
        statuses = frozenset(parse_rollout_status(s) for s in status_in)
        tests.append(lambda r: r.status in statuses)
    if rollout_id_in is not None:
        ids = frozenset(rollout_id_in)
        tests.append(lambda r: r.rollout_id in ids)
    tests += _field_tests([("rollout_id", None, rollout_id_contains)])
    return _combine(tests, filter_logic)


def span_predicate(filter_logic: FilterLogic = "and", **fields: str | None) -> Callable[[Any], bool] | None:
    """The ``query_spans`` field filter (``name=``, ``name_contains=``, ... as the method takes them)."""
    by_field: dict[str, list[str | None]] = {}
    for key, value in fields.items():
        attr, contains = (key[: -len("_contains")], 1) if key.endswith("_contains") else (key, 0)
        by_field.setdefault(attr, [None, None])[contains] = value
    return _combine(_field_tests((a, v[0], v[1]) for a, v in by_field.items()), filter_logic)


def worker_predicate(
    status_in: Sequence[Any] | None, worker_id_contains: str | None, filter_logic: FilterLogic
) -> Callable[[Any], bool] | None:
    """The ``query_workers`` filter as a predicate; None when no filter is given."""
    tests: list[Callable[[Any], bool]] = []
    if status_in is not None:
        statuses = frozenset(parse_worker_status(s) for s in status_in)
        tests.append(lambda w: w.status in statuses)
    tests += _field_tests([("worker_id", None, worker_id_contains)])
    return _combine(tests, filter_logic)


def with_earlier_statistics(stats: dict[str, Any], store: object, created: float) -> dict[str, Any]:
    """``stats`` plus the earlier API's keys: ``name``, ``uptime`` (seconds since ``created``,
    a :func:`time.monotonic` reading) and ``total_*`` copies of our counts."""
    stats["name"] = type(store).__name__
    stats["uptime"] = time.monotonic() - created
    for key in ("rollouts", "attempts", "spans", "resources", "workers"):
        stats["total_" + key] = stats[key]
    return stats
