"""agentlightning_core.store.sql: what the SQL stores share, run against a real SQLite database
(the standard library's) so every statement the helpers write is executed, not only read."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

import pytest

from agentlightning_core.spans import Span, SpanEvent, SpanLink, SpanStatus
from agentlightning_core.store.sql import (
    SPAN_COLUMNS,
    SpanQuery,
    SqlDialect,
    any_of,
    check_span_query,
    limit_clause,
    loads,
    order_by,
    pack_id,
    span_body_json,
    span_from_row,
    span_statements,
    unpack_id,
    worker_query,
)

DIALECT = SqlDialect(
    param="?",
    contains="instr({column}, ?) > 0",
    nulls_last="({column} IS NULL), {column} {direction}",
    no_limit="-1",
    row_id="rowid",
    packed_id_text="(CASE WHEN typeof({column}) = 'blob' THEN lower(hex({column})) ELSE {column} END)",
)
TRACE = "0af7651916cd43dd8448eb211c80319c"


def _span(span_id: str, parent_id: str | None = None, **kwargs: Any) -> Span:
    return Span(
        rollout_id="ro-1",
        attempt_id="at-1",
        sequence_id=kwargs.pop("sequence_id", 1),
        trace_id=TRACE,
        span_id=span_id,
        parent_id=parent_id,
        name=kwargs.pop("name", "call"),
        start_time=1.0,
        end_time=kwargs.pop("end_time", 2.0),
        **kwargs,
    )


def test_a_span_survives_its_row() -> None:
    span = _span(
        "b7ad6b7169203331",
        "00f067aa0ba902b7",
        attributes={"x": 1, "nan": math.nan, "big": 2**70, "text": "é"},
        events=(SpanEvent("e", 1.5, {"k": "v"}), SpanEvent("f", 1.6)),
        links=(SpanLink(TRACE, "00f067aa0ba902b7"),),
        status=SpanStatus("ERROR", "boom"),
        kind="CLIENT",
        resource={"service.name": "agent"},
    )
    body = span_body_json(span)
    row = ("ro-1", "at-1", 1, pack_id(TRACE), pack_id(span.span_id), pack_id(span.parent_id))
    row += ("call", 1.0, 2.0, 7, body)
    back = span_from_row(row, {7: {"service.name": "agent"}}, loads)
    assert math.isnan(back.attributes.pop("nan"))
    assert back.attributes == {"x": 1, "big": 2**70, "text": "é"}
    assert (back.trace_id, back.span_id, back.parent_id) == (TRACE, span.span_id, span.parent_id)
    assert (back.events, back.links, back.status, back.kind) == (
        span.events,
        span.links,
        span.status,
        "CLIENT",
    )
    assert back.resource == {"service.name": "agent"}


def test_a_default_span_has_an_empty_body() -> None:
    assert span_body_json(_span("b7ad6b7169203331")) == b"{}"


def test_only_lowercase_hex_ids_are_packed() -> None:
    assert pack_id("00f067aa0ba902b7") == bytes.fromhex("00f067aa0ba902b7")
    for kept in ("00F067AA0BA902B7", "not-hex-at-all!!", "abc", None):
        assert pack_id(kept) == kept
    assert unpack_id(bytes.fromhex(TRACE)) == TRACE and unpack_id("abc") == "abc"


def test_paging_and_order_clauses() -> None:
    postgres = SqlDialect(
        param="%s", contains="", nulls_last="{column} {direction} NULLS LAST", no_limit="ALL", row_id="ctid"
    )
    assert limit_clause(DIALECT, -1, 0) == ""
    assert limit_clause(DIALECT, -1, 5) == " LIMIT -1 OFFSET 5"
    assert limit_clause(postgres, -1, 5) == " LIMIT ALL OFFSET 5"
    assert limit_clause(postgres, 3, 0) == " LIMIT 3 OFFSET 0"
    assert order_by(postgres, "c", "desc", "t") == "ORDER BY c DESC NULLS LAST, t"
    assert any_of(postgres, "c", ["a", "b"]) == ("c IN (%s, %s)", ["a", "b"])
    assert any_of(postgres, "c", []) == ("1 = 0", [])
    assert any_of(SqlDialect("%s", "", "", "", "", array_params=True), "c", ["a"]) == ("c = ANY(%s)", [["a"]])


def test_span_filters_must_all_be_given() -> None:
    query = check_span_query(
        "and", "sequence_id", "asc", -1, 0, ("n", None, None, "ab", None, None, None, None)
    )
    assert query.fields == {
        "name": ("n", None),
        "trace_id": (None, "ab"),
        "span_id": (None, None),
        "parent_id": (None, None),
    }
    with pytest.raises(TypeError, match="takes 8 filters, got 2"):
        check_span_query("and", "sequence_id", "asc", -1, 0, ("n", None))
    with pytest.raises(ValueError, match="Cannot sort by 'color'"):
        check_span_query("and", "color", "asc", -1, 0, (None,) * 8)


@pytest.fixture
def db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        "CREATE TABLE rollouts (rid INTEGER PRIMARY KEY, rollout_id TEXT);"
        "CREATE TABLE attempts (aid INTEGER PRIMARY KEY, rid INTEGER, attempt_id TEXT);"
        "CREATE TABLE spans (rid INTEGER, aid INTEGER, sequence_id INTEGER, trace_id, span_id, parent_id,"
        " name TEXT, start_time REAL, end_time REAL, resource_ref INTEGER, body BLOB);"
        "CREATE TABLE workers (wid INTEGER PRIMARY KEY, worker_id TEXT, status TEXT, heartbeat_stats TEXT,"
        " last_heartbeat_time REAL, last_dequeue_time REAL, last_busy_time REAL, last_idle_time REAL,"
        " current_rollout_id TEXT, current_attempt_id TEXT);"
        "INSERT INTO rollouts VALUES (1, 'ro-1'); INSERT INTO attempts VALUES (1, 1, 'at-1');"
    )
    return conn


def test_span_statements_filter_packed_ids_and_sort_nulls_last(db: sqlite3.Connection) -> None:
    spans = [
        _span("b7ad6b7169203331", sequence_id=1, name="a", end_time=3.0),
        _span("00f067aa0ba902b7", "b7ad6b7169203331", sequence_id=2, name="b", end_time=None),
        _span("ABC", sequence_id=3, name="c", end_time=1.0),  # not hex: stored as given
    ]
    for s in spans:
        row = (1, 1, s.sequence_id, pack_id(s.trace_id), pack_id(s.span_id), pack_id(s.parent_id))
        db.execute(
            "INSERT INTO spans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
            (*row, s.name, 1.0, s.end_time, b"{}"),
        )

    def names(fields: dict[str, tuple[str | None, str | None]], **kwargs: Any) -> list[str]:
        args: dict[str, Any] = {"filter_logic": "and", "sort_by": "sequence_id", "sort_order": "asc"}
        args.update(kwargs)
        query = SpanQuery(fields, args["filter_logic"], args["sort_by"], args["sort_order"], -1, 0)
        q = span_statements(DIALECT, 1, 1, query)
        assert SPAN_COLUMNS in q.select
        found = [span_from_row(r, {}, loads).name for r in db.execute(q.select, q.params)]
        assert db.execute(q.count, q.params).fetchone()[0] == len(found)
        return found

    assert names({"span_id": ("00f067aa0ba902b7", None)}) == ["b"]
    assert names({"parent_id": (None, "6b71")}) == ["b"]  # a substring of the hex text
    assert names({"span_id": ("ABC", None)}) == ["c"]
    assert names({"name": ("a", None), "span_id": (None, "AB")}, filter_logic="or") == ["a", "c"]
    assert names({}, sort_by="end_time", sort_order="desc") == ["a", "c", "b"]  # NULL last both ways
    assert names({}, sort_by="end_time") == ["c", "a", "b"]
    assert names({}, sort_by="span_id") == ["b", "c", "a"]  # by the hex text: "00f0" < "ABC" < "b7ad"


def test_worker_query_checks_and_filters(db: sqlite3.Connection) -> None:
    for i, status in enumerate(["idle", "busy", "idle"]):
        db.execute("INSERT INTO workers (worker_id, status) VALUES (?, ?)", (f"runner-{i}", status))
    q = worker_query(DIALECT, ["idle"], None, "and", None, "desc", 1, 0)
    assert [r[0] for r in db.execute(q.select, q.params)] == ["runner-2"]
    assert db.execute(q.count, q.params).fetchone()[0] == 2
    q = worker_query(DIALECT, [], "runner", "or", "worker_id", "asc", -1, 1)
    assert [r[0] for r in db.execute(q.select, q.params)] == ["runner-1", "runner-2"]
    with pytest.raises(ValueError, match="sleepy"):
        worker_query(DIALECT, ["sleepy"], None, "and", None, "asc", -1, 0)
