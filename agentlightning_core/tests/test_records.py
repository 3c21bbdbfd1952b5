"""The one validator-free fast path for records (``_records``): every field survives it."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from agentlightning_core._records import builder, copier, replace
from agentlightning_core.resources import ResourcesUpdate
from agentlightning_core.spans import Span, SpanEvent, SpanLink, SpanStatus, quick_span
from agentlightning_core.types import Attempt, Rollout, RolloutConfig, Worker

RECORDS = (Span, SpanStatus, SpanEvent, SpanLink, Rollout, Attempt, Worker, RolloutConfig, ResourcesUpdate)


class Marker:
    """A value no default or validator produces: one per field, to see where each one lands."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Marker({self.name})"


def markers(cls: type) -> dict[str, Marker]:
    return {f.name: Marker(f.name) for f in attrs.fields(cls)}


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_a_built_record_holds_every_field_it_was_given(cls: type) -> None:
    values = markers(cls)
    built: Any = builder(cls)(**values)
    assert type(built) is cls
    for name, value in values.items():  # an unset slot raises AttributeError here
        assert getattr(built, name) is value, name
    assert builder(cls)(*values.values()) is not built


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_a_copy_keeps_every_field_but_the_changed_ones(cls: type) -> None:
    values = markers(cls)
    original: Any = builder(cls)(**values)
    for changed in attrs.fields(cls):
        new = Marker("new")
        copy = copier(cls, (changed.name,))(original, new)
        assert type(copy) is cls and copy is not original
        for name, value in values.items():
            assert getattr(copy, name) is (new if name == changed.name else value), name
        assert getattr(original, changed.name) is values[changed.name]


def test_a_field_added_to_a_class_is_built_and_copied_without_touching_the_fast_path() -> None:
    @attrs.define(slots=True)
    class Grown:
        a: int = attrs.field(validator=attrs.validators.gt(0))
        b: str = "b"
        added_later: list[Any] = attrs.field(factory=list)

    built = builder(Grown)(0, "x", ["new"])  # validators skipped: the caller vouches
    assert (built.a, built.b, built.added_later) == (0, "x", ["new"])
    assert replace(built, b="y").added_later is built.added_later
    with pytest.raises(TypeError, match=r"no field\(s\) \['c'\]"):
        copier(Grown, ("c",))
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'added_later'"):
        builder(Grown)(1, "x")


def test_a_class_without_slots_is_refused() -> None:
    @attrs.define(slots=False)
    class Loose:
        a: int

    with pytest.raises(TypeError, match="Loose is not a slotted attrs class"):
        builder(Loose)


def sample_span() -> Span:
    return Span(
        rollout_id="ro-1",
        attempt_id="at-1",
        sequence_id=3,
        trace_id="a" * 32,
        span_id="b" * 16,
        parent_id="c" * 16,
        name="chat m",
        start_time=1.0,
        end_time=2.0,
        attributes={"k": [1, 2]},
        events=(SpanEvent("e", 1.5, {"x": 1}),),
        links=(SpanLink("d" * 32, "e" * 16, {"why": "t"}),),
        status=SpanStatus("ERROR", "bad"),
        kind="CLIENT",
        resource={"service.name": "svc"},
    )


def test_with_sequence_id_renumbers_and_shares_every_other_field() -> None:
    span = sample_span()
    stored = span.with_sequence_id(41)
    assert type(stored) is Span and stored.sequence_id == 41 and span.sequence_id == 3
    for field in attrs.fields(Span):
        if field.name != "sequence_id":
            assert getattr(stored, field.name) is getattr(span, field.name), field.name
    assert stored == attrs.evolve(span, sequence_id=41)


@pytest.mark.parametrize("bad", [-1, True, 1.0, "2", None])
def test_with_sequence_id_refuses_what_the_constructor_refuses(bad: Any) -> None:
    with pytest.raises(ValueError, match=rf"Span.sequence_id must be an integer >= 0, got {bad!r}"):
        sample_span().with_sequence_id(bad)


def test_the_span_decoder_builds_a_span_equal_to_the_constructors() -> None:
    data = sample_span().to_dict()
    data.update(events=[], links=[], status={"status_code": "UNSET", "description": None})
    decoded = quick_span(data)
    assert decoded == Span.from_dict(data) and type(decoded) is Span
    assert quick_span({**data, "sequence_id": -1}) is None  # not sure: the full check reports
