"""The wire protocol of the store over HTTP, shared by the server and the client.

Every :class:`~agentlightning_core.store.base.LightningStore` method is one operation,
``POST /v1/store/<method name>`` with a JSON object of its keyword arguments; the answer is
the method's result as JSON (``null`` for None; pages as ``{"items", "total", "limit",
"offset"}``). An absent optional field means the method's default (``UNSET`` for the
``update_*`` methods). Errors are ``{"error": <name>, "message": <text>}`` with a 4xx/5xx
status: see :mod:`agentlightning_core.remote._error_mapping`. Span bodies are decoded by
:func:`agentlightning_core.spans.span_from_checked`, beside the span encoder.

The table :data:`OPERATIONS` is the single description both sides and the OpenAPI document
are built from.
"""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import attrs

from agentlightning_core.codec import JsonModel, from_json_value, to_json_value
from agentlightning_core.remote._error_mapping import error_body, exception_for_error, status_for_exception
from agentlightning_core.resources import LLM, NamedResources, PromptTemplate, ProxyLLM, ResourcesUpdate
from agentlightning_core.spans import Span, quick_span, span_from_checked
from agentlightning_core.store.base import (
    EnqueueRequest,
    PaginatedResult,
    RolloutSortKey,
    SpanSortKey,
    WorkerSortKey,
)
from agentlightning_core.types import (
    Attempt,
    AttemptedRollout,
    AttemptStatus,
    Rollout,
    RolloutConfig,
    RolloutStatus,
    Worker,
    WorkerStatus,
)

if TYPE_CHECKING:
    from agentlightning_core.store.base import LightningStore

__all__ = [
    "CLIENT_ID_HEADER",
    "IDEMPOTENCY_HEADER",
    "INT",
    "INTS",
    "OBJECT",
    "OPERATIONS",
    "STORE_PREFIX",
    "Operation",
    "Param",
    "ResultType",
    "add_span_groups",
    "error_body",  # re-exported from error_mapping
    "exception_for_error",  # re-exported from error_mapping
    "list_of",
    "model",
    "optional",
    "page",
    "span_from_checked",  # re-exported from spans (beside the span encoder)
    "status_for_exception",  # re-exported from error_mapping
    "stored_sequence_ids",
]

STORE_PREFIX = "/v1/store/"
IDEMPOTENCY_HEADER = "Idempotency-Key"
"""Clients send a fresh key per logical call (the same on every retry); the server answers a
repeated key with the first answer instead of running the operation again."""
CLIENT_ID_HEADER = "Agl-Client-Id"
"""A random id per client object: the server keeps idempotency keys per client id (and
address), so keys need only be unique within one client."""

Schema = dict[str, Any]
R = TypeVar("R")
M = TypeVar("M", bound=JsonModel)


def _ref(cls: type) -> Schema:
    return {"$ref": f"#/components/schemas/{cls.__name__}"}


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


_STR: Schema = {"type": "string"}
_OPT_STR: Schema = {"type": ["string", "null"]}
_OBJECT: Schema = {"type": "object"}
_LIMIT: Schema = {"type": "integer", "minimum": -1}
_OFFSET: Schema = {"type": "integer", "minimum": 0}
_ORDER: Schema = {"enum": ["asc", "desc"]}
_MODE: Schema = {"enum": ["train", "val", "test", None]}
# Status values are checked by the store, whose messages say more than a schema's could.
_ROLLOUT_STATUS: Schema = {"type": "string", "description": "One of: " + ", ".join(RolloutStatus)}
_ATTEMPT_STATUS: Schema = {"type": "string", "description": "One of: " + ", ".join(AttemptStatus)}
_WORKER_STATUS: Schema = {"type": "string", "description": "One of: " + ", ".join(WorkerStatus)}
_NAMED_RESOURCES: Schema = {
    "type": "object",
    "additionalProperties": {"anyOf": [_ref(c) for c in (LLM, ProxyLLM, PromptTemplate)]},
}


def _named_resources(data: Any) -> NamedResources:
    return from_json_value(NamedResources, data, name="resources")


@attrs.frozen
class Param:
    """One keyword argument of an operation."""

    name: str
    schema: Schema
    required: bool = False
    decode: Callable[[Any], Any] | None = None
    """JSON -> the value the store method takes (None: the JSON value itself)."""


@attrs.frozen
class ResultType(Generic[R]):
    """How an operation's result travels: ``model``, ``optional``, ``list``, ``page``, ``int``,
    ``object`` or ``span_groups``. Make one with :func:`model`, :func:`optional`, :func:`list_of`,
    :func:`page`, :data:`INT` or :data:`OBJECT`: each knows the Python type it decodes to."""

    kind: str
    cls: type[Any] | None = None
    decode: Callable[[Any], R] = attrs.field(kw_only=True, eq=False, repr=False)
    """JSON -> the result the store method returns (the client's side)."""

    def schema(self) -> Schema:
        if self.kind == "span_groups":
            return {
                "type": "array",
                "items": {
                    "anyOf": [
                        {
                            "type": "object",
                            "properties": {
                                "sequence_ids": {"type": "array", "items": {"type": ["integer", "null"]}}
                            },
                            "required": ["sequence_ids"],
                        },
                        {
                            "type": "object",
                            "properties": {
                                "status": {"type": "integer"},
                                "error": {"type": "string"},
                                "message": {"type": "string"},
                            },
                            "required": ["status", "error", "message"],
                        },
                    ]
                },
            }
        if self.kind == "int":
            return {"type": "integer"}
        if self.kind == "ints":
            return {"type": "array", "items": {"type": "integer"}}
        if self.kind == "object":
            return {"type": "object"}
        assert self.cls is not None
        ref = _ref(self.cls)
        if self.kind == "model":
            return ref
        if self.kind == "optional":
            return _nullable(ref)
        if self.kind == "list":
            return {"type": "array", "items": ref}
        return {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": ref},
                "total": {"type": "integer"},
                "limit": {"type": "integer"},
                "offset": {"type": "integer"},
            },
            "required": ["items", "total", "limit", "offset"],
        }

    def encode(self, value: Any) -> Any:
        if self.kind == "span_groups":
            return value
        if self.kind == "page":
            return {
                "items": [item.to_dict() for item in value.items],
                "total": value.total,
                "limit": value.limit,
                "offset": value.offset,
            }
        return to_json_value(value)


def model(cls: type[M]) -> ResultType[M]:
    """One model object."""
    return ResultType("model", cls, decode=cls.from_dict)


def optional(cls: type[M]) -> ResultType[M | None]:
    """A model object or null."""
    return ResultType("optional", cls, decode=lambda data: None if data is None else cls.from_dict(data))


def list_of(cls: type[M]) -> ResultType[list[M]]:
    """A list of model objects."""
    return ResultType("list", cls, decode=lambda data: [cls.from_dict(d) for d in data])


def page(cls: type[M]) -> ResultType[PaginatedResult[M]]:
    """A :class:`PaginatedResult` of model objects."""

    def decode(data: Any) -> PaginatedResult[M]:
        items = [cls.from_dict(d) for d in data["items"]]
        return PaginatedResult(items, data["total"], data["limit"], data["offset"])

    return ResultType("page", cls, decode=decode)


def _int(data: Any) -> int:
    if type(data) is not int:
        raise ValueError(f"Expected an integer from the store server, got {data!r:.80}")
    return data


def _ints(data: Any) -> list[int]:
    return [_int(d) for d in data]


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError(f"Expected a JSON object from the store server, got {data!r:.80}")
    return data


def _as_is(data: Any) -> Any:
    return data


INT: ResultType[int] = ResultType("int", None, decode=_int)
INTS: ResultType[list[int]] = ResultType("ints", None, decode=_ints)
OBJECT: ResultType[dict[str, Any]] = ResultType("object", None, decode=_object)


@attrs.frozen
class Operation:
    """A store method reachable as ``POST /v1/store/<name>``.

    ``handler(store, **kwargs)`` runs operations that are not a store method of that name.
    """

    name: str
    summary: str
    params: tuple[Param, ...]
    result: ResultType[Any]
    read_only: bool = False
    tag: str = "rollouts"
    handler: Callable[..., Awaitable[Any]] | None = None
    quick_decode: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    """Checks and decodes a body in one quick pass when it certainly matches the body schema
    and decodes without error, giving the keyword arguments (the server then skips the full
    check and the params' decoders); None means "not sure": the full check runs and reports."""

    @property
    def path(self) -> str:
        return STORE_PREFIX + self.name

    def body_schema(self) -> Schema:
        schema: Schema = {
            "type": "object",
            "properties": {p.name: p.schema for p in self.params},
            "additionalProperties": False,
        }
        required = [p.name for p in self.params if p.required]
        if required:
            schema["required"] = required
        return schema


def _config(data: Any) -> RolloutConfig | None:
    return None if data is None else RolloutConfig.from_dict(data)


def _requests(data: list[dict[str, Any]]) -> list[EnqueueRequest]:
    return [EnqueueRequest.from_dict(d) for d in data]


def _quick_spans(data: Any) -> list[Span] | None:
    if type(data) is not list:
        return None
    out = []
    for d in data:
        span = quick_span(d)
        if span is None:
            return None
        out.append(span)
    return out


def _quick_add_many_spans(data: dict[str, Any]) -> dict[str, Any] | None:
    spans = _quick_spans(data.get("spans")) if data.keys() == {"spans"} else None
    return None if spans is None else {"spans": spans}


def _quick_add_span_groups(data: dict[str, Any]) -> dict[str, Any] | None:
    groups = data.get("groups")
    if data.keys() != {"groups"} or type(groups) is not list:
        return None
    out = []
    for group in groups:
        spans = _quick_spans(group)
        if spans is None:
            return None
        out.append(spans)
    return {"groups": out}


def _spans(data: list[dict[str, Any]]) -> list[Span]:
    return [span_from_checked(d) for d in data]


def _span_groups(data: list[list[dict[str, Any]]]) -> list[list[Span]]:
    return [_spans(group) for group in data]


async def add_span_groups(store: LightningStore, groups: list[list[Span]]) -> list[dict[str, Any]]:
    """``add_many_spans`` once per group, so one caller's refused spans do not fail another's.

    The client coalesces the span writes of concurrent callers into one request this way.
    Each group's answer is ``{"sequence_ids": [...]}``, one per span: the sequence id it was
    stored under, or null for a duplicate (the client has the spans; echoing them back would
    double the work). A group the store refuses (unknown id, invalid value) gets
    ``{"status", "error", "message"}``; other errors fail the whole request (5xx).
    """
    out: list[dict[str, Any]] = []
    for group in groups:
        try:
            stored = await store.add_many_spans(group)
        except (LookupError, ValueError, TypeError) as exc:
            out.append({"status": status_for_exception(exc), **error_body(type(exc).__name__, str(exc))})
        else:
            out.append({"sequence_ids": stored_sequence_ids(group, stored)})
    return out


def stored_sequence_ids(group: Sequence[Span], stored: Sequence[Span]) -> list[int | None]:
    """For each span of ``group``: its sequence id in ``stored`` (newly stored spans, in input
    order, as ``add_many_spans`` returns them), or None if it was not stored."""
    out: list[int | None] = []
    j = 0
    for span in group:
        if j < len(stored):
            got = stored[j]
            if got is span or (got.span_id == span.span_id and got.rollout_id == span.rollout_id):
                out.append(got.sequence_id)
                j += 1
                continue
        out.append(None)
    return out


_ROLLOUT_ID = Param("rollout_id", _STR, required=True)
_ATTEMPT_ID = Param("attempt_id", _STR, required=True)
_WORKER_ID = Param("worker_id", _OPT_STR)
_LIMIT_P = Param("limit", _LIMIT)
_OFFSET_P = Param("offset", _OFFSET)
_ORDER_P = Param("sort_order", _ORDER)
_NEW_ROLLOUT = (
    Param("input", {}, required=True),
    Param("mode", _MODE),
    Param("resources_id", _OPT_STR),
    Param("config", _nullable(_ref(RolloutConfig)), decode=_config),
    Param("metadata", {"type": ["object", "null"]}),
)


_LOGIC_P = Param("filter_logic", {"enum": ["and", "or"]})


def _sort(*keys: str | None) -> Param:
    return Param("sort_by", {"enum": list(keys)})


def _filters(*names: str) -> tuple[Param, ...]:
    """Optional string filters (an exact value or a substring), all null by default."""
    return tuple(Param(n, _OPT_STR) for n in names)


def _pairs(data: list[list[str]]) -> list[tuple[str, str]]:
    return [(r, a) for r, a in data]


_ID_PAIR: Schema = {
    "type": "array",
    "items": _STR,
    "minItems": 2,
    "maxItems": 2,
    "description": "[rollout_id, attempt_id]",
}


OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            "start_rollout",
            "Create a rollout and its first attempt at once, bypassing the queue",
            (*_NEW_ROLLOUT, _WORKER_ID),
            model(AttemptedRollout),
        ),
        Operation("enqueue_rollout", "Add a rollout to the queue", _NEW_ROLLOUT, model(Rollout)),
        Operation(
            "enqueue_many_rollouts",
            "Enqueue several rollouts in one call, in order",
            (Param("requests", {"type": "array", "items": _ref(EnqueueRequest)}, True, _requests),),
            list_of(Rollout),
        ),
        Operation(
            "dequeue_rollout",
            "Take the oldest queued rollout and create its next attempt (null if the queue is empty)",
            (_WORKER_ID,),
            optional(AttemptedRollout),
        ),
        Operation(
            "dequeue_many_rollouts",
            "Dequeue up to `limit` rollouts in FIFO order",
            (Param("limit", {"type": "integer", "minimum": 0}, required=True), _WORKER_ID),
            list_of(AttemptedRollout),
        ),
        Operation(
            "start_attempt",
            "Create a new attempt for a rollout outside the queue",
            (_ROLLOUT_ID, _WORKER_ID),
            model(AttemptedRollout),
        ),
        Operation(
            "query_rollouts",
            "Rollouts matching the filters, paged",
            (
                Param("status_in", {"type": ["array", "null"], "items": _ROLLOUT_STATUS}),
                Param("rollout_id_in", {"type": ["array", "null"], "items": _STR}),
                Param("rollout_id_contains", _OPT_STR),
                _LOGIC_P,
                _sort(*typing.get_args(RolloutSortKey), None),
                _ORDER_P,
                _LIMIT_P,
                _OFFSET_P,
            ),
            page(Rollout),
            read_only=True,
        ),
        Operation(
            "get_rollout_by_id",
            "One rollout (404 if unknown)",
            (_ROLLOUT_ID,),
            model(Rollout),
            read_only=True,
        ),
        Operation(
            "update_rollout",
            "Change fields of a rollout; absent fields stay as they are",
            (
                _ROLLOUT_ID,
                Param("input", {}),
                Param("mode", _MODE),
                Param("resources_id", _OPT_STR),
                Param("status", _ROLLOUT_STATUS),
                Param("config", _ref(RolloutConfig), decode=RolloutConfig.from_dict),
                Param("metadata", _OBJECT),
            ),
            model(Rollout),
        ),
        Operation(
            "wait_for_rollouts",
            "Wait until the rollouts are terminal or `timeout` seconds pass; returns the terminal ones",
            (
                Param("rollout_ids", {"type": "array", "items": _STR}, required=True),
                Param("timeout", {"type": ["number", "null"], "minimum": 0}),
            ),
            list_of(Rollout),
            read_only=True,
        ),
        Operation(
            "query_attempts",
            "Attempts of a rollout, paged",
            (_ROLLOUT_ID, _sort("sequence_id", "start_time"), _ORDER_P, _LIMIT_P, _OFFSET_P),
            page(Attempt),
            read_only=True,
            tag="attempts",
        ),
        Operation(
            "get_latest_attempt",
            "The attempt with the highest sequence id (null if none)",
            (_ROLLOUT_ID,),
            optional(Attempt),
            read_only=True,
            tag="attempts",
        ),
        Operation(
            "update_attempt",
            'Change an attempt (`attempt_id` may be "latest"); a terminal status ends it',
            (
                _ROLLOUT_ID,
                _ATTEMPT_ID,
                Param("status", _ATTEMPT_STATUS),
                Param("worker_id", _OPT_STR),
                Param("last_heartbeat_time", {"type": "number"}),
                Param("metadata", _OBJECT),
                Param("reward", {"type": ["number", "null"]}),
            ),
            model(Attempt),
            tag="attempts",
        ),
        Operation(
            "add_span",
            "Store a span (sequence_id 0 asks the store to allocate one); null for a duplicate",
            (Param("span", _ref(Span), True, span_from_checked),),
            optional(Span),
            tag="spans",
        ),
        Operation(
            "add_many_spans",
            "Store several spans in one call; returns those newly stored",
            (Param("spans", {"type": "array", "items": _ref(Span)}, True, _spans),),
            list_of(Span),
            tag="spans",
            quick_decode=_quick_add_many_spans,
        ),
        Operation(
            "add_span_groups",
            "Batch endpoint: add_many_spans once per group, answering each group on its own",
            (
                Param(
                    "groups",
                    {"type": "array", "items": {"type": "array", "items": _ref(Span)}},
                    True,
                    _span_groups,
                ),
            ),
            ResultType("span_groups", None, decode=_as_is),
            tag="spans",
            handler=add_span_groups,
            quick_decode=_quick_add_span_groups,
        ),
        Operation(
            "get_next_span_sequence_id",
            "Allocate the next span sequence id of a rollout",
            (_ROLLOUT_ID, _ATTEMPT_ID),
            INT,
            tag="spans",
        ),
        Operation(
            "get_many_span_sequence_ids",
            "Allocate one span sequence id per [rollout_id, attempt_id] pair, in order",
            (Param("rollout_attempt_ids", {"type": "array", "items": _ID_PAIR}, True, _pairs),),
            INTS,
            tag="spans",
        ),
        Operation(
            "query_spans",
            'Spans of a rollout, optionally of one attempt ("latest" for the latest), paged',
            (
                _ROLLOUT_ID,
                Param("attempt_id", _OPT_STR),
                *_filters(
                    "name",
                    "name_contains",
                    "trace_id",
                    "trace_id_contains",
                    "span_id",
                    "span_id_contains",
                    "parent_id",
                    "parent_id_contains",
                ),
                _LOGIC_P,
                _sort(*typing.get_args(SpanSortKey)),
                _ORDER_P,
                _LIMIT_P,
                _OFFSET_P,
            ),
            page(Span),
            read_only=True,
            tag="spans",
        ),
        Operation(
            "add_resources",
            "Store a new resources snapshot under a fresh id",
            (Param("resources", _NAMED_RESOURCES, True, _named_resources),),
            model(ResourcesUpdate),
            tag="resources",
        ),
        Operation(
            "update_resources",
            "Create or replace the snapshot `resources_id`",
            (
                Param("resources_id", _STR, required=True),
                Param("resources", _NAMED_RESOURCES, True, _named_resources),
            ),
            model(ResourcesUpdate),
            tag="resources",
        ),
        Operation(
            "get_resources_by_id",
            "One resources snapshot (404 if unknown)",
            (Param("resources_id", _STR, required=True),),
            model(ResourcesUpdate),
            read_only=True,
            tag="resources",
        ),
        Operation(
            "get_latest_resources",
            "The most recent resources snapshot (null if none)",
            (),
            optional(ResourcesUpdate),
            read_only=True,
            tag="resources",
        ),
        Operation(
            "query_resources",
            "All resources snapshots, paged",
            (
                *_filters("resources_id", "resources_id_contains"),
                _sort("create_time", "update_time", "resources_id"),
                _ORDER_P,
                _LIMIT_P,
                _OFFSET_P,
            ),
            page(ResourcesUpdate),
            read_only=True,
            tag="resources",
        ),
        Operation(
            "query_workers",
            "Known workers, paged",
            (
                Param("status_in", {"type": ["array", "null"], "items": _WORKER_STATUS}),
                *_filters("worker_id_contains"),
                _LOGIC_P,
                _sort(*typing.get_args(WorkerSortKey), None),
                _ORDER_P,
                _LIMIT_P,
                _OFFSET_P,
            ),
            page(Worker),
            read_only=True,
            tag="workers",
        ),
        Operation(
            "get_worker_by_id",
            "One worker (404 if unknown)",
            (Param("worker_id", _STR, required=True),),
            model(Worker),
            read_only=True,
            tag="workers",
        ),
        Operation(
            "update_worker",
            "Record a worker heartbeat, creating the worker on first call",
            (
                Param("worker_id", _STR, required=True),
                Param("status", _WORKER_STATUS),
                Param("heartbeat_stats", {"type": ["object", "null"]}),
            ),
            model(Worker),
            tag="workers",
        ),
        Operation(
            "statistics",
            "Counts of rollouts by status, attempts, spans, resources, workers and span bytes",
            (),
            OBJECT,
            read_only=True,
            tag="statistics",
        ),
    )
}
