"""What SQL store backends share: rows <-> data types, the span body, query clauses.

Pure functions, no database driver: a backend keeps its connections, statements and storage
choices (compression, id packing, upserts) and takes from here what does not depend on the
database. Queries differ by dialect only in small ways, given as a :class:`SqlDialect`.

Rows are tuples in the order of the ``*_COLUMNS`` strings (tables ``rollouts r``,
``attempts a``, ``spans s``, ``workers``; see the SQLite and PostgreSQL schemas). A span
row keeps what queries filter and sort on in columns and the rest in a ``body``: compact
JSON of the non-default parts (``a`` attributes, ``e`` events, ``l`` links, ``s`` status,
``k`` kind), which the backend may compress (:func:`span_body_json`, :func:`span_from_row`).

The ``query_*`` methods check their arguments here (``check_*``, :func:`worker_query`, ...)
and get the statements of one page (:class:`QueryStatements`), which the backend runs.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import attrs

from agentlightning_core.codec import to_json_value
from agentlightning_core.resources import ResourcesUpdate
from agentlightning_core.spans import Span, SpanEvent, SpanLink, SpanStatus
from agentlightning_core.store import policy
from agentlightning_core.store.base import (
    FilterLogic,
    RolloutSortKey,
    SortOrder,
    SpanSortKey,
    Unset,
    WorkerSortKey,
)
from agentlightning_core.types import (
    TERMINAL_ROLLOUT_STATUSES,
    Attempt,
    Rollout,
    RolloutConfig,
    RolloutStatus,
    Worker,
    WorkerStatus,
    parse_rollout_status,
    parse_worker_status,
)

try:
    import orjson
except ImportError:  # pragma: no cover - every SQL backend of this repository installs orjson
    orjson = None  # type: ignore[assignment]

__all__ = [
    "ATTEMPT_COLUMNS",
    "DEFAULT_CONFIG_JSON",
    "FINISHED",
    "JSON_FIELDS",
    "RESOURCES_COLUMNS",
    "RESOURCES_SORT_KEYS",
    "ROLLOUT_COLUMNS",
    "ROLLOUT_SORT_KEYS",
    "SPAN_BODY_DICTIONARY",
    "SPAN_COLUMNS",
    "SPAN_FILTER_COLUMNS",
    "SPAN_SORT_KEYS",
    "WORKER_COLUMNS",
    "WORKER_SORT_KEYS",
    "QueryStatements",
    "SpanQuery",
    "SqlDialect",
    "any_of",
    "attempt_from_row",
    "changed_fields",
    "check_rollout_query",
    "check_span_query",
    "contains",
    "dumps",
    "limit_clause",
    "loads",
    "order_by",
    "pack_id",
    "resources_from_row",
    "resources_query",
    "rollout_from_row",
    "span_body",
    "span_body_json",
    "span_from_row",
    "span_statements",
    "unpack_id",
    "update_statement",
    "where",
    "worker_from_row",
    "worker_query",
]

_DEFAULT_STATUS = SpanStatus()
_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


# --- JSON of stored fields -----------------------------------------------------------


def dumps(value: Any) -> str:
    """Compact JSON of a JSON-compatible value (models and enums encoded first)."""
    return _encoder.encode(to_json_value(value))


def loads(data: str | bytes) -> Any:
    """Parse JSON text (orjson; ``json`` for what only it reads, such as NaN)."""
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


DEFAULT_CONFIG_JSON = dumps(RolloutConfig())
"""A default ``RolloutConfig`` as stored (the common case, written and read without parsing)."""

JSON_FIELDS = frozenset({"input", "config", "metadata"})
"""Fields of rollouts and attempts stored as JSON text."""

FINISHED = "status IN ('succeeded', 'failed', 'cancelled')"
"""The condition of the partial index ``rollouts_finished``, word for word (planners match it so)."""
assert {str(s) for s in TERMINAL_ROLLOUT_STATUSES} == {"succeeded", "failed", "cancelled"}, "update FINISHED"


# --- rows <-> data types ---------------------------------------------------------------

ROLLOUT_COLUMNS = "r.rid, r.rollout_id, r.status, r.input, r.start_time, r.end_time, r.mode, r.resources_id, r.config, r.metadata"


def rollout_from_row(row: tuple[Any, ...]) -> Rollout:
    """A rollout from a :data:`ROLLOUT_COLUMNS` row."""
    return Rollout(
        rollout_id=row[1],
        input=loads(row[3]),
        start_time=row[4],
        end_time=row[5],
        mode=row[6],
        resources_id=row[7],
        status=row[2],
        config=RolloutConfig() if row[8] == DEFAULT_CONFIG_JSON else RolloutConfig.from_json(row[8]),
        metadata={} if row[9] == "{}" else loads(row[9]),
    )


ATTEMPT_COLUMNS = (
    "r.rollout_id, a.attempt_id, a.sequence_id, a.start_time, a.end_time, a.status, a.worker_id, "
    "a.last_heartbeat_time, a.metadata, a.aid, a.rid, a.resources_id, a.reward"
)


def attempt_from_row(row: tuple[Any, ...]) -> Attempt:
    """An attempt from an :data:`ATTEMPT_COLUMNS` row."""
    return Attempt(
        rollout_id=row[0],
        attempt_id=row[1],
        sequence_id=row[2],
        start_time=row[3],
        end_time=row[4],
        status=row[5],
        worker_id=row[6],
        last_heartbeat_time=row[7],
        metadata={} if row[8] == "{}" else loads(row[8]),
        resources_id=row[11],
        reward=row[12],
    )


WORKER_COLUMNS = (
    "worker_id, status, heartbeat_stats, last_heartbeat_time, last_dequeue_time, last_busy_time, "
    "last_idle_time, current_rollout_id, current_attempt_id"
)


def worker_from_row(row: tuple[Any, ...]) -> Worker:
    """A worker from a :data:`WORKER_COLUMNS` row."""
    return Worker(
        worker_id=row[0],
        status=row[1],
        heartbeat_stats=loads(row[2]) if row[2] is not None else None,
        last_heartbeat_time=row[3],
        last_dequeue_time=row[4],
        last_busy_time=row[5],
        last_idle_time=row[6],
        current_rollout_id=row[7],
        current_attempt_id=row[8],
    )


def resources_from_row(row: tuple[Any, ...]) -> ResourcesUpdate:
    """Resources from a row of ``resources_id, create_time, update_time, version, body``."""
    return ResourcesUpdate.from_dict(
        {
            "resources_id": row[0],
            "create_time": row[1],
            "update_time": row[2],
            "version": row[3],
            "resources": loads(row[4]),
        }
    )


SPAN_BODY_DICTIONARY = (
    b'"e":[["exception",'
    b'{"a":{"exception.type":"","exception.message":"","exception.stacktrace":'
    b'"Traceback (most recent call last):\\n  File \\""},"s":["ERROR",null]}'
    b'{"a":{"agentlightning.annotation.":""}}'
    b'{"a":{"agentlightning.operation.name":"","agentlightning.operation.input'
    b'":"","agentlightning.operation.output":""}}'
    b'{"a":{"agentlightning.object.json":"","agentlightning.object.type":"dict'
    b'"}}'
    b'{"a":{"agentlightning.message.body":""}}'
    b'{"a":{"agentlightning.reward.primary_key":"","agentlightning.reward.valu'
    b'e":0.0}}'
    b'"gen_ai.agent.name":"'
    b'"gen_ai.tool.definitions":"[{\\"type\\": \\"function\\", \\"function\\": {\\"na'
    b'me\\": \\"\\", \\"description\\": \\"\\", \\"parameters\\": {\\"type\\": \\"object\\"'
    b', \\"properties\\": {}}}}]"'
    b'[{\\"role\\": \\"tool\\", \\"parts\\": [{\\"type\\": \\"tool_call_response\\", \\"i'
    b'd\\": \\"call_\\", \\"response\\": \\"\\"}]}]'
    b'[{\\"role\\": \\"assistant\\", \\"parts\\": [{\\"type\\": \\"tool_call\\", \\"id\\":'
    b' \\"call_\\", \\"name\\": \\"\\", \\"arguments\\": \\"{\\\\\\"\\"}], \\"finish_reason\\'
    b'": \\"tool_calls\\"}]'
    b'"agentlightning.llm.prompt_token_ids":['
    b'],"agentlightning.llm.response_token_ids":['
    b',"gen_ai.request.top_p":'
    b',"gen_ai.request.max_tokens":'
    b'{"a":{"gen_ai.operation.name":"chat","gen_ai.provider.name":"openai","ag'
    b'entlightning.llm.stream":false,"gen_ai.request.model":"","gen_ai.request'
    b'.temperature":0.0,"gen_ai.input.messages":"[{\\"role\\": \\"system\\", \\"par'
    b'ts\\": [{\\"type\\": \\"text\\", \\"content\\": \\"\\"}]}, {\\"role\\": \\"user\\", \\'
    b'"parts\\": [{\\"type\\": \\"text\\", \\"content\\": \\"\\"}]}]","gen_ai.output.me'
    b'ssages":"[{\\"role\\": \\"assistant\\", \\"parts\\": [{\\"type\\": \\"text\\", \\"c'
    b'ontent\\": \\"\\"}], \\"finish_reason\\": \\"stop\\"}]","gen_ai.response.id":"c'
    b'hatcmpl-","gen_ai.response.model":"","gen_ai.response.finish_reasons":["'
    b'stop"],"gen_ai.usage.input_tokens":0,"gen_ai.usage.output_tokens":0},"k"'
    b':"CLIENT"}'
)
"""A preset dictionary for compressing :func:`span_body_json` (LZ4, zstd, deflate): bodies as the
tracer and the emitters write them (semconv keys in the order they are set, the JSON of GenAI
messages inside attribute strings) with the values left empty, the common chat call last. Stores
persist bodies compressed with it: never change it; add another."""


def span_body(span: Span) -> dict[str, Any]:
    """The dict of a span row's ``body`` (everything but its columns and OTel resource)."""
    body: dict[str, Any] = {}
    if span.attributes:
        body["a"] = span.attributes
    if span.events:
        body["e"] = [
            [e.name, e.timestamp, e.attributes] if e.attributes else [e.name, e.timestamp]
            for e in span.events
        ]
    if span.links:
        body["l"] = [
            [lk.trace_id, lk.span_id, lk.attributes] if lk.attributes else [lk.trace_id, lk.span_id]
            for lk in span.links
        ]
    status = span.status
    if status is not _DEFAULT_STATUS and (status.status_code != "UNSET" or status.description is not None):
        body["s"] = [status.status_code, status.description]
    if span.kind != "INTERNAL":
        body["k"] = span.kind
    return body


def span_body_json(span: Span) -> bytes:
    """The JSON of a span row's ``body``: :func:`span_body`, compact."""
    body = span_body(span)
    if orjson is not None:
        try:
            data: bytes = orjson.dumps(body)
        except TypeError:  # beyond orjson (integers over 64 bits, lone surrogates)
            data = b"null"
        if b"null" not in data:  # orjson writes NaN and infinities as null: let json keep them
            return data
    return _encoder.encode(body).encode()


def pack_id(value: str | None) -> str | bytes | None:
    """A trace/span id stored compactly: lowercase hex as its bytes, anything else as given."""
    if value is None or len(value) not in (16, 32):
        return value
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return value
    return raw if raw.hex() == value else value


def unpack_id(value: str | bytes) -> str:
    """The id as given to :func:`pack_id`."""
    return value.hex() if isinstance(value, bytes) else value


SPAN_COLUMNS = (
    "r.rollout_id, a.attempt_id, s.sequence_id, s.trace_id, s.span_id, s.parent_id, s.name, "
    "s.start_time, s.end_time, s.resource_ref, s.body"
)


def span_from_row(
    row: tuple[Any, ...], resources: dict[int, dict[str, Any]], decode_body: Callable[[bytes], dict[str, Any]]
) -> Span:
    """A span from a :data:`SPAN_COLUMNS` row (ids as given or packed by :func:`pack_id`).

    ``resources`` maps resource refs to their dicts; ``decode_body`` turns the stored body
    into the dict :func:`span_body_json` wrote (undoing the backend's compression).
    """
    body = decode_body(row[10])
    events = body.get("e")
    links = body.get("l")
    status = body.get("s")
    ref = row[9]
    return Span(
        rollout_id=row[0],
        attempt_id=row[1],
        sequence_id=row[2],
        trace_id=unpack_id(row[3]),
        span_id=unpack_id(row[4]),
        parent_id=None if row[5] is None else unpack_id(row[5]),
        name=row[6],
        start_time=row[7],
        end_time=row[8],
        attributes=body.get("a", {}),
        events=tuple(SpanEvent(*e) for e in events) if events else (),
        links=tuple(SpanLink(*lk) for lk in links) if links else (),
        status=SpanStatus(status[0], status[1]) if status else _DEFAULT_STATUS,
        kind=body.get("k", "INTERNAL"),
        resource=dict(resources[ref]) if ref is not None else {},
    )


# --- query arguments and clauses --------------------------------------------------------


@attrs.frozen
class SqlDialect:
    """How a database spells the few clauses the query helpers write.

    :param param: the placeholder of a statement parameter (``"?"``, ``"%s"``).
    :param contains: a test that ``{column}`` contains the text of a parameter
        (``"instr({column}, ?) > 0"``).
    :param nulls_last: an ORDER BY key of ``{column}`` in ``{direction}`` with NULLs last.
    :param no_limit: the LIMIT that means none (``"-1"``, ``"ALL"``), written when there is an offset.
    :param row_id: the column of a row's physical order, the last tie-breaker (``rowid``, ``ctid``).
    :param array_params: a list is one parameter (``= ANY(%s)``) rather than one per item (``IN (?, ?)``).
    :param packed_id_text: span/trace ids are stored by :func:`pack_id`, and this reads
        ``{column}`` back as the text callers gave; None: ids are stored as text.
    """

    param: str
    contains: str
    nulls_last: str
    no_limit: str
    row_id: str
    array_params: bool = False
    packed_id_text: str | None = None


@attrs.frozen
class QueryStatements:
    """One page of a ``query_*`` method: ``count`` counts every match, ``select`` reads the
    page (``limit``/``offset``, for its ``PaginatedResult``); both take ``params``."""

    count: str
    select: str
    params: list[Any]
    limit: int
    offset: int


@attrs.frozen
class SpanQuery:
    """The checked arguments of ``query_spans`` (:func:`check_span_query`); ``fields`` maps
    each column of :data:`SPAN_FILTER_COLUMNS` to its (exact value, substring) filters."""

    fields: dict[str, tuple[str | None, str | None]]
    filter_logic: FilterLogic
    sort_by: str
    sort_order: SortOrder
    limit: int
    offset: int


def contains(dialect: SqlDialect, column: str) -> str:
    """The condition that ``column`` contains the text of the next parameter."""
    return dialect.contains.format(column=column)


def any_of(dialect: SqlDialect, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """The condition that ``column`` is one of ``values``, and its parameters."""
    if dialect.array_params:
        return f"{column} = ANY({dialect.param})", [list(values)]
    if not values:
        return "1 = 0", []
    return f"{column} IN ({', '.join([dialect.param] * len(values))})", list(values)


def where(clauses: list[str], filter_logic: FilterLogic) -> str:
    """The optional filters joined by ``filter_logic``, parenthesised ('' when there are none)."""
    policy.check_filter_logic(filter_logic)
    return f"({f' {filter_logic.upper()} '.join(clauses)})" if clauses else ""


def order_by(dialect: SqlDialect, column: str, sort_order: SortOrder, tie: str) -> str:
    """ORDER BY clause: NULLs last in both directions, ties in ``tie`` order (stable)."""
    direction = "DESC" if sort_order == "desc" else "ASC"
    return f"ORDER BY {dialect.nulls_last.format(column=column, direction=direction)}, {tie}"


def limit_clause(dialect: SqlDialect, limit: int, offset: int) -> str:
    """`` LIMIT n OFFSET m`` of checked paging arguments ('' for all rows)."""
    if limit == -1 and not offset:
        return ""
    return f" LIMIT {int(limit) if limit != -1 else dialect.no_limit} OFFSET {int(offset)}"


def changed_fields(record: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """Set every field that is not ``UNSET`` on ``record``; returns their column values
    (JSON text for :data:`JSON_FIELDS`), for :func:`update_statement`."""
    changed: dict[str, Any] = {}
    for name, value in fields.items():
        if isinstance(value, Unset):
            continue
        setattr(record, name, value)
        changed[name] = dumps(value) if name in JSON_FIELDS else value
    return changed


def update_statement(dialect: SqlDialect, table: str, key_column: str, columns: Iterable[str]) -> str:
    """``UPDATE table SET column = ?, ... WHERE key_column = ?`` (parameters: the values, then the key)."""
    sets = ", ".join(f"{name} = {dialect.param}" for name in columns)
    return f"UPDATE {table} SET {sets} WHERE {key_column} = {dialect.param}"


def worker_query(
    dialect: SqlDialect,
    status_in: Sequence[WorkerStatus | str] | None,
    worker_id_contains: str | None,
    filter_logic: FilterLogic,
    sort_by: str | None,
    sort_order: SortOrder,
    limit: int,
    offset: int,
) -> QueryStatements:
    """``query_workers``, its arguments checked; workers are few, so scanned."""
    policy.check_paging(limit, offset)
    policy.check_sort(sort_by, sort_order, WORKER_SORT_KEYS)
    policy.check_filter_logic(filter_logic)
    clauses: list[str] = []
    params: list[Any] = []
    if status_in is not None:
        clause, values = any_of(dialect, "status", sorted({str(parse_worker_status(s)) for s in status_in}))
        clauses.append(clause)
        params += values
    if worker_id_contains is not None:
        clauses.append(contains(dialect, "worker_id"))
        params.append(worker_id_contains)
    condition = where(clauses, filter_logic)
    condition = f" WHERE {condition}" if condition else ""
    if sort_by is None:
        order = f"ORDER BY wid {'DESC' if sort_order == 'desc' else 'ASC'}"
    else:
        order = order_by(dialect, sort_by, sort_order, "wid")
    return QueryStatements(
        f"SELECT count(*) FROM workers{condition}",
        f"SELECT {WORKER_COLUMNS} FROM workers{condition} {order}{limit_clause(dialect, limit, offset)}",
        params,
        limit,
        offset,
    )


RESOURCES_COLUMNS = "resources_id, create_time, update_time, version, body"
"""The columns :func:`resources_from_row` reads."""


def resources_query(
    dialect: SqlDialect,
    resources_id: str | None,
    resources_id_contains: str | None,
    sort_by: str,
    sort_order: SortOrder,
    limit: int,
    offset: int,
    tie: str,
) -> QueryStatements:
    """``query_resources``, its arguments checked; ``tie`` orders equal sort keys."""
    policy.check_paging(limit, offset)
    policy.check_sort(sort_by, sort_order, RESOURCES_SORT_KEYS)
    clauses: list[str] = []
    params: list[Any] = []
    if resources_id is not None:
        clauses.append(f"resources_id = {dialect.param}")
        params.append(resources_id)
    if resources_id_contains is not None:
        clauses.append(contains(dialect, "resources_id"))
        params.append(resources_id_contains)
    condition = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    order = order_by(dialect, sort_by, sort_order, tie)
    return QueryStatements(
        f"SELECT count(*) FROM resources{condition}",
        f"SELECT {RESOURCES_COLUMNS} FROM resources{condition} {order}{limit_clause(dialect, limit, offset)}",
        params,
        limit,
        offset,
    )


def span_statements(dialect: SqlDialect, rid: int, aid: int | None, query: SpanQuery) -> QueryStatements:
    """``query_spans`` of the rollout with row key ``rid`` (and its attempt ``aid``, if given);
    the filters are evaluated on its rows only."""
    fields, filter_logic, sort_by, sort_order = (
        query.fields,
        query.filter_logic,
        query.sort_by,
        query.sort_order,
    )
    limit, offset = query.limit, query.offset
    p = dialect.param
    clauses = [f"s.rid = {p}"]
    params: list[Any] = [rid]
    if aid is not None:
        clauses.append(f"s.aid = {p}")
        params.append(aid)
    packed = dialect.packed_id_text
    filters: list[str] = []
    value: str | bytes | None
    for column, (exact, part) in fields.items():
        text, value = f"s.{column}", exact
        if packed is not None and column != "name":
            text, value = packed.format(column=text), pack_id(exact)
        if value is not None:
            filters.append(f"s.{column} = {p}")
            params.append(value)
        if part is not None:
            filters.append(contains(dialect, text))
            params.append(part)
    if filters:
        clauses.append(where(filters, filter_logic))
    condition = " AND ".join(clauses)
    row_id = f"s.{dialect.row_id}"
    if sort_by == "sequence_id":
        direction = "DESC" if sort_order == "desc" else "ASC"
        order = f"ORDER BY s.sequence_id {direction}, {row_id} {direction}"
    else:
        key = f"s.{sort_by}"
        if packed is not None and sort_by in ("span_id", "trace_id"):
            key = packed.format(column=key)
        order = order_by(dialect, key, sort_order, f"s.sequence_id, {row_id}")
    return QueryStatements(
        f"SELECT count(*) FROM spans s WHERE {condition}",
        f"SELECT {SPAN_COLUMNS} FROM spans s JOIN rollouts r ON r.rid = s.rid JOIN attempts a ON a.aid = s.aid"
        f" WHERE {condition} {order}{limit_clause(dialect, limit, offset)}",
        params,
        limit,
        offset,
    )


ROLLOUT_SORT_KEYS = typing.get_args(RolloutSortKey)
SPAN_SORT_KEYS = typing.get_args(SpanSortKey)
WORKER_SORT_KEYS = typing.get_args(WorkerSortKey)
RESOURCES_SORT_KEYS = ("create_time", "update_time", "resources_id")
SPAN_FILTER_COLUMNS = ("name", "trace_id", "span_id", "parent_id")
"""The span columns ``query_spans`` filters on (each by exact value and by substring)."""


def check_rollout_query(
    status_in: Sequence[RolloutStatus | str] | None,
    rollout_id_in: Sequence[str] | None,
    rollout_id_contains: str | None,
    filter_logic: FilterLogic,
    sort_by: str | None,
    sort_order: SortOrder,
    limit: int,
    offset: int,
) -> list[str] | None:
    """Check the arguments of ``query_rollouts``; returns ``status_in`` as sorted distinct values."""
    policy.check_paging(limit, offset)
    policy.rollout_predicate(status_in, rollout_id_in, rollout_id_contains, filter_logic)  # validates
    policy.check_sort(sort_by, sort_order, ROLLOUT_SORT_KEYS)
    return None if status_in is None else sorted({str(parse_rollout_status(s)) for s in status_in})


def check_span_query(
    filter_logic: FilterLogic,
    sort_by: str,
    sort_order: SortOrder,
    limit: int,
    offset: int,
    filters: tuple[str | None, ...],
) -> SpanQuery:
    """Check the arguments of ``query_spans``; ``filters`` are its field filters in their order
    (``name``, ``name_contains``, ``trace_id``, ... ``parent_id_contains``)."""
    policy.check_paging(limit, offset)
    policy.check_sort(sort_by, sort_order, SPAN_SORT_KEYS)
    policy.check_filter_logic(filter_logic)
    if len(filters) != 2 * len(SPAN_FILTER_COLUMNS):
        raise TypeError(f"check_span_query takes {2 * len(SPAN_FILTER_COLUMNS)} filters, got {len(filters)}")
    fields = {c: (filters[2 * i], filters[2 * i + 1]) for i, c in enumerate(SPAN_FILTER_COLUMNS)}
    return SpanQuery(fields, filter_logic, sort_by, sort_order, limit, offset)
