"""The server's quick test for span bodies never accepts what the full schema check refuses."""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Any

import pytest

from agentlightning_core.remote._app import StoreApp
from agentlightning_core.remote._protocol import OPERATIONS
from agentlightning_core.remote._schema import SchemaError
from agentlightning_core.spans import Span
from agentlightning_core.store.memory import InMemoryLightningStore

VALID = Span(
    rollout_id="ro-1",
    attempt_id="at-1",
    sequence_id=0,
    trace_id="0" * 31 + "1",
    span_id="0" * 15 + "1",
    parent_id=None,
    name="llm.call",
    start_time=1.5,
    end_time=2,  # type: ignore[arg-type]  # JSON integers are numbers too
    attributes={"model": "m", "tokens": 3},
).to_dict()

WRONG_VALUES: list[Any] = [None, True, 0, -1, 1.5, math.nan, math.inf, "", "x", [], [1], {}, {"a": 1}]


def mutations() -> list[tuple[str, Any]]:
    """Every field set to every wrong-ish value, each field removed, and an unknown field."""
    out: list[tuple[str, Any]] = []
    for field in VALID:
        for value in WRONG_VALUES:
            span = copy.deepcopy(VALID)
            span[field] = value
            out.append((f"{field}={value!r}", span))
        span = copy.deepcopy(VALID)
        del span[field]
        out.append((f"without {field}", span))
    out.append(("unknown field", {**VALID, "extra": 1}))
    out.append(("event", {**VALID, "events": [{"name": "e", "timestamp": "soon"}]}))
    out.append(("status", {**VALID, "status": {"status_code": 1}}))
    out.append(("not a dict", [VALID]))
    return out


@pytest.mark.parametrize("op_name", ["add_many_spans", "add_span_groups"])
def test_quick_test_is_never_looser_than_the_schema(op_name: str) -> None:
    op = OPERATIONS[op_name]
    assert op.quick_decode is not None
    check = StoreApp(InMemoryLightningStore(watchdog_interval=None))._checkers[op_name]

    def body(span: Any) -> dict[str, Any]:
        return {"spans": [VALID, span]} if op_name == "add_many_spans" else {"groups": [[VALID], [span]]}

    assert op.quick_decode(body(VALID)) is not None  # the common shape takes the quick path
    quick = 0
    for _label, span in mutations():
        data = body(span)
        decoded = op.quick_decode(copy.deepcopy(data))
        if decoded is not None:
            quick += 1
            check(data, op_name)  # must not raise: the quick test said it is valid
            # and it decodes to what the codec (with Span's validators) gives
            assert decoded == (
                {"spans": [Span.from_dict(VALID), Span.from_dict(span)]}
                if op_name == "add_many_spans"
                else {"groups": [[Span.from_dict(VALID)], [Span.from_dict(span)]]}
            )
        else:
            with contextlib.suppress(SchemaError):  # the full check decides and reports
                check(data, op_name)
    assert quick > 0  # e.g. integer or null times, absent optional fields
    assert op.quick_decode({"spans" if op_name == "add_many_spans" else "groups": [], "x": 1}) is None


@pytest.mark.anyio
async def test_spans_refused_by_validators_still_get_a_4xx() -> None:
    store = InMemoryLightningStore(watchdog_interval=None)
    app = StoreApp(store)
    attempted = await store.start_rollout("x")
    span = {**VALID, "rollout_id": attempted.rollout_id, "attempt_id": attempted.attempt_id}
    from agentlightning_core.remote._jsonio import dumps, loads

    for bad, message in (
        (("span_id", ""), "span_id must be a non-empty string"),
        (("sequence_id", -1), ">= 0"),
    ):
        answer = await app._execute(
            OPERATIONS["add_many_spans"], dumps({"spans": [{**span, bad[0]: bad[1]}]})
        )
        assert answer.status == 422 and message in loads(answer.body)["message"]
    answer = await app._execute(OPERATIONS["add_many_spans"], dumps({"spans": [span]}))
    assert answer.status == 200 and len(loads(answer.body)) == 1
