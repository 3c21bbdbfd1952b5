"""``agl rollouts list`` and ``agl rollouts show``: read what a store holds about rollouts.

Read-only: a store that keeps a file is opened only when the file exists (a typo in
``--path`` is an error naming the path, not a new empty database), and a memory store is
refused, since it lives in the process that created it and a fresh ``agl`` process would
only ever see an empty one.
"""

from __future__ import annotations

import argparse
import datetime
import os
from typing import TYPE_CHECKING, Any

from agentlightning_core.cli.store import add_store_options, store_spec_from_args

if TYPE_CHECKING:
    from agentlightning_core.store.base import LightningStore
    from agentlightning_core.types import Attempt, Rollout

__all__ = ["add_parser", "open_read_only_store", "rollout_details", "rollout_rows"]


def open_read_only_store(spec: Any) -> LightningStore:
    """The store of ``spec`` for reading (not started); refuses stores a read would create or
    that cannot hold another process's data."""
    from agentlightning_core.plugins import resolve_component
    from agentlightning_core.store.base import LightningStore
    from agentlightning_core.store.memory import InMemoryLightningStore

    if isinstance(spec, LightningStore):
        return spec  # an open store object (from Python): the caller knows what it holds
    store: LightningStore = resolve_component("store", spec, base=LightningStore)
    if isinstance(store, InMemoryLightningStore):
        raise ValueError(
            f"--store {spec!r} is a memory store, which lives inside the process that created it: a new agl "
            "process sees an empty one. Read a store that keeps a file (--store NAME --path FILE) or the server of a "
            'running job (--store \'{"type": "http", "url": "http://127.0.0.1:4747"}\')'
        )
    path = getattr(store, "path", None)
    if isinstance(path, (str, os.PathLike)) and not os.path.exists(path):
        raise FileNotFoundError(
            f"No store file at {os.fspath(path)!r} (from --store {spec!r}); check --path. Reading never creates "
            "a store."
        )
    return store


def _time(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts).isoformat(sep=" ", timespec="seconds")


def _duration(rollout: Rollout) -> str:
    if rollout.end_time is None:
        return "-"
    return f"{rollout.end_time - rollout.start_time:.2f}s"


def _reward(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


async def rollout_rows(store: LightningStore, status: list[str] | None, limit: int) -> list[list[str]]:
    """One row per rollout, newest first: id, status, attempts, final reward (its latest
    attempt's), duration."""
    page = await store.query_rollouts(status_in=status, sort_by="start_time", sort_order="desc", limit=limit)
    rows = []
    for rollout in page.items:
        attempts = await store.query_attempts(rollout.rollout_id, sort_order="desc", limit=1)
        reward = attempts.items[0].reward if attempts.items else None
        rows.append(
            [
                rollout.rollout_id,
                rollout.status.value,
                str(attempts.total),
                _reward(reward),
                _duration(rollout),
            ]
        )
    return rows


async def _error_of(store: LightningStore, rollout_id: str, attempt: Attempt) -> str | None:
    """The exception the attempt recorded (type: message), if any."""
    from agentlightning_core import semconv

    spans = (await store.query_spans(rollout_id, attempt.attempt_id, name=semconv.EXCEPTION_SPAN)).items
    if not spans:
        return None
    attrs = spans[-1].attributes
    return f"{attrs.get(semconv.EXCEPTION_TYPE, 'Exception')}: {attrs.get(semconv.EXCEPTION_MESSAGE, '')}"


async def rollout_details(store: LightningStore, rollout_id: str) -> str:
    """A rollout's fields, final reward, and one line per attempt (worker, status, error)."""
    rollout = await store.get_rollout_by_id(rollout_id)
    attempts = (await store.query_attempts(rollout_id)).items
    lines = [
        f"rollout   {rollout.rollout_id}",
        f"status    {rollout.status.value}",
        f"mode      {rollout.mode or '-'}",
        f"input     {rollout.input!r:.200}",
        f"resources {rollout.resources_id or '-'}",
        f"started   {_time(rollout.start_time)}",
        f"ended     {_time(rollout.end_time)} ({_duration(rollout)})",
        f"reward    {_reward(attempts[-1].reward if attempts else None)}",
        f"config    max_attempts={rollout.config.max_attempts}, retry_condition="
        f"{[s.value for s in rollout.config.retry_condition]}, timeout_seconds={rollout.config.timeout_seconds}, "
        f"unresponsive_seconds={rollout.config.unresponsive_seconds}",
        f"attempts  {len(attempts)}",
    ]
    for attempt in attempts:
        took = "-" if attempt.end_time is None else f"{attempt.end_time - attempt.start_time:.2f}s"
        lines.append(
            f"  #{attempt.sequence_id} {attempt.attempt_id} {attempt.status.value:<12} "
            f"worker={attempt.worker_id or '-'} started={_time(attempt.start_time)} took={took} "
            f"reward={_reward(attempt.reward)}"
        )
        error = await _error_of(store, rollout_id, attempt)
        if error is not None:
            lines.append(f"     error: {error}")
    return "\n".join(lines)


def _table(rows: list[list[str]]) -> str:
    header = ["ROLLOUT", "STATUS", "ATTEMPTS", "REWARD", "DURATION"]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]
    )


def _list(args: argparse.Namespace) -> int:
    import anyio

    from agentlightning_core.types import parse_rollout_status

    statuses = [parse_rollout_status(s).value for s in args.status] if args.status else None
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be a positive number of rollouts, got {args.limit}")
    store = open_read_only_store(store_spec_from_args(args))

    async def run() -> list[list[str]]:
        async with store:
            return await rollout_rows(store, statuses, -1 if args.limit is None else args.limit)

    rows = anyio.run(run)
    print(
        _table(rows) if rows else "No rollouts" + (f" with status {', '.join(statuses)}" if statuses else "")
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    import anyio

    store = open_read_only_store(store_spec_from_args(args))

    async def run() -> str:
        async with store:
            return await rollout_details(store, args.rollout_id)

    print(anyio.run(run))
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("rollouts", help="list rollouts of a store or show one")
    rsub = p.add_subparsers(dest="rollouts_command", metavar="SUBCOMMAND", required=True)
    ls = rsub.add_parser("list", help="rollouts, newest first: id, status, attempts, final reward, duration")
    add_store_options(ls, default=None)
    ls.add_argument("--status", action="append", help="only rollouts with this status (repeat for several)")
    ls.add_argument("--limit", type=int, help="at most this many rollouts (default: all)")
    ls.set_defaults(handler=_list)
    show = rsub.add_parser("show", help="one rollout: fields, final reward, attempts with worker and error")
    show.add_argument("rollout_id")
    add_store_options(show, default=None)
    show.set_defaults(handler=_show)
