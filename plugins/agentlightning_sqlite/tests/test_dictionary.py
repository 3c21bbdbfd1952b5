"""The compression dictionary fits the spans users really store, and old files still read."""

from __future__ import annotations

import functools
import importlib.util
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import lz4.block
import openai
import orjson
import pytest

from agentlightning_core.spans import Span
from agentlightning_core.testing.openai_server import OpenAIServer, Reply
from agentlightning_core.tracer.otel import OtelTracer
from agentlightning_sqlite import SqliteLightningStore, codec

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


@pytest.fixture(scope="module")
def captured() -> Iterator[Span]:
    """A chat call of the real ``openai`` client against the local server, as the tracer stores it."""
    tracer = OtelTracer()
    tracer.init()
    try:
        with (
            OpenAIServer([Reply(content="Sunny.", prompt_tokens=31, completion_tokens=2)]) as server,
            openai.OpenAI(base_url=server.base_url, api_key="k", max_retries=0) as client,
            tracer.trace_context("agent"),
        ):
            client.chat.completions.create(
                model="small",
                messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Paris?"}],
                temperature=0.5,
            )
        (span,) = [s for s in tracer.get_last_trace() if s.kind == "CLIENT"]
        yield span
    finally:
        tracer.teardown()


@functools.cache
def store_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("store_bench", BENCHMARKS / "store_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_dictionary_holds_every_key_the_tracer_writes_for_an_llm_call(captured: Span) -> None:
    assert captured.attributes, "the tracer recorded no attributes"
    missing = [k for k in captured.attributes if f'"{k}":'.encode() not in codec._DICT_2]
    assert missing == []
    assert f'"k":"{captured.kind}"'.encode() in codec._DICT_2


def test_a_captured_llm_call_compresses_to_a_quarter(captured: Span) -> None:
    body = codec.encode_span_body(captured)
    plain = len(orjson.dumps({"a": captured.attributes, "k": captured.kind}))
    assert body[0] == codec._LZ4_DICT_2 and len(body) * 4 < plain
    assert codec.decode_body(body) == {"a": captured.attributes, "k": "CLIENT"}


def test_store_bench_typical_span_has_the_keys_of_a_captured_one(captured: Span) -> None:
    typical = store_bench().make_span("ro", "at", "0" * 32, 1)
    assert typical.attributes.keys() == captured.attributes.keys()
    assert typical.kind == captured.kind and typical.name.startswith("chat ")
    assert {k: type(v) for k, v in typical.attributes.items()} == {
        k: type(v) for k, v in captured.attributes.items()
    }


def old_body(span: Span) -> bytes:
    """A span body as the previous version wrote it: LZ4 with dictionary 1 (format byte 0x02)."""
    data = orjson.dumps({"a": span.attributes, "k": span.kind})
    header = codec._lz4_header(len(data))
    return (
        bytes([codec._LZ4_DICT_1])
        + header[1:]
        + lz4.block.compress(data, store_size=False, dict=codec._DICT_1)
    )


@pytest.mark.anyio
async def test_a_file_written_with_the_old_dictionary_still_reads(tmp_path: Path, captured: Span) -> None:
    path = tmp_path / "old.db"
    async with SqliteLightningStore(path, watchdog_interval=None) as store:
        ar = await store.start_rollout("task")
        real = Span.from_dict(
            {**captured.to_dict(), "rollout_id": ar.rollout_id, "attempt_id": ar.attempt_id}
        )
        spans = [real] + [
            store_bench().make_span(ar.rollout_id, ar.attempt_id, captured.trace_id, i) for i in range(1, 4)
        ]
        stored = await store.add_many_spans(spans)
    # rewrite every body in the old format, as the previous version left the file
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT rowid, sequence_id FROM spans ORDER BY sequence_id").fetchall()
        assert len(rows) == len(stored)
        for (rowid, _), span in zip(rows, stored, strict=True):
            db.execute("UPDATE spans SET body = ? WHERE rowid = ?", (old_body(span), rowid))
        formats = {row[0][0] for row in db.execute("SELECT body FROM spans")}
    db.close()
    assert formats == {codec._LZ4_DICT_1}
    async with SqliteLightningStore(path, watchdog_interval=None) as store:
        assert list(await store.query_spans(stored[0].rollout_id)) == stored
