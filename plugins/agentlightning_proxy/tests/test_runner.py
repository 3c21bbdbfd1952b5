"""The runner hands each attempt its own LLM; a call a tracer records is not recorded twice."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from agentlightning_core import (
    LLM,
    AttemptedRollout,
    InMemoryLightningStore,
    LitAgent,
    LitAgentRunner,
    LlmProxyTraceToTriplet,
    NamedResources,
    OtelTracer,
)
from agentlightning_proxy import TRACED_HEADER, LLMProxy
from agentlightning_proxy import attributes as pa

pytestmark = pytest.mark.anyio


class Echo(LitAgent[str]):
    """A class-based agent: asks the model through whatever LLM it is given, rewards the echo."""

    async def rollout_async(self, task: str, resources: NamedResources, rollout: AttemptedRollout) -> Any:
        llm = resources["llm"]
        assert type(llm) is LLM  # the runner resolved the ProxyLLM for this attempt
        async with openai.AsyncOpenAI(
            base_url=llm.get_base_url(), api_key=llm.api_key or "k", max_retries=0
        ) as client:
            answer = await client.chat.completions.create(
                model=llm.model, messages=[{"role": "user", "content": task}]
            )
        return 1.0 if answer.choices[0].message.content == task else 0.0


async def test_each_attempt_of_a_runner_reaches_the_proxy_under_its_own_ids(
    proxy: LLMProxy, store: InMemoryLightningStore
) -> None:
    # the proxy records the LLM calls; the tracer records the rest (the reward)
    runner: LitAgentRunner[str] = LitAgentRunner(OtelTracer(instrument_openai=False))
    runner.init(Echo())
    runner.init_worker("w-1", store)
    resources: NamedResources = {"llm": proxy.as_resource("m")}
    results = [await runner.step(task, resources=resources) for task in ("first task", "second task")]
    for task, result in zip(("first task", "second task"), results, strict=True):
        assert result.error is None and result.reward == 1.0
        spans = await store.query_spans(result.rollout.rollout_id)
        (call,) = [s for s in spans if pa.SURFACE in s.attributes]
        assert call.attempt_id == result.attempt.attempt_id
        (triplet,) = LlmProxyTraceToTriplet().adapt(list(spans))
        assert triplet.prompt["messages"] == [{"role": "user", "content": task}] and triplet.reward == 1.0
    assert proxy.stats.unattributed == 0


async def test_a_call_marked_as_traced_is_forwarded_but_not_recorded(
    proxy: LLMProxy, store: InMemoryLightningStore, attempt: AttemptedRollout
) -> None:
    base = proxy.base_url_for(attempt.rollout_id, attempt.attempt.attempt_id)
    async with openai.AsyncOpenAI(
        base_url=base, api_key="k", max_retries=0, default_headers={TRACED_HEADER: "1"}
    ) as client:
        answer = await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "once"}]
        )
    assert answer.choices[0].message.content == "once"
    assert list(await store.query_spans(attempt.rollout_id)) == []
    assert proxy.stats.traced_elsewhere == 1 and proxy.stats.recorded == 0
