"""The hand-written span encoders (what the client sends) equal the codec's generic ones."""

from __future__ import annotations

import enum
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentlightning_core.codec import generic_encoder, to_json_value
from agentlightning_core.spans import Span, SpanEvent, SpanLink, SpanStatus


class Color(enum.Enum):
    RED = "red"


ids = st.text(min_size=1, max_size=8)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
# values the codec converts: enums and models inside attributes
attribute_values = json_values | st.just(Color.RED) | st.just(SpanStatus("ERROR", "x"))
attribute_dicts = st.dictionaries(st.text(max_size=6), attribute_values, max_size=4)
times = st.none() | st.floats(allow_nan=False, allow_infinity=False) | st.integers()
statuses = st.just(SpanStatus()) | st.builds(SpanStatus, st.text(max_size=6), st.none() | st.text(max_size=6))
events = st.builds(SpanEvent, st.text(max_size=6), times, attribute_dicts)
links = st.builds(SpanLink, ids, ids, attribute_dicts)
spans = st.builds(
    Span,
    rollout_id=ids,
    attempt_id=ids,
    sequence_id=st.integers(min_value=0),
    trace_id=ids,
    span_id=ids,
    parent_id=st.none() | ids,
    name=st.text(max_size=8),
    start_time=times,
    end_time=times,
    attributes=attribute_dicts,
    events=st.lists(events, max_size=2).map(tuple),
    links=st.lists(links, max_size=2).map(tuple),
    status=statuses,
    kind=st.text(max_size=8),
    resource=attribute_dicts,
)


def same(a: Any, b: Any) -> None:
    # equality, and the same JSON (which tells 1 from 1.0 and True, and lists from dicts)
    assert a == b
    assert json.dumps(a) == json.dumps(b)


@settings(max_examples=200, deadline=None)
@given(spans)
def test_span_to_dict_equals_the_generic_encoder(span: Span) -> None:
    same(span.to_dict(), generic_encoder(Span)(span))
    same(to_json_value(span), generic_encoder(Span)(span))
    same(span.status.to_dict(), generic_encoder(SpanStatus)(span.status))
    for event in span.events:
        same(event.to_dict(), generic_encoder(SpanEvent)(event))
    for link in span.links:
        same(link.to_dict(), generic_encoder(SpanLink)(link))
    assert Span.from_dict(json.loads(json.dumps(span.to_dict()))).to_dict() == json.loads(
        json.dumps(span.to_dict())
    )


def test_span_to_dict_gives_fresh_containers() -> None:
    span = Span("r", "a", 0, "t", "s", None, "n", attributes={"k": 1}, resource={"svc": "x"})
    data = span.to_dict()
    data["attributes"]["k"] = 2
    data["resource"].clear()
    data["status"]["status_code"] = "ERROR"
    assert span.attributes == {"k": 1} and span.resource == {"svc": "x"}
    assert span.to_dict()["status"] == {"status_code": "UNSET", "description": None}
