"""TraceTree: building, text and SVG rendering, and ``agl traces show``."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from agentlightning_core.adapter.tree import TraceTree
from agentlightning_core.cli import main
from agentlightning_core.cli.store import parse_store_spec
from agentlightning_core.cli.traces import render_trace
from agentlightning_core.emitter import emit_reward
from agentlightning_core.store.memory import InMemoryLightningStore
from agentlightning_core.testing.adapter import llm_span, reward_span, sample_trace, span
from agentlightning_core.tracer.otel import OtelTracer


def test_the_tree_nests_spans_and_orders_children_by_start() -> None:
    tree = TraceTree.from_spans(sample_trace())
    assert tree.root.name == "agent" and not tree.root.virtual
    assert [c.name for c in tree.root.children] == ["chat m", "chat m", "agentlightning.reward"]
    assert next(n.name for n in tree.walk()) == "agent" and len(tree.spans()) == 4


def test_several_roots_and_missing_parents_get_virtual_nodes() -> None:
    spans = [
        span(1, "a", start=0, end=1),
        span(2, "b", parent=77, start=2, end=4),
        span(3, "c", start=5, end=6),
    ]
    tree = TraceTree.from_spans(spans)
    assert tree.root.virtual and tree.root.name == "<trace>"
    missing = tree.nodes[f"{77:016x}"]
    assert missing.virtual and [c.name for c in missing.children] == ["b"]
    assert (missing.start_time, missing.end_time) == (spans[1].start_time, spans[1].end_time)
    assert tree.root.start_time == spans[0].start_time and tree.root.end_time == spans[2].end_time


def test_repair_moves_a_root_child_under_the_sibling_that_contains_it() -> None:
    spans = [
        span(1, "root", start=0, end=10),
        span(2, "step", parent=1, start=1, end=5),
        span(3, "lost", parent=1, start=2, end=3),
        span(4, "after", parent=1, start=6, end=7),
    ]
    repaired = TraceTree.from_spans(spans)
    assert [c.name for c in repaired.root.children] == ["step", "after"]
    assert [c.name for c in repaired.nodes[f"{2:016x}"].children] == ["lost"]
    kept = TraceTree.from_spans(spans, repair_hierarchy=False)
    assert [c.name for c in kept.root.children] == ["step", "lost", "after"]


def test_to_text_shows_the_indented_tree_with_timings_and_key_attributes() -> None:
    spans = [
        span(1, "agent", start=0, end=1),
        llm_span(
            2,
            [{"role": "user", "content": "q"}],
            {"role": "assistant", "content": "a"},
            parent=1,
            start=0.25,
            end=0.75,
        ),
        reward_span(3, 2.0, parent=1, start=0.9),
    ]
    text = TraceTree.from_spans(spans).to_text()
    lines = text.splitlines()
    assert lines[0].startswith("agent +0.0ms 1000.0ms")
    assert lines[1].startswith("  chat m +250.0ms 500.0ms") and "model=m" in lines[1]
    assert lines[2].startswith("  agentlightning.reward +900.0ms") and "value=2.0" in lines[2]


def test_to_svg_is_well_formed_with_one_bar_per_timed_span() -> None:
    svg = TraceTree.from_spans(sample_trace()).to_svg()
    root = ET.fromstring(svg)
    ns = "{http://www.w3.org/2000/svg}"
    bars = [r for r in root.iter(f"{ns}rect")][1:]  # the first rect is the background
    assert len(bars) == 4
    assert next(t.text.strip() for t in root.iter(f"{ns}text")) == "agent"  # type: ignore[union-attr]


def test_store_specs_parse_names_and_json() -> None:
    assert parse_store_spec("memory") == "memory"
    assert parse_store_spec(' {"type": "sqlite", "path": "x.db"}') == {"type": "sqlite", "path": "x.db"}
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_store_spec("{type: sqlite}")


@pytest.mark.anyio
async def test_render_trace_reads_the_spans_of_a_rollout_from_a_store() -> None:
    store = InMemoryLightningStore()
    attempted = await store.start_rollout(input="task")
    tracer = OtelTracer(instrument_openai=False)
    async with tracer.trace_context(
        "agent", store=store, rollout_id=attempted.rollout_id, attempt_id=attempted.attempt_id
    ):
        with tracer.create_span("think"):
            emit_reward(1.0)
    tracer.teardown()
    text = await render_trace(store, attempted.rollout_id, None, "text")
    assert text.splitlines()[0].startswith("agent ")
    assert text.splitlines()[1].startswith("  think ") and "value=1.0" in text.splitlines()[2]
    svg = await render_trace(store, attempted.rollout_id, "latest", "svg")
    assert svg.startswith("<svg")


def test_agl_traces_show_explains_a_memory_store(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["traces", "show", "ro-missing", "--store", '{"type": "memory"}'])
    assert code == 1
    assert "memory store, which lives inside the process that created it" in capsys.readouterr().err
